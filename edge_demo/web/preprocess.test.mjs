// node --test edge_demo/web/preprocess.test.mjs, with PREPROCESS_CASES naming a JSON file of pictures
// and what Pillow made of them (tests/test_preprocessing.py writes it): the page's transform must give
// Pillow's pixels exactly, for every picture, crop and size.
import assert from 'node:assert/strict';
import {readFileSync} from 'node:fs';
import {test} from 'node:test';
import {cropBox, transform} from './preprocess.js';

// Without the cases (a bare `node --test`), the cases' tests are skipped, not failed.
const cases = process.env.PREPROCESS_CASES ? JSON.parse(readFileSync(process.env.PREPROCESS_CASES, 'utf8')) : [];
if (!cases.length) test('Pillow\'s pixels (PREPROCESS_CASES names none: run tests/test_preprocessing.py)', {skip: true}, () => {});

test('the crop box is the centred square of the fraction of the shorter side', () => {
  assert.deepEqual(cropBox(300, 200, 1), [50, 0, 250, 200]);
  assert.deepEqual(cropBox(61, 97, 0.5), [15.25, 33.25, 45.75, 63.75]);
});

for (const item of cases) {
  test(`${item.name}: ${item.width}×${item.height} → ${item.size}×${item.size}, crop ${item.cropFraction}`, () => {
    const pixels = Uint8ClampedArray.from(Buffer.from(item.pixels, 'base64'));
    const result = transform(pixels, item.width, item.height, 3, {width: item.size, height: item.size, cropFraction: item.cropFraction});
    const expected = Uint8ClampedArray.from(Buffer.from(item.expected, 'base64'));
    assert.equal(result.length, expected.length);
    let mismatches = 0;
    for (let i = 0; i < result.length; i++) mismatches += result[i] !== expected[i];
    assert.equal(mismatches, 0, `${mismatches} of ${result.length} values differ from Pillow's`);
  });
}

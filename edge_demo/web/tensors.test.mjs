// node --test edge_demo/web/tensors.test.mjs, with TENSOR_CASES naming a JSON file of inputs and what
// the Python runtime made of them (tests/test_page_tensors.py writes it): the page must compute the
// same input tensors, probabilities, top classes and self-test verdicts as classify.py.
import assert from 'node:assert/strict';
import {readFileSync} from 'node:fs';
import {test} from 'node:test';
import {describeSelfTest, integerRange, scoresFrom, selfTestResult, tensorData, topClasses} from './tensors.js';

// Without the cases (a bare `node --test`), the cases' tests are skipped, not failed.
const cases = process.env.TENSOR_CASES ? JSON.parse(readFileSync(process.env.TENSOR_CASES, 'utf8')) : null;
if (!cases) test('the Python runtime\'s answers (TENSOR_CASES names none: run tests/test_page_tensors.py)', {skip: true}, () => {});

test('integer ranges', () => {
  assert.deepEqual(integerRange('uint8'), [0, 255]);
  assert.deepEqual(integerRange('int8'), [-128, 127]);
  assert.deepEqual(integerRange('int16'), [-32768, 32767]);
});

for (const [index, item] of (cases?.quantize ?? []).entries()) {
  test(`quantize ${index}: pixels into a ${item.input.dtype} input (scale ${item.input.scale}, zero point ${item.input.zero_point})`, () => {
    assert.deepEqual(Array.from(tensorData(item.pixels, item.input)), item.expected);
  });
}

for (const [index, item] of (cases?.dequantize ?? []).entries()) {
  test(`dequantize ${index}: a ${item.output.dtype} output into probabilities`, () => {
    const scores = scoresFrom(item.raw, item.output);
    assert.equal(scores.length, item.expected.length);
    // Python's are float32, the page's float64.
    scores.forEach((score, i) => assert.ok(Math.abs(score - item.expected[i]) <= 1e-6 * Math.max(1, Math.abs(score)), `${score} vs ${item.expected[i]}`));
  });
}

for (const [index, item] of (cases?.top ?? []).entries()) {
  test(`top ${index}: the ${item.k} best classes, ties in class order`, () => {
    const top = topClasses(item.scores, item.labels, item.k);
    assert.deepEqual(top.map(({label}) => label), item.expected.map(([label]) => label));
    top.forEach(({score}, i) => assert.ok(Math.abs(score - item.expected[i][1]) < 1e-6));
  });
}

for (const [index, item] of (cases?.selftest ?? []).entries()) {
  test(`self-test ${index}: ${item.passed ? 'passes' : 'fails'} as the Python runtime's`, () => {
    const scores = item.scores.map((row) => row.map((value) => (value === null ? NaN : value)));
    const result = selfTestResult(scores, item.expected, item.tolerance);
    assert.equal(result.passed, item.passed);
    if (!item.passed) {
      assert.equal(result.worstPicture, item.worst_picture);
      assert.equal(describeSelfTest(result, item.tolerance), item.description);
    }
  });
}

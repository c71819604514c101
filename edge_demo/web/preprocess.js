// The evaluation transform of keras_resnet.runtime.preprocessing, in the browser: the centred square
// of `cropFraction` of the picture's shorter side, resized to the model's input with Pillow's
// Image.resize(size, Image.BILINEAR, box) (libImaging/Resample.c), so that a picture gives the page
// the pixels it gives classify.py and Keras' evaluation. No DOM here but `inputPixels`' canvas: the
// rest runs under node's test runner (edge_demo/web/preprocess.test.mjs).

const PRECISION_BITS = 22;  // Pillow's fixed-point weights

// The region of a width × height picture that becomes the input: [left, top, right, bottom], floats.
export function cropBox(width, height, cropFraction) {
  const side = Math.min(width, height) * cropFraction;
  const left = (width - side) / 2;
  const top = (height - side) / 2;
  return [left, top, left + side, top + side];
}

// Pillow's precompute_coeffs for the bilinear filter: for each output pixel along one axis, the first
// source pixel it reads and its fixed-point weights. A triangle filter widened by the downscaling
// factor (so that every source pixel counts), centred at in0 + (out + 0.5) * scale.
export function taps(inSize, in0, in1, outSize) {
  const scale = (in1 - in0) / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filterScale;  // the triangle's support is 1
  const reciprocal = 1 / filterScale;
  const result = [];
  for (let out = 0; out < outSize; out++) {
    const center = in0 + (out + 0.5) * scale;
    const first = Math.max(Math.trunc(center - support + 0.5), 0);
    const count = Math.min(Math.trunc(center + support + 0.5), inSize) - first;
    const weights = [];
    let total = 0;
    for (let i = 0; i < count; i++) {
      const weight = Math.max(0, 1 - Math.abs((i + first - center + 0.5) * reciprocal));
      weights.push(weight);
      total += weight;
    }
    const fixed = weights.map((weight) => Math.trunc(0.5 + (total ? weight / total : 0) * 2 ** PRECISION_BITS));
    result.push({first, fixed});
  }
  return result;
}

// One pass along x (horizontal) or y: `input` is row-major with `channels` values a pixel (3 or 4,
// alpha ignored); returns RGB rounded to 8 bits, as Pillow's pass does.
function pass(input, inWidth, inHeight, channels, axisTaps, horizontal) {
  const outWidth = horizontal ? axisTaps.length : inWidth;
  const outHeight = horizontal ? inHeight : axisTaps.length;
  const output = new Uint8ClampedArray(outWidth * outHeight * 3);
  for (let y = 0; y < outHeight; y++) {
    for (let x = 0; x < outWidth; x++) {
      const {first, fixed} = axisTaps[horizontal ? x : y];
      for (let c = 0; c < 3; c++) {
        let sum = 1 << (PRECISION_BITS - 1);
        for (let i = 0; i < fixed.length; i++) {
          const source = horizontal ? y * inWidth + first + i : (first + i) * inWidth + x;
          sum += input[source * channels + c] * fixed[i];
        }
        output[(y * outWidth + x) * 3 + c] = sum >> PRECISION_BITS;  // Uint8ClampedArray clips to 0-255
      }
    }
  }
  return output;
}

// The source pixels the taps read, [start, end): what must be copied out of the picture.
export function span(axisTaps) {
  let start = Infinity;
  let end = -Infinity;
  for (const {first, fixed} of axisTaps) {
    start = Math.min(start, first);
    end = Math.max(end, first + fixed.length);
  }
  return [start, end];
}

function shifted(axisTaps, offset) {
  return axisTaps.map(({first, fixed}) => ({first: first - offset, fixed}));
}

// What the transform of a sourceWidth × sourceHeight picture reads and how: the region of source
// pixels the filter touches ([left, top] and its size) and the taps along each axis.
export function plan(sourceWidth, sourceHeight, {width, height, cropFraction}) {
  const box = cropBox(sourceWidth, sourceHeight, cropFraction);
  const horizontal = taps(sourceWidth, box[0], box[2], width);
  const vertical = taps(sourceHeight, box[1], box[3], height);
  const [left, right] = span(horizontal);
  const [top, bottom] = span(vertical);
  return {left, top, regionWidth: right - left, regionHeight: bottom - top, horizontal, vertical};
}

// The region's pixels (row-major, `channels` values a pixel, alpha ignored) → the model's input, RGB
// Uint8ClampedArray of width × height: Pillow's horizontal pass, then its vertical pass.
export function resizeRegion(pixels, channels, {left, top, regionWidth, regionHeight, horizontal, vertical}) {
  const across = pass(pixels, regionWidth, regionHeight, channels, shifted(horizontal, left), true);
  return pass(across, horizontal.length, regionHeight, 3, shifted(vertical, top), false);
}

// The whole transform on a picture's pixels in memory (row-major RGB or RGBA): what inputPixels does
// with a canvas, for node's tests.
export function transform(pixels, sourceWidth, sourceHeight, channels, options) {
  const steps = plan(sourceWidth, sourceHeight, options);
  const region = new Uint8ClampedArray(steps.regionWidth * steps.regionHeight * channels);
  for (let y = 0; y < steps.regionHeight; y++) {
    const start = ((steps.top + y) * sourceWidth + steps.left) * channels;
    region.set(pixels.subarray(start, start + steps.regionWidth * channels), y * steps.regionWidth * channels);
  }
  return resizeRegion(region, channels, steps);
}

// The whole transform for an <img>, <video> or canvas of sourceWidth × sourceHeight: only the source
// pixels the filter reads are copied (1:1, transparency over white as classify.py lays it) into
// `canvas`, then resampled. Returns RGB Uint8ClampedArray of width × height.
export function inputPixels(source, sourceWidth, sourceHeight, {width, height, cropFraction, canvas}) {
  const steps = plan(sourceWidth, sourceHeight, {width, height, cropFraction});
  const {left, top, regionWidth, regionHeight} = steps;
  if (canvas.width !== regionWidth || canvas.height !== regionHeight) {
    canvas.width = regionWidth;
    canvas.height = regionHeight;
  }
  const context = canvas.getContext('2d', {willReadFrequently: true});
  context.imageSmoothingEnabled = false;
  context.fillStyle = '#ffffff';
  context.fillRect(0, 0, regionWidth, regionHeight);
  context.drawImage(source, left, top, regionWidth, regionHeight, 0, 0, regionWidth, regionHeight);
  return resizeRegion(context.getImageData(0, 0, regionWidth, regionHeight).data, 4, steps);
}

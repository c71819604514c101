// The page's arithmetic on tensors, with no browser and no LiteRT.js in it, so that node's test
// runner checks it against the Python runtime (keras_resnet.runtime.model and .selftest, what
// classify.py runs): pixels into an input tensor's values, output values into probabilities, the top
// classes, and the verdict of the GPU self-test.

export const INTEGER_TYPES = {uint8: Uint8Array, int8: Int8Array, int16: Int16Array, int32: Int32Array};

// The smallest and largest values of an integer dtype ('uint8', 'int8', …).
export function integerRange(dtype) {
  const bits = {uint8: 8, int8: 8, int16: 16, int32: 32}[dtype];
  return dtype.startsWith('u') ? [0, 2 ** bits - 1] : [-(2 ** (bits - 1)), 2 ** (bits - 1) - 1];
}

// RGB pixels (0-255) as the values of the input tensor `input` ({dtype, scale, zero_point}):
// quantized with its scale and zero point when it is integer (runtime.model.quantized).
export function tensorData(rgb, input) {
  const IntegerArray = INTEGER_TYPES[input.dtype];
  if (!IntegerArray) return Float32Array.from(rgb);
  const {scale, zero_point: zeroPoint} = input;
  const [low, high] = integerRange(input.dtype);
  // Math.round rounds halves up and numpy to even: the quantized models take raw pixels (scale 1,
  // zero point 0 or -128), so a half never occurs; the tests hold the two to the same values.
  return IntegerArray.from(rgb, (value) => Math.min(high, Math.max(low, Math.round(value / (scale || 1) + zeroPoint))));
}

// An output tensor's values as probabilities: dequantized when `output` ({dtype, scale,
// zero_point}) is integer (runtime.model.dequantized).
export function scoresFrom(raw, output) {
  if (!INTEGER_TYPES[output.dtype]) return Array.from(raw);
  const {scale, zero_point: zeroPoint} = output;
  return Array.from(raw, (q) => (q - zeroPoint) * (scale || 1));
}

// The `k` most probable classes, [{label, score}], ties in class order (Classifier.top's stable sort).
export function topClasses(scores, labels, k) {
  const order = scores.map((score, index) => [score, index]).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  return order.slice(0, k).map(([score, index]) => ({label: labels[index], score}));
}

// How far the accelerator's scores on the self-test pictures stray from the CPU's (`expected`, one
// row per picture): {worst, worstPicture, passed} as runtime.selftest.compare finds them. A score
// that is not a number is the worst (Infinity).
export function selfTestResult(scoresPerPicture, expected, tolerance) {
  let worst = 0;
  let worstPicture = 0;
  scoresPerPicture.forEach((scores, index) => {
    let difference = 0;
    scores.forEach((score, label) => {
      const gap = Math.abs(score - expected[index][label]);
      difference = Number.isNaN(gap) ? Infinity : Math.max(difference, gap);
    });
    if (difference > worst) {
      worst = difference;
      worstPicture = index;
    }
  });
  return {pictures: scoresPerPicture.length, worst, worstPicture, passed: worst <= tolerance};
}

// A failed self-test in words, as SelfTestResult.describe words it (classify.py and the report).
export function describeSelfTest({pictures, worst, worstPicture}, tolerance) {
  const plural = pictures === 1 ? '' : 's';
  // A broken GPU may answer anything: what is not a probability is said so, not printed.
  const amount = !Number.isFinite(worst) ? 'a score that is not a number' : worst > 1 ? 'more than 1 (scores that are not probabilities)' : worst.toFixed(2);
  return `on ${pictures} self-test picture${plural} a class's probability differs from the CPU's by up to ` +
    `${amount} (picture ${worstPicture + 1}; tolerance ${tolerance.toFixed(2)})`;
}

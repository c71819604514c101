// The browser demo: a keras-resnet .tflite classifier run by LiteRT.js on WebGPU (a phone's GPU) when
// the browser has it, on WASM/XNNPACK otherwise. Pictures come from the camera or a chosen file and go
// through the preprocessing of edge_demo/classifier.py: the largest centred square, resized to the
// model's input, transparency over white, raw [0, 255] pixels (quantized for integer models).
import {isWebGPUSupported, loadAndCompile, loadLiteRt, supportsFeature, Tensor} from '@litertjs/core';

const WASM_DIR = '/vendor/litertjs/core/wasm/';
const TOP_K = 5;
const INTEGER_TYPES = {uint8: Uint8Array, int8: Int8Array, int16: Int16Array, int32: Int32Array};
const $ = (id) => document.getElementById(id);

let model;        // the LiteRT.js CompiledModel
let info;         // /model.json: input and output shapes, types, quantization, labels
const cropCanvas = document.createElement('canvas');  // the centred square of each picture, 1:1
let cameraStream = null;
let busy = false;
let accelerator;  // 'webgpu' or 'wasm'

// WebGPU work that never finishes (a GPU process or driver fault; a software GPU once stalled like
// this) must not leave the page waiting for ever: past this many seconds (?gpu-timeout=S) the start
// falls back to WASM, and a picture is reported as failed.
const GPU_TIMEOUT_SECONDS = Number(new URLSearchParams(location.search).get('gpu-timeout')) || 30;

class GpuTimeout extends Error {}

function withGpuTimeout(promise, what) {
  let timer;
  const timeout = new Promise((resolve, reject) => {
    timer = setTimeout(() => reject(new GpuTimeout(`WebGPU did not answer within ${GPU_TIMEOUT_SECONDS} s (${what})`)), GPU_TIMEOUT_SECONDS * 1000);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function setStatus(message, {error = false} = {}) {
  $('status').textContent = message;
  $('status').classList.toggle('error', error);
}

async function webGpuUnavailable() {
  if (!isWebGPUSupported()) return 'this browser has no WebGPU';
  try {
    const adapter = await navigator.gpu.requestAdapter();
    return adapter ? null : 'WebGPU found no GPU adapter';
  } catch (error) {
    return `WebGPU failed (${error.message})`;
  }
}

// WebGPU first (unless ?accelerator=wasm), WASM when the browser has no WebGPU or it cannot compile
// the model. Returns the model and a sentence saying where it runs and why.
async function openModel() {
  const requested = new URLSearchParams(location.search).get('accelerator');
  let whyNotGpu = requested === 'wasm' ? 'WASM was asked for (?accelerator=wasm)' : await webGpuUnavailable();
  if (!whyNotGpu) {
    // JSPI lets LiteRT.js run ops WebGPU lacks on WASM within one model; threads and JSPI exclude each other.
    await loadLiteRt(WASM_DIR, {jspi: await supportsFeature('jspi')});
    try {
      const gpuModel = await withGpuTimeout(loadAndCompile('model.tflite', {accelerator: 'webgpu'}), 'compiling the model');
      await withGpuTimeout(warmUp(gpuModel), 'its first run');
      const coverage = gpuModel.isFullyAccelerated ? 'every op on the GPU' : 'some ops fall back to WASM';
      return {model: gpuModel, accelerator: 'webgpu', sentence: `Running on WebGPU (${coverage}).`};
    } catch (error) {
      const why = error instanceof GpuTimeout ? error.message : `WebGPU could not compile the model (${error.message})`;
      return openOnWasm(why, {numThreads: 1});
    }
  }
  // Threads need relaxed SIMD and cross-origin isolation (serve.py sends the COOP/COEP headers).
  const threads = self.crossOriginIsolated && (await supportsFeature('relaxedSimd')) && (await supportsFeature('threads'));
  await loadLiteRt(WASM_DIR, {threads});
  return openOnWasm(whyNotGpu, {numThreads: threads ? Math.min(navigator.hardwareConcurrency || 1, 4) : 1});
}

async function openOnWasm(whyNotGpu, {numThreads}) {
  const cpuModel = await loadAndCompile('model.tflite', {accelerator: 'wasm', cpuOptions: {numThreads}});
  await warmUp(cpuModel);
  const threadWord = numThreads === 1 ? 'thread' : 'threads';
  return {
    model: cpuModel,
    accelerator: 'wasm',
    sentence: `Running on WASM with XNNPACK (${numThreads} ${threadWord}): ${whyNotGpu}.`,
  };
}

// Pixels of `source` (an <img>, <video> or canvas of sourceWidth × sourceHeight) as the model's input
// tensor data: the centred square copied 1:1, then resized by resizeBilinear below, so that a picture
// gives the page the same pixels it gives classify.py.
function inputData(source, sourceWidth, sourceHeight) {
  const [, height, width] = info.input.shape;
  const side = Math.min(sourceWidth, sourceHeight);
  if (cropCanvas.width !== side || cropCanvas.height !== side) {
    cropCanvas.width = side;
    cropCanvas.height = side;
  }
  const context = cropCanvas.getContext('2d', {willReadFrequently: true});
  context.imageSmoothingEnabled = false;
  context.fillStyle = '#ffffff';  // transparency over white, as classifier.to_rgb does
  context.fillRect(0, 0, side, side);
  const left = Math.floor((sourceWidth - side) / 2);
  const top = Math.floor((sourceHeight - side) / 2);
  context.drawImage(source, left, top, side, side, 0, 0, side, side);
  const rgba = context.getImageData(0, 0, side, side).data;
  const rgb = resizeBilinear(rgba, side, side, width, height);

  const IntegerArray = INTEGER_TYPES[info.input.dtype];
  if (!IntegerArray) return Float32Array.from(rgb);
  const {scale, zero_point: zeroPoint} = info.input;
  const [low, high] = integerRange(info.input.dtype);
  return IntegerArray.from(rgb, (value) => Math.min(high, Math.max(low, Math.round(value / (scale || 1) + zeroPoint))));
}

// Pillow's Image.resize(size, Image.BILINEAR) (libImaging/Resample.c): a triangle filter widened by
// the downscaling factor (so it averages every source pixel, unlike a canvas's bilinear sampling),
// 22-bit fixed-point weights, a horizontal then a vertical pass, each rounded to 8 bits.
const PRECISION_BITS = 22;

function resampleWeights(inSize, outSize) {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filterScale;  // the triangle filter's support is 1
  const taps = [];
  for (let out = 0; out < outSize; out++) {
    const center = (out + 0.5) * scale;
    const first = Math.max(Math.trunc(center - support + 0.5), 0);
    const count = Math.min(Math.trunc(center + support + 0.5), inSize) - first;
    const weights = [];
    let total = 0;
    for (let i = 0; i < count; i++) {
      const weight = Math.max(0, 1 - Math.abs((i + first - center + 0.5) / filterScale));
      weights.push(weight);
      total += weight;
    }
    const fixed = weights.map((weight) => Math.trunc(0.5 + (total ? weight / total : 0) * 2 ** PRECISION_BITS));
    taps.push({first, fixed});
  }
  return taps;
}

function resamplePass(input, inWidth, inHeight, channels, outSize, horizontal) {
  // Resamples along x (horizontal) or y to outSize; `input` is row-major, `channels` values a pixel.
  const outWidth = horizontal ? outSize : inWidth;
  const outHeight = horizontal ? inHeight : outSize;
  const taps = resampleWeights(horizontal ? inWidth : inHeight, outSize);
  const output = new Uint8ClampedArray(outWidth * outHeight * 3);
  for (let y = 0; y < outHeight; y++) {
    for (let x = 0; x < outWidth; x++) {
      const {first, fixed} = taps[horizontal ? x : y];
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

function resizeBilinear(rgba, inWidth, inHeight, outWidth, outHeight) {
  // Pillow skips a pass whose size does not change; so do we (the result is the same).
  let pixels = rgba;
  let channels = 4;
  let width = inWidth;
  if (inWidth !== outWidth) {
    pixels = resamplePass(pixels, inWidth, inHeight, channels, outWidth, true);
    channels = 3;
    width = outWidth;
  }
  if (inHeight !== outHeight) {
    pixels = resamplePass(pixels, width, inHeight, channels, outHeight, false);
    channels = 3;
  }
  if (channels === 3) return pixels;
  const rgb = new Uint8ClampedArray(width * inHeight * 3);
  for (let p = 0; p < width * inHeight; p++) for (let c = 0; c < 3; c++) rgb[3 * p + c] = pixels[4 * p + c];
  return rgb;
}

function integerRange(dtype) {
  const bits = {uint8: 8, int8: 8, int16: 16, int32: 32}[dtype];
  return dtype.startsWith('u') ? [0, 2 ** bits - 1] : [-(2 ** (bits - 1)), 2 ** (bits - 1) - 1];
}

function scoresFrom(raw) {
  if (!INTEGER_TYPES[info.output.dtype]) return Array.from(raw);
  const {scale, zero_point: zeroPoint} = info.output;
  return Array.from(raw, (q) => (q - zeroPoint) * (scale || 1));
}

// Runs `compiled` (the page's model by default) once; returns the top classes and the milliseconds
// from input to scores on the CPU.
async function classify(source, sourceWidth, sourceHeight, compiled = model) {
  const [, height, width] = info.input.shape;
  const input = new Tensor(inputData(source, sourceWidth, sourceHeight), [1, height, width, 3]);
  const start = performance.now();
  const running = (async () => {
    const outputs = await compiled.run(input);
    const output = await outputs[0].moveTo('wasm');  // reading GPU results back is part of the cost
    const raw = output.toTypedArray();
    output.delete();
    for (const tensor of outputs) if (!tensor.deleted) tensor.delete();
    return raw;
  })();
  let raw;
  try {
    raw = await (accelerator === 'webgpu' ? withGpuTimeout(running, 'a picture') : running);
  } finally {
    running.finally(() => input.delete()).catch(() => {});  // freed once the run is over, even a late one
  }
  const milliseconds = performance.now() - start;
  const scores = scoresFrom(raw);
  const order = scores.map((score, index) => [score, index]).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  const top = order.slice(0, TOP_K).map(([score, index]) => ({label: info.labels[index], score}));
  return {top, milliseconds};
}

// The first run sets up kernels (and GPU pipelines): done once, on a blank picture, before the page is ready.
async function warmUp(compiled) {
  const [, height, width] = info.input.shape;
  const blank = document.createElement('canvas');
  blank.width = width;
  blank.height = height;
  await classify(blank, width, height, compiled);
}

function showResults({top, milliseconds}, extra = '') {
  const list = $('top5');
  list.replaceChildren(...top.map(({label, score}) => {
    const item = document.createElement('li');
    item.dataset.label = label;
    item.dataset.score = score.toFixed(6);
    const name = document.createElement('span');
    name.className = 'label';
    name.textContent = label;
    const bar = document.createElement('meter');
    bar.min = 0;
    bar.max = 1;
    bar.value = Math.max(0, Math.min(1, score));
    const value = document.createElement('span');
    value.className = 'score';
    value.textContent = score.toFixed(3);
    item.append(name, bar, value);
    return item;
  }));
  $('latency').textContent = `${milliseconds.toFixed(1)} ms per frame${extra}`;
}

async function classifyPicture(url, name) {
  stopCamera();
  document.body.dataset.state = 'classifying';
  const picture = $('picture');
  picture.hidden = false;
  picture.src = url;
  try {
    await picture.decode();
  } catch {
    setStatus(`${name}: not a picture this browser can read.`, {error: true});
    document.body.dataset.state = 'error';
    return;
  }
  busy = true;
  try {
    showResults(await classify(picture, picture.naturalWidth, picture.naturalHeight));
    setStatus(`${name} classified.`);
    document.body.dataset.state = 'classified';
  } catch (error) {
    setStatus(`Classifying ${name} failed: ${error.message}`, {error: true});
    document.body.dataset.state = 'error';
  } finally {
    busy = false;
  }
}

async function startCamera() {
  if (!navigator.mediaDevices?.getUserMedia) {
    setStatus(
      `The camera needs https:// or http://localhost, and this page is ${location.origin}: ` +
        'choose a picture instead, or serve https (serve.py --certfile/--keyfile, see the README).',
      {error: true},
    );
    return;
  }
  try {
    cameraStream = await navigator.mediaDevices.getUserMedia({video: {facingMode: 'environment'}, audio: false});
  } catch (error) {
    setStatus(`No camera: ${error.message}`, {error: true});
    return;
  }
  const video = $('video');
  video.srcObject = cameraStream;
  video.hidden = false;
  $('picture').hidden = true;
  await video.play();
  $('camera-button').textContent = 'Stop camera';
  setStatus('Classifying the camera’s frames.');
  let last = performance.now();
  let framesPerSecond = 0;
  let frames = 0;
  let failures = 0;
  // One frame at a time; a frame that fails is reported and the next one tried: the loop never
  // stops on an error, and `busy` is released whatever happens (finally).
  const step = async () => {
    if (!cameraStream) return;
    if (!busy && video.videoWidth) {
      busy = true;
      try {
        const result = await classify(video, video.videoWidth, video.videoHeight);
        const now = performance.now();
        framesPerSecond = 0.9 * framesPerSecond + 0.1 * (1000 / (now - last));
        last = now;
        showResults(result, ` · ${framesPerSecond.toFixed(0)} frames/s`);
        frames += 1;
        if (document.body.dataset.state === 'camera-error') setStatus('Classifying the camera’s frames.');
        document.body.dataset.state = 'camera';
      } catch (error) {
        failures += 1;
        setStatus(`A camera frame could not be classified (${error.message}); trying the next one.`, {error: true});
        document.body.dataset.state = 'camera-error';
      } finally {
        busy = false;
        document.body.dataset.frames = frames;
        document.body.dataset.frameFailures = failures;
      }
    }
    requestAnimationFrame(step);
  };
  requestAnimationFrame(step);
}

function stopCamera() {
  if (!cameraStream) return;
  for (const track of cameraStream.getTracks()) track.stop();
  cameraStream = null;
  $('video').hidden = true;
  $('camera-button').textContent = 'Start camera';
}

async function showSamples() {
  const response = await fetch('samples.json');
  const names = response.ok ? await response.json() : [];
  $('samples').replaceChildren(...names.map((name) => {
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'sample';
    button.title = name;
    const thumbnail = document.createElement('img');
    thumbnail.src = `samples/${name}`;
    thumbnail.alt = name.replace(/\.png$/, '');
    button.append(thumbnail);
    button.addEventListener('click', () => classifyPicture(`samples/${name}`, name));
    return button;
  }));
}

async function main() {
  try {
    const response = await fetch('model.json');
    if (!response.ok) throw new Error(`model.json: HTTP ${response.status}`);
    info = await response.json();
    const [, height, width] = info.input.shape;
    $('model').textContent = `${info.name} · ${info.input.dtype} input ${width}×${height} · ${info.labels.length} classes`;

    const opened = await openModel();
    model = opened.model;
    accelerator = opened.accelerator;
    $('backend').textContent = opened.sentence;
    $('backend').dataset.accelerator = opened.accelerator;
  } catch (error) {
    setStatus(`Could not start: ${error.message}`, {error: true});
    document.body.dataset.state = 'error';
    return;
  }

  $('file-input').disabled = false;
  $('camera-button').disabled = false;
  $('file-input').addEventListener('change', (event) => {
    const file = event.target.files[0];
    if (file) classifyPicture(URL.createObjectURL(file), file.name);
  });
  $('camera-button').addEventListener('click', () => (cameraStream ? stopCamera() : startCamera()));
  await showSamples();
  setStatus('Ready: start the camera, choose a picture or tap a sample.');
  document.body.dataset.state = 'ready';
}

main();

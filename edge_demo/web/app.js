// The browser demo: a keras-resnet .tflite classifier run by LiteRT.js on WebGPU (a phone's GPU) when
// the browser has it and its answers pass the model's self-test, on WASM/XNNPACK otherwise. Pictures
// come from the camera or a chosen file and go through the model's evaluation transform
// (preprocess.js: what classify.py and Keras' evaluation apply), transparency over white, raw
// [0, 255] pixels (quantized for integer models).
import {isWebGPUSupported, loadAndCompile, loadLiteRt, supportsFeature, Tensor} from '@litertjs/core';
import {inputPixels} from './preprocess.js';

const WASM_DIR = '/vendor/litertjs/core/wasm/';
const INTEGER_TYPES = {uint8: Uint8Array, int8: Int8Array, int16: Int16Array, int32: Int32Array};
const $ = (id) => document.getElementById(id);

let model;        // the LiteRT.js CompiledModel
let info;         // /model.json: input and output tensors, labels, top_k, preprocessing, gpu verdict, selftest
const regionCanvas = document.createElement('canvas');  // the source pixels the resize reads, 1:1
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
  if (!whyNotGpu && info.gpu && !info.gpu.usable) {
    document.body.dataset.gpuCheck = 'cpu-only';
    whyNotGpu = `the conversion marked this model CPU only (on LiteRT's GPU accelerator ${info.gpu.reason})`;
  }
  if (!whyNotGpu) {
    // JSPI lets LiteRT.js run ops WebGPU lacks on WASM within one model; threads and JSPI exclude each other.
    await loadLiteRt(WASM_DIR, {jspi: await supportsFeature('jspi')});
    let gpuModel = null;
    let step = 'compile the model';
    try {
      gpuModel = await withGpuTimeout(loadAndCompile('model.tflite', {accelerator: 'webgpu'}), 'compiling the model');
      step = 'run the model';
      await withGpuTimeout(warmUp(gpuModel), 'its first run');
      step = "run the model's self-test";
      // An accelerator's answer is a claim until checked: the self-test pictures against the CPU's scores.
      const problem = await withGpuTimeout(selfTestProblem(gpuModel), 'its self-test');
      if (problem) {
        document.body.dataset.gpuCheck = 'failed';
        gpuModel.delete();
        return openOnWasm(`WebGPU's answers were wrong for this model: ${problem}`, {numThreads: 1});
      }
      document.body.dataset.gpuCheck = 'passed';
      const coverage = gpuModel.isFullyAccelerated ? 'every op on the GPU' : 'some ops fall back to WASM';
      return {model: gpuModel, accelerator: 'webgpu', sentence: `Running on WebGPU (${coverage}; its answers checked against the CPU's).`};
    } catch (error) {
      // A model whose GPU work never ended is left alone: deleting it under a pending run could fault.
      if (gpuModel && !(error instanceof GpuTimeout)) gpuModel.delete();
      const why = error instanceof GpuTimeout ? error.message : `WebGPU could not ${step} (${error.message})`;
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
// tensor data, through the model's evaluation transform.
function inputData(source, sourceWidth, sourceHeight) {
  const [, height, width] = info.input.shape;
  const cropFraction = info.preprocessing.crop_fraction;
  return tensorData(inputPixels(source, sourceWidth, sourceHeight, {width, height, cropFraction, canvas: regionCanvas}));
}

// RGB pixels (0-255) as the input tensor's values: quantized for an integer input.
function tensorData(rgb) {
  const IntegerArray = INTEGER_TYPES[info.input.dtype];
  if (!IntegerArray) return Float32Array.from(rgb);
  const {scale, zero_point: zeroPoint} = info.input;
  const [low, high] = integerRange(info.input.dtype);
  return IntegerArray.from(rgb, (value) => Math.min(high, Math.max(low, Math.round(value / (scale || 1) + zeroPoint))));
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

// Runs `compiled` once on input tensor data; returns the scores (dequantized).
async function scoresOf(compiled, data) {
  const [, height, width] = info.input.shape;
  const input = new Tensor(data, [1, height, width, 3]);
  const running = (async () => {
    const outputs = await compiled.run(input);
    const output = await outputs[0].moveTo('wasm');  // reading GPU results back is part of the cost
    const raw = output.toTypedArray();
    output.delete();
    for (const tensor of outputs) if (!tensor.deleted) tensor.delete();
    return raw;
  })();
  try {
    return scoresFrom(await (accelerator === 'webgpu' ? withGpuTimeout(running, 'a picture') : running));
  } finally {
    running.finally(() => input.delete()).catch(() => {});  // freed once the run is over, even a late one
  }
}

// Runs `compiled` (the page's model by default) once; returns the top classes and the milliseconds
// from input to scores on the CPU.
async function classify(source, sourceWidth, sourceHeight, compiled = model) {
  const data = inputData(source, sourceWidth, sourceHeight);
  const start = performance.now();
  const scores = await scoresOf(compiled, data);
  const milliseconds = performance.now() - start;
  const order = scores.map((score, index) => [score, index]).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  const top = order.slice(0, info.top_k).map(([score, index]) => ({label: info.labels[index], score}));
  return {top, milliseconds};
}

// What is wrong with `compiled`'s answers on the model's self-test pictures, against the CPU's scores
// that serve.py computed (keras_resnet.runtime.selftest, the same check classify.py makes); null when
// every class's probability is within the tolerance.
async function selfTestProblem(compiled) {
  const {pictures, expected, tolerance} = info.selftest;
  let worst = 0;
  let worstPicture = 0;
  for (let index = 0; index < pictures.length; index++) {
    const rgb = Uint8Array.from(atob(pictures[index]), (character) => character.charCodeAt(0));
    const scores = await scoresOf(compiled, tensorData(rgb));
    let difference = 0;
    scores.forEach((score, label) => {
      const gap = Math.abs(score - expected[index][label]);
      difference = Number.isNaN(gap) ? Infinity : Math.max(difference, gap);
    });
    if (difference > worst) {
      worst = difference;
      worstPicture = index;
    }
  }
  if (worst <= tolerance) return null;
  const plural = pictures.length === 1 ? '' : 's';
  // A broken GPU may answer anything: what is not a probability is said so, not printed.
  const amount = worst === Infinity ? 'a score that is not a number' : worst > 1 ? 'more than 1 (scores that are not probabilities)' : worst.toFixed(2);
  return `on ${pictures.length} self-test picture${plural} a class's probability differs from the CPU's by up to ` +
    `${amount} (picture ${worstPicture + 1}; tolerance ${tolerance.toFixed(2)})`;
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
    thumbnail.alt = name.replace(/\.[a-z]+$/i, '');
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
    $('top-heading').textContent = `Top ${info.top_k}`;

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

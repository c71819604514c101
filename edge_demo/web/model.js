// The page's model: a keras-resnet .tflite classifier opened with LiteRT.js on WebGPU (a phone's
// GPU) when the browser has it and its answers pass the model's self-test, on WASM/XNNPACK otherwise.
// A picture goes through the model's evaluation transform (preprocess.js) and the input tensor's
// quantization (tensors.js); what comes back is the top classes and the time the run took.
import {isWebGPUSupported, loadAndCompile, loadLiteRt, supportsFeature, Tensor} from '@litertjs/core';
import {inputPixels} from './preprocess.js';
import {describeSelfTest, scoresFrom, selfTestResult, tensorData, topClasses} from './tensors.js';

const WASM_DIR = '/vendor/litertjs/core/wasm/';
const MODEL_URL = 'model.tflite';

export class GpuTimeout extends Error {}

// WebGPU work that never finishes (a GPU process or driver fault; a software GPU once stalled like
// this) must not leave the page waiting for ever: past `seconds` it fails with GpuTimeout.
function withGpuTimeout(promise, seconds, what) {
  let timer;
  const timeout = new Promise((resolve, reject) => {
    timer = setTimeout(() => reject(new GpuTimeout(`WebGPU did not answer within ${seconds} s (${what})`)), seconds * 1000);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// One compiled model and what the page knows of it (/model.json: input and output tensors, labels,
// top_k, preprocessing, the conversion's GPU verdict, the self-test).
export class PageModel {
  constructor(compiled, info, {accelerator, gpuTimeoutSeconds}) {
    this.compiled = compiled;
    this.info = info;
    this.accelerator = accelerator;  // 'webgpu' or 'wasm'
    this.gpuTimeoutSeconds = gpuTimeoutSeconds;
    // Each picture's WebGPU run has a time limit once the model is open; while it opens, the limit of
    // the step under way (its first run, its self-test) names that step instead.
    this.opened = false;
    this.regionCanvas = document.createElement('canvas');  // the source pixels the resize reads, 1:1
  }

  // The top classes of `source` (an <img>, <video> or canvas of sourceWidth × sourceHeight) and the
  // milliseconds from input to scores.
  async classify(source, sourceWidth, sourceHeight) {
    const [, height, width] = this.info.input.shape;
    const rgb = inputPixels(source, sourceWidth, sourceHeight, {
      width, height, cropFraction: this.info.preprocessing.crop_fraction, canvas: this.regionCanvas,
    });
    const data = tensorData(rgb, this.info.input);
    const start = performance.now();
    const scores = await this.scores(data);
    return {top: topClasses(scores, this.info.labels, this.info.top_k), milliseconds: performance.now() - start};
  }

  // The probabilities of one picture's input tensor data (tensorData of its pixels at the input's size).
  async scores(data) {
    const [, height, width] = this.info.input.shape;
    const input = new Tensor(data, [1, height, width, 3]);
    const running = (async () => {
      const outputs = await this.compiled.run(input);
      const output = await outputs[0].moveTo('wasm');  // reading GPU results back is part of the cost
      const raw = output.toTypedArray();
      output.delete();
      for (const tensor of outputs) if (!tensor.deleted) tensor.delete();
      return raw;
    })();
    try {
      const raw = await (this.accelerator === 'webgpu' && this.opened ? withGpuTimeout(running, this.gpuTimeoutSeconds, 'a picture') : running);
      return scoresFrom(raw, this.info.output);
    } finally {
      running.finally(() => input.delete()).catch(() => {});  // freed once the run is over, even a late one
    }
  }

  // What is wrong with the answers on the model's self-test pictures, against the CPU's scores that
  // serve.py computed (keras_resnet.runtime.selftest, the check classify.py makes); null when every
  // class's probability is within the tolerance.
  async selfTestProblem() {
    const {pictures, expected, tolerance} = this.info.selftest;
    const scores = [];
    for (const picture of pictures) {
      const rgb = Uint8Array.from(atob(picture), (character) => character.charCodeAt(0));
      scores.push(await this.scores(tensorData(rgb, this.info.input)));
    }
    const result = selfTestResult(scores, expected, tolerance);
    return result.passed ? null : describeSelfTest(result, tolerance);
  }

  // The first run sets up kernels (and GPU pipelines): done once, on a blank picture, before the page is ready.
  async warmUp() {
    const [, height, width] = this.info.input.shape;
    const blank = document.createElement('canvas');
    blank.width = width;
    blank.height = height;
    await this.classify(blank, width, height);
  }

  delete() {
    this.compiled.delete();
  }
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

// Opens the model: WebGPU first (unless `requested` is 'wasm'), WASM when the browser has no WebGPU,
// the conversion marked the model CPU only, or WebGPU cannot compile it, run it or pass its self-test.
// `onGpuCheck` hears the GPU check's outcome as soon as it is known ('cpu-only', 'failed' or
// 'passed'), before WASM is opened. Returns {model: PageModel, sentence: where it runs and why}.
export async function openModel(info, {requested = null, gpuTimeoutSeconds = 30, onGpuCheck = () => {}} = {}) {
  let whyNotGpu = requested === 'wasm' ? 'WASM was asked for (?accelerator=wasm)' : await webGpuUnavailable();
  if (!whyNotGpu && info.gpu && !info.gpu.usable) {
    onGpuCheck('cpu-only');
    whyNotGpu = `the conversion marked this model CPU only (on LiteRT's GPU accelerator ${info.gpu.reason})`;
  }
  if (!whyNotGpu) {
    // JSPI lets LiteRT.js run ops WebGPU lacks on WASM within one model; threads and JSPI exclude each other.
    await loadLiteRt(WASM_DIR, {jspi: await supportsFeature('jspi')});
    const opened = await openOnWebGpu(info, {gpuTimeoutSeconds, onGpuCheck});
    if (opened.model) return opened;
    return openOnWasm(info, opened.whyNot, {numThreads: 1});
  }
  // Threads need relaxed SIMD and cross-origin isolation (serve.py sends the COOP/COEP headers).
  const threads = self.crossOriginIsolated && (await supportsFeature('relaxedSimd')) && (await supportsFeature('threads'));
  await loadLiteRt(WASM_DIR, {threads});
  return openOnWasm(info, whyNotGpu, {numThreads: threads ? Math.min(navigator.hardwareConcurrency || 1, 4) : 1});
}

// The model on WebGPU, checked: {model, sentence}, or {whyNot} when it cannot be used there.
async function openOnWebGpu(info, {gpuTimeoutSeconds, onGpuCheck}) {
  let gpuModel = null;
  let step = 'compile the model';
  try {
    const compiled = await withGpuTimeout(loadAndCompile(MODEL_URL, {accelerator: 'webgpu'}), gpuTimeoutSeconds, 'compiling the model');
    gpuModel = new PageModel(compiled, info, {accelerator: 'webgpu', gpuTimeoutSeconds});
    step = 'run the model';
    await withGpuTimeout(gpuModel.warmUp(), gpuTimeoutSeconds, 'its first run');
    step = "run the model's self-test";
    // An accelerator's answer is a claim until checked: the self-test pictures against the CPU's scores.
    const problem = await withGpuTimeout(gpuModel.selfTestProblem(), gpuTimeoutSeconds, 'its self-test');
    if (problem) {
      onGpuCheck('failed');
      gpuModel.delete();
      return {whyNot: `WebGPU's answers were wrong for this model: ${problem}`};
    }
    onGpuCheck('passed');
    gpuModel.opened = true;
    const coverage = compiled.isFullyAccelerated ? 'every op on the GPU' : 'some ops fall back to WASM';
    return {model: gpuModel, sentence: `Running on WebGPU (${coverage}; its answers checked against the CPU's).`};
  } catch (error) {
    // A model whose GPU work never ended is left alone: deleting it under a pending run could fault.
    if (gpuModel && !(error instanceof GpuTimeout)) gpuModel.delete();
    return {whyNot: error instanceof GpuTimeout ? error.message : `WebGPU could not ${step} (${error.message})`};
  }
}

async function openOnWasm(info, whyNotGpu, {numThreads}) {
  const compiled = await loadAndCompile(MODEL_URL, {accelerator: 'wasm', cpuOptions: {numThreads}});
  const model = new PageModel(compiled, info, {accelerator: 'wasm'});
  await model.warmUp();
  model.opened = true;
  const threadWord = numThreads === 1 ? 'thread' : 'threads';
  return {model, sentence: `Running on WASM with XNNPACK (${numThreads} ${threadWord}): ${whyNotGpu}.`};
}

// The browser demo's page: the model (model.js) on the camera's frames, a chosen file or a sample
// picture, with the top classes, the time per frame and where the model runs. The page's state is
// the one `page` object; what tests and people read of it is in document.body.dataset.
import {openModel} from './model.js';

const $ = (id) => document.getElementById(id);
const parameters = new URLSearchParams(location.search);

const page = {
  model: null,         // the PageModel, once open
  cameraStream: null,  // the camera's MediaStream while it runs
  busy: false,         // a picture or frame is being classified
};

function setStatus(message, {error = false} = {}) {
  $('status').textContent = message;
  $('status').classList.toggle('error', error);
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
  page.busy = true;
  try {
    showResults(await page.model.classify(picture, picture.naturalWidth, picture.naturalHeight));
    setStatus(`${name} classified.`);
    document.body.dataset.state = 'classified';
  } catch (error) {
    setStatus(`Classifying ${name} failed: ${error.message}`, {error: true});
    document.body.dataset.state = 'error';
  } finally {
    page.busy = false;
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
    page.cameraStream = await navigator.mediaDevices.getUserMedia({video: {facingMode: 'environment'}, audio: false});
  } catch (error) {
    setStatus(`No camera: ${error.message}`, {error: true});
    return;
  }
  const video = $('video');
  video.srcObject = page.cameraStream;
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
    if (!page.cameraStream) return;
    if (!page.busy && video.videoWidth) {
      page.busy = true;
      try {
        const result = await page.model.classify(video, video.videoWidth, video.videoHeight);
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
        page.busy = false;
        document.body.dataset.frames = frames;
        document.body.dataset.frameFailures = failures;
      }
    }
    requestAnimationFrame(step);
  };
  requestAnimationFrame(step);
}

function stopCamera() {
  if (!page.cameraStream) return;
  for (const track of page.cameraStream.getTracks()) track.stop();
  page.cameraStream = null;
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
    const info = await response.json();
    const [, height, width] = info.input.shape;
    $('model').textContent = `${info.name} · ${info.input.dtype} input ${width}×${height} · ${info.labels.length} classes`;
    $('top-heading').textContent = `Top ${info.top_k}`;

    const opened = await openModel(info, {
      requested: parameters.get('accelerator'),
      // ?gpu-timeout=S: past S seconds of WebGPU work the start falls back to WASM, a picture fails.
      gpuTimeoutSeconds: Number(parameters.get('gpu-timeout')) || 30,
      onGpuCheck: (outcome) => { document.body.dataset.gpuCheck = outcome; },
    });
    page.model = opened.model;
    $('backend').textContent = opened.sentence;
    $('backend').dataset.accelerator = opened.model.accelerator;
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
  $('camera-button').addEventListener('click', () => (page.cameraStream ? stopCamera() : startCamera()));
  await showSamples();
  setStatus('Ready: start the camera, choose a picture or tap a sample.');
  document.body.dataset.state = 'ready';
}

main();

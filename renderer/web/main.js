// latentcast browser renderer: a VRM (three.js + three-vrm) driven by the renderer host's WebSocket.
// The host computes the pose (normalised humanoid bone rotations, VRM 1.0 names, the avatar facing +Z)
// and the expression weights; this page applies them, measures capture -> browser-frame latency with a
// clock-offset estimate (ping/pong) and reports it with its frame rate back to the host.
import * as THREE from 'three';
import { GLTFLoader } from 'three/addons/loaders/GLTFLoader.js';
import { VRMLoaderPlugin, VRMUtils } from '@pixiv/three-vrm';

const STALE_MS = 500; // no frame for this long: the stream stopped, tracking is lost
// ?fps=N caps drawing (a recorder or a weak machine); default: every animation frame.
const MAX_FPS = Number(new URLSearchParams(location.search).get('fps')) || 0;
const canvas = document.getElementById('view');
const statusEl = document.getElementById('status');
const overlayEl = document.getElementById('overlay');
const labelsEl = document.getElementById('labels');
const nameEl = document.getElementById('avatar-name');

const renderer = new THREE.WebGLRenderer({ canvas, antialias: true, preserveDrawingBuffer: true });
renderer.setPixelRatio(window.devicePixelRatio || 1);
renderer.outputColorSpace = THREE.SRGBColorSpace;
const scene = new THREE.Scene();
scene.background = new THREE.Color(0xdfe6f0);
const camera = new THREE.PerspectiveCamera(32, 1, 0.05, 20);
camera.position.set(0, 1.12, 2.7);
camera.lookAt(0, 1.0, 0);
scene.add(new THREE.HemisphereLight(0xffffff, 0x8090a8, 1.6));
const sun = new THREE.DirectionalLight(0xffffff, 1.8);
sun.position.set(0.8, 2.0, 2.0);
scene.add(sun);
const floor = new THREE.Mesh(new THREE.CircleGeometry(0.8, 48), new THREE.MeshStandardMaterial({ color: 0xc6d0de }));
floor.rotation.x = -Math.PI / 2;
scene.add(floor);

function resize() {
  const w = window.innerWidth, h = window.innerHeight;
  renderer.setSize(w, h, false);
  camera.aspect = w / h;
  camera.updateProjectionMatrix();
}
window.addEventListener('resize', resize);
resize();

// ------------------------------------------------------------------------------------------ avatar
const state = {
  vrm: null, vrm0: false, connected: false, frames: 0, messages: 0, lastSeq: -1, lastMessageAt: -Infinity,
  tracking: 'waiting', avatar: '', error: '', latest: null, pendingCapture: null,
};
window.__latentcast = state; // read by the browser tests

const loader = new GLTFLoader();
loader.register((parser) => new VRMLoaderPlugin(parser));

function useVrm(gltf, name) {
  const vrm = gltf.userData.vrm;
  if (!vrm) throw new Error(`${name} has no VRM extension`);
  if (state.vrm) {
    scene.remove(state.vrm.scene);
    VRMUtils.deepDispose(state.vrm.scene);
  }
  state.vrm0 = vrm.meta && vrm.meta.metaVersion === '0';
  VRMUtils.rotateVRM0(vrm); // 0.x faces -Z: turn it to face the camera like 1.0
  vrm.scene.traverse((o) => { o.frustumCulled = false; });
  if (vrm.lookAt) vrm.lookAt.autoUpdate = false; // gaze comes from the stream (yaw/pitch)
  scene.add(vrm.scene);
  state.vrm = vrm;
  state.avatar = name;
  nameEl.textContent = `${name} (VRM ${state.vrm0 ? '0.x' : '1.0'})`;
  if (state.latest) applyFrame(state.latest);
}

async function loadUrl(url, name) {
  try { useVrm(await loader.loadAsync(url), name); } catch (e) { showError(e); }
}

function loadFile(file) {
  file.arrayBuffer().then((buffer) => {
    loader.parse(buffer, '', (gltf) => { try { useVrm(gltf, file.name); } catch (e) { showError(e); } }, showError);
  });
}

function showError(e) {
  state.error = String(e && e.message ? e.message : e);
  nameEl.textContent = `could not load the avatar: ${state.error}`;
}

window.addEventListener('dragover', (e) => { e.preventDefault(); document.body.classList.add('dragging'); });
window.addEventListener('dragleave', () => document.body.classList.remove('dragging'));
window.addEventListener('drop', (e) => {
  e.preventDefault();
  document.body.classList.remove('dragging');
  const file = e.dataTransfer && e.dataTransfer.files[0];
  if (file) loadFile(file);
});
document.getElementById('file').addEventListener('change', (e) => { if (e.target.files[0]) loadFile(e.target.files[0]); });

loadUrl('/avatar/default.vrm', 'latentcast default avatar');

// ------------------------------------------------------------------------------------------ pose
const q = new THREE.Quaternion();
function applyFrame(msg) {
  const vrm = state.vrm;
  if (!vrm) return;
  for (const [name, r] of Object.entries(msg.bones)) {
    if (name === 'leftEye' || name === 'rightEye') continue; // gaze goes through lookAt (the avatar's range maps)
    const node = vrm.humanoid.getNormalizedBoneNode(name);
    if (!node) continue;
    // Rotations are for an avatar facing +Z; a 0.x avatar's own frame faces -Z (a half turn about Y).
    if (state.vrm0) q.set(-r[0], r[1], -r[2], r[3]); else q.set(r[0], r[1], r[2], r[3]);
    node.quaternion.copy(q);
  }
  if (vrm.expressionManager) {
    for (const [name, v] of Object.entries(msg.expressions)) vrm.expressionManager.setValue(name, v);
  }
  if (vrm.lookAt && msg.gaze) {
    vrm.lookAt.yaw = msg.gaze[0];
    vrm.lookAt.pitch = msg.gaze[1];
  }
}

// ------------------------------------------------------------------------------------------ stream
const clock = { samples: [], offset: 0 }; // host_ms ~= performance.now() + offset
let ws = null;
let latencies = [];

function hostNow() { return performance.now() + clock.offset; }

function connect() {
  ws = new WebSocket(`ws://${location.host}/ws`);
  ws.onopen = () => { state.connected = true; for (let i = 0; i < 5; i++) setTimeout(ping, i * 100); };
  ws.onmessage = (ev) => {
    const msg = JSON.parse(ev.data);
    if (msg.type === 'pong') {
      const now = performance.now();
      clock.samples.push({ rtt: now - msg.t, offset: msg.host_ms - (msg.t + now) / 2 });
      if (clock.samples.length > 30) clock.samples.shift();
      clock.offset = clock.samples.reduce((a, b) => (b.rtt < a.rtt ? b : a)).offset; // fastest round trip
      return;
    }
    if (msg.type !== 'frame') return;
    state.messages += 1;
    state.lastMessageAt = performance.now();
    state.latest = msg;
    if (msg.seq !== state.lastSeq && msg.capture_ms !== null) state.pendingCapture = msg.capture_ms;
    state.lastSeq = msg.seq;
    setTracking(msg.tracking.ok ? 'tracking' : 'lost');
    const l = msg.labels;
    labelsEl.textContent = [l.face, l.left, l.right].filter((s) => s && s !== 'unknown').join(' · ');
    applyFrame(msg);
  };
  ws.onclose = () => { ws = null; state.connected = false; setTimeout(connect, 1000); };
}

function ping() {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'ping', t: performance.now() }));
}
setInterval(ping, 1000);

function setTracking(s) {
  if (state.tracking === s) return;
  state.tracking = s;
  statusEl.className = `badge ${s === 'tracking' ? 'tracking' : s === 'lost' ? 'lost' : 'waiting'}`;
  statusEl.textContent = s === 'tracking' ? 'tracking' : s === 'lost' ? 'tracking lost' : 'waiting for the stream';
}

// ------------------------------------------------------------------------------------------ frames
let frameTimes = [];
let lastT = performance.now();
let reportAt = performance.now() + 1000;

function percentile(values, p) {
  if (!values.length) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
}

function loop() {
  requestAnimationFrame(loop);
  const now = performance.now();
  if (MAX_FPS && now - lastT < 1000 / MAX_FPS - 2) return;
  const dt = Math.min((now - lastT) / 1000, 0.1);
  lastT = now;
  if (state.messages && now - state.lastMessageAt > STALE_MS) setTracking('lost');
  if (state.vrm) state.vrm.update(dt);
  renderer.render(scene, camera);
  state.frames += 1;
  frameTimes.push(now);
  while (frameTimes.length && now - frameTimes[0] > 1000) frameTimes.shift();
  if (state.pendingCapture !== null) {
    latencies.push(hostNow() - state.pendingCapture); // capture on the edge -> this frame drawn
    state.pendingCapture = null;
  }
  if (now >= reportAt) {
    reportAt = now + 1000;
    const lat = latencies.slice(-90);
    overlayEl.textContent = `fps ${frameTimes.length} · capture→frame p50 ${
      lat.length ? percentile(lat, 0.5).toFixed(1) : '–'} ms · p95 ${lat.length ? percentile(lat, 0.95).toFixed(1) : '–'} ms`;
    if (ws && ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify({ type: 'stats', fps: frameTimes.length, latency_ms: latencies }));
    }
    latencies = [];
  }
}
connect();
loop();

// vosuite app: the page. The server holds the frames and masks; the page holds one frame and the
// label map being edited (Uint8Array, one object id per pixel) at a time.
"use strict";

const $ = (id) => document.getElementById(id);
// this page's own session (a fresh one per page load, so tabs and reloads never share or end another's)
const SESSION = document.querySelector('meta[name="vosuite-session"]').content;
const withSession = (path) => `${path}${path.includes("?") ? "&" : "?"}session=${encodeURIComponent(SESSION)}`;
const state = {
  video: null,          // {name, num_frames, height, width, fps}
  frame: 0,
  labels: null,         // Uint8Array [height * width]: the mask shown / edited
  kind: "empty",        // where the mask came from: annotation, propagated, empty
  dirty: false,         // edited since loaded or saved
  image: null,          // the frame's HTMLImageElement
  palette: [],
  objects: 1,
  polygon: [],          // vertices [x, y] of the polygon being drawn
  drawing: false,
  last: null,           // last brush point
  polling: null,
  loadToken: 0,
};

// -- messages and requests ---------------------------------------------------------------------
function say(text, kind = "info") {
  const box = $("message");
  box.textContent = text;
  box.className = kind;
}

async function api(path, options = {}) {
  const response = await fetch(withSession(path), options);
  if (!response.ok) {
    let text = `${response.status} ${response.statusText}`;
    try { text = (await response.json()).error || text; } catch (e) { /* not JSON */ }
    throw new Error(text);
  }
  return response;
}

async function json(path, body) {
  const options = body === undefined ? {} : {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)};
  return (await api(path, options)).json();
}

function guard(action) {
  return async (...args) => {
    try { await action(...args); } catch (error) { say(error.message, "error"); }
  };
}

// -- models ------------------------------------------------------------------------------------
async function loadMenus() {
  const menus = await json("/api/models");
  state.palette = menus.palette;
  fill($("model"), menus.propagate, menus.default);
  fill($("discover-model"), menus.discover, menus.discover_default);
  $("runtime").innerHTML = menus.runtimes.map((r) => `<option value="${r}">${r}</option>`).join("");
  setObjects(1);
}

function fill(select, entries, chosen) {
  select.innerHTML = entries.map((m) =>
    `<option value="${m.name}" ${m.name === chosen ? "selected" : ""} title="${m.summary}">` +
    `${m.name}</option>`).join("");
}

function setObjects(count) {
  state.objects = count;
  const select = $("object-id");
  const chosen = Number(select.value || 1);
  select.innerHTML = Array.from({length: count}, (_, i) => `<option value="${i + 1}">${i + 1}</option>`).join("");
  select.value = String(Math.min(chosen, count));
  showSwatch();
}

function showSwatch() {
  const [r, g, b] = state.palette[Number($("object-id").value)] || [0, 0, 0];
  $("object-swatch").style.background = `rgb(${r},${g},${b})`;
}

// -- the video ---------------------------------------------------------------------------------
function opened(result) {
  state.video = result.video;
  const v = state.video;
  $("video-info").textContent = `${v.name}: ${v.num_frames} frames, ${v.width}x${v.height}, ${v.fps.toFixed(1)} fps`;
  $("frame-slider").max = String(v.num_frames - 1);
  $("view").width = v.width;
  $("view").height = v.height;
  fitCanvas();
  setObjects(1);
  say(`opened ${v.name}: draw the objects on a frame, then Save mask`);
  return showFrame(0);
}

async function uploadFile() {
  const file = $("upload-file").files[0];
  if (!file) return;
  say(`uploading ${file.name} ...`);
  const response = await api(`/api/open/upload?name=${encodeURIComponent(file.name)}`,
                             {method: "POST", body: file});
  await opened(await response.json());
}

async function openPath() {
  say("opening ...");
  await opened(await json("/api/open/path", {path: $("path-input").value}));
}

async function showFrame(index, keepEdits = false) {
  if (!state.video) return;
  const v = state.video;
  index = Math.max(0, Math.min(v.num_frames - 1, index));
  const token = ++state.loadToken;
  const [image, mask] = await Promise.all([loadImage(`/api/frame/${index}?t=${Date.now()}`),
                                           api(`/api/mask/${index}?t=${Date.now()}`)]);
  const bytes = new Uint8Array(await mask.arrayBuffer());
  if (token !== state.loadToken) return;  // a later request won
  state.frame = index;
  state.image = image;
  if (!keepEdits) {
    state.labels = bytes;
    state.kind = mask.headers.get("X-Mask-Kind");
    state.dirty = false;
    const highest = bytes.reduce((m, x) => (x < 255 && x > m ? x : m), 0);
    if (highest > state.objects) setObjects(highest);
  }
  state.polygon = [];
  $("frame-slider").value = String(index);
  $("frame-text").textContent = `frame ${index} / ${v.num_frames - 1}`;
  $("mask-kind").textContent = state.dirty ? "(edited, not saved)" : `(${state.kind})`;
  render();
}

function loadImage(url) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error(`could not load ${url}`));
    image.src = withSession(url);
  });
}

// Show the frame as large as the viewer allows (drawing maps pointer positions back to pixels).
function fitCanvas() {
  if (!state.video) return;
  const canvas = $("view");
  const room = canvas.parentElement.clientWidth - 16;
  const scale = Math.min(room / state.video.width, (0.75 * window.innerHeight) / state.video.height);
  canvas.style.width = `${Math.floor(state.video.width * scale)}px`;
  canvas.style.height = `${Math.floor(state.video.height * scale)}px`;
}

// -- drawing -----------------------------------------------------------------------------------
function render() {
  const canvas = $("view");
  const context = canvas.getContext("2d");
  if (state.image) context.drawImage(state.image, 0, 0, canvas.width, canvas.height);
  if (state.labels) {
    const overlay = context.getImageData(0, 0, canvas.width, canvas.height);
    const pixels = overlay.data;
    const labels = state.labels;
    const width = canvas.width;
    for (let i = 0; i < labels.length; i++) {
      const id = labels[i];
      if (id === 0 || id === 255) continue;
      const [r, g, b] = state.palette[id];
      const x = i % width;
      const edge = (x > 0 && labels[i - 1] !== id) || (x < width - 1 && labels[i + 1] !== id) ||
                   labels[i - width] !== id || labels[i + width] !== id;  // out of range: undefined
      const keep = edge ? 0 : 0.45;  // the object's outline in its full colour, its inside blended
      pixels[4 * i] = keep * pixels[4 * i] + (1 - keep) * r;
      pixels[4 * i + 1] = keep * pixels[4 * i + 1] + (1 - keep) * g;
      pixels[4 * i + 2] = keep * pixels[4 * i + 2] + (1 - keep) * b;
    }
    context.putImageData(overlay, 0, 0);
  }
  if (state.polygon.length) {
    context.strokeStyle = "yellow";
    context.lineWidth = 2;
    context.beginPath();
    state.polygon.forEach(([x, y], i) => (i ? context.lineTo(x, y) : context.moveTo(x, y)));
    context.stroke();
  }
}

function tool() {
  return document.querySelector("input[name=tool]:checked").value;
}

function canvasPoint(event) {
  const canvas = $("view");
  const box = canvas.getBoundingClientRect();
  return [(event.clientX - box.left) * canvas.width / box.width,
          (event.clientY - box.top) * canvas.height / box.height];
}

// Paint a shape drawn by `draw(context)` on an offscreen canvas into the label map.
function paint(draw, id) {
  const v = state.video;
  const scratch = document.createElement("canvas");
  scratch.width = v.width;
  scratch.height = v.height;
  const context = scratch.getContext("2d");
  context.fillStyle = context.strokeStyle = "white";
  draw(context);
  const alpha = context.getImageData(0, 0, v.width, v.height).data;
  for (let i = 0; i < state.labels.length; i++) {
    if (alpha[4 * i + 3] >= 128) state.labels[i] = id;
  }
  state.dirty = true;
  $("mask-kind").textContent = "(edited, not saved)";
  render();
}

function brushStroke(from, to) {
  const id = tool() === "eraser" ? 0 : Number($("object-id").value);
  const size = Number($("brush-size").value);
  paint((context) => {
    context.lineWidth = size;
    context.lineCap = "round";
    context.beginPath();
    context.moveTo(from[0], from[1]);
    context.lineTo(to[0] + 0.01, to[1]);
    context.stroke();
  }, id);
}

function closePolygon() {
  if (state.polygon.length < 3) { state.polygon = []; render(); return; }
  const points = state.polygon;
  state.polygon = [];
  paint((context) => {
    context.beginPath();
    points.forEach(([x, y], i) => (i ? context.lineTo(x, y) : context.moveTo(x, y)));
    context.closePath();
    context.fill();
  }, Number($("object-id").value));
}

function pointerDown(event) {
  if (!state.video || !state.labels) return;
  const point = canvasPoint(event);
  if (tool() === "polygon") {
    state.polygon.push(point);
    render();
    return;
  }
  state.drawing = true;
  state.last = point;
  $("view").setPointerCapture?.(event.pointerId);
  brushStroke(point, point);
}

function pointerMove(event) {
  if (!state.drawing) return;
  const point = canvasPoint(event);
  brushStroke(state.last, point);
  state.last = point;
}

function pointerUp() {
  state.drawing = false;
}

async function saveMask() {
  if (!state.video) throw new Error("open a video first");
  const v = state.video;
  await api(`/api/annotation/${state.frame}?width=${v.width}&height=${v.height}`,
            {method: "PUT", headers: {"Content-Type": "application/octet-stream"}, body: state.labels});
  state.dirty = false;
  state.kind = "annotation";
  $("mask-kind").textContent = "(annotation)";
  say(`saved the mask of frame ${state.frame}: propagate from here`);
}

async function clearMask() {
  if (!state.video) return;
  await api(`/api/annotation/${state.frame}`, {method: "DELETE"});
  state.labels = new Uint8Array(state.video.width * state.video.height);
  state.dirty = false;
  state.kind = "empty";
  render();
  say(`cleared frame ${state.frame}'s mask`);
}

async function importMask() {
  const file = $("import-mask").files[0];
  if (!file) return;
  await api(`/api/annotation/${state.frame}/import?name=${encodeURIComponent(file.name)}`,
            {method: "POST", body: file});
  $("import-mask").value = "";
  await showFrame(state.frame);
  say(`imported ${file.name} as frame ${state.frame}'s mask`);
}

// -- jobs --------------------------------------------------------------------------------------
async function propagate(direction) {
  if (state.dirty) await saveMask();
  const result = await json("/api/propagate", {frame: state.frame, direction, model: $("model").value,
                                               runtime: $("runtime").value});
  say(`following the objects ${direction} from frame ${state.frame} with ${$("model").value}`);
  watch(result.job);
}

async function discover() {
  const result = await json("/api/discover", {model: $("discover-model").value});
  say(`finding objects with ${$("discover-model").value}`);
  watch(result.job);
}

function watch(job) {
  showJob(job);
  clearInterval(state.polling);
  state.polling = setInterval(guard(poll), 300);
}

async function poll() {
  const status = await json("/api/status");
  const job = status.job;
  showJob(job);
  // never throw away a mask being edited: the live view pauses while there are unsaved edits
  if (job && $("follow").checked && !state.dirty && job.latest !== null && job.latest !== state.frame) {
    await showFrame(job.latest);
  }
  if (!job || job.state !== "running") {
    clearInterval(state.polling);
    state.polling = null;
    if (job && job.state === "failed") say(job.error, "error");
    else if (job) {
      say(`${job.kind} ${job.state}: ${job.done} frames at ${job.fps} fps`);
      await showFrame(state.frame, state.dirty);
    }
  }
}

function showJob(job) {
  const running = Boolean(job && job.state === "running");
  ["propagate-forward", "propagate-backward", "propagate-both", "discover"].forEach((id) => {
    $(id).disabled = running;
  });
  if (!job) return;
  $("progress").max = Math.max(1, job.total);
  $("progress").value = job.done;
  $("job-text").textContent = `${job.kind}: ${job.state}, ${job.done} / ${job.total} frames, ${job.fps} fps`;
  $("job-text").dataset.state = job.state;
}

// Downloads go through api(), so a refusal (no video, a job running) is shown, never saved as the file.
async function download(event) {
  event.preventDefault();
  if (!state.video) throw new Error("open a video first");
  const link = event.currentTarget;
  say(`preparing ${link.dataset.file} ...`);
  const response = await api(link.getAttribute("href"));
  const disposition = response.headers.get("Content-Disposition") || "";
  const name = (disposition.match(/filename="?([^";]+)"?/) || [null, link.dataset.file])[1];
  const url = URL.createObjectURL(await response.blob());
  const anchor = document.createElement("a");
  anchor.href = url;
  anchor.download = name;
  anchor.click();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
  say(`downloaded ${name}`);
}

async function stop() {
  await json("/api/stop", {});
  say("stopped");
}

// -- wiring ------------------------------------------------------------------------------------
function wire() {
  $("upload-file").addEventListener("change", guard(uploadFile));
  $("open-path").addEventListener("click", guard(openPath));
  $("path-input").addEventListener("keydown", (e) => { if (e.key === "Enter") guard(openPath)(); });
  $("frame-slider").addEventListener("input", guard(() => showFrame(Number($("frame-slider").value))));
  $("prev").addEventListener("click", guard(() => showFrame(state.frame - 1)));
  $("next").addEventListener("click", guard(() => showFrame(state.frame + 1)));
  $("object-id").addEventListener("change", showSwatch);
  $("add-object").addEventListener("click", () => { setObjects(state.objects + 1); $("object-id").value =
    String(state.objects); showSwatch(); });
  $("save-mask").addEventListener("click", guard(saveMask));
  $("clear-mask").addEventListener("click", guard(clearMask));
  $("close-polygon").addEventListener("click", closePolygon);
  $("import-mask").addEventListener("change", guard(importMask));
  $("propagate-forward").addEventListener("click", guard(() => propagate("forward")));
  $("propagate-backward").addEventListener("click", guard(() => propagate("backward")));
  $("propagate-both").addEventListener("click", guard(() => propagate("both")));
  $("discover").addEventListener("click", guard(discover));
  $("stop").addEventListener("click", guard(stop));
  const view = $("view");
  view.addEventListener("pointerdown", pointerDown);
  view.addEventListener("pointermove", pointerMove);
  view.addEventListener("pointerup", pointerUp);
  view.addEventListener("pointerleave", pointerUp);
  view.addEventListener("dblclick", closePolygon);
  for (const link of ["download-masks", "download-overlay"]) {
    $(link).addEventListener("click", guard(download));
  }
  window.addEventListener("resize", fitCanvas);
  window.addEventListener("pagehide", () => navigator.sendBeacon(withSession("/api/session/close")));
}

wire();
guard(loadMenus)();

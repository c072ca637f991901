// ferkit web page: Photo, Webcam and the Best Actor game. Plain ES2020, and no request leaves this
// server: every URL below is relative (v1/predict, v1/models, healthz, ondevice.json, models/, ort/).
// Camera frames are analysed on this device (ondevice.js, ONNX Runtime Web) unless the user picks the
// server, or the on-device model cannot load; photos always go to the server.
"use strict";

(() => {
  // ---------------------------------------------------------------------------------------------
  // Settings, classes and colours
  // ---------------------------------------------------------------------------------------------

  /** The game's settings, read at the start of each game. A test may shorten them, or set ``actMs``,
   * ``holdMs`` and ``threshold`` (0-1), which otherwise come from the difficulty. */
  window.ferkitGame = window.ferkitGame || { rounds: 5, countdownMs: 3000 };
  /** What the webcam loop measured since the camera started (for benchmarks/web_fps.py). */
  window.ferkitStats = { frames: 0, ms: [], started: 0 };
  document.body.dataset.gameState = "idle";

  const DEFAULT_CLASSES = ["Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral"];
  const COLORS = {
    Angry: "#dc2828", Disgust: "#78a028", Fear: "#963cc8", Happy: "#fac800",
    Sad: "#3278dc", Surprise: "#fa8c1e", Neutral: "#a0a0a0", Contempt: "#1ea5a0",
  };
  Object.assign(COLORS, { Anger: COLORS.Angry, Happiness: COLORS.Happy, Sadness: COLORS.Sad });  // FER+ names
  const EXTRA_COLORS = ["#c83c8c", "#6e6edc", "#8c6e46", "#3ca050"];
  const HIGH_SCORE_KEY = "ferkit.bestActor.highScore";
  const BESTS_KEY = "ferkit.bestActor.bestPerEmotion";
  const DIFFICULTY_KEY = "ferkit.bestActor.difficulty";
  const ENGINE_KEY = "ferkit.engine";
  /** Hold: the stretch over which the model's confidence is averaged; bar: the least score that counts;
   * act: how long a round lasts after its countdown. */
  const DIFFICULTIES = {
    easy: { holdMs: 1000, threshold: 0.35, actMs: 4000 },
    normal: { holdMs: 1500, threshold: 0.5, actMs: 4500 },
    hard: { holdMs: 2500, threshold: 0.65, actMs: 5500 },
  };
  /** Emotions the game never asks for: FER2013 has few Disgust faces and the model seldom sees it;
   * FER+ models (``--weights ferplus``) also have Contempt, rarer still. */
  const NOT_IN_GAME = ["Disgust", "Contempt"];
  const FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Noto Sans", "Liberation Sans", sans-serif';
  const MAX_PHOTO_SIDE = 1600;   // the photo canvas's longest side in canvas pixels, at most
  const MIN_PHOTO_SIDE = 1000;   // and at least
  const MAX_FRAME_SIDE = 960;    // camera frames are shrunk to this before upload
  const MIN_FRAME_MS = 50;       // at most ~20 frames/s from the webcam loop
  const JPEG_QUALITY = 0.85;

  let classes = DEFAULT_CLASSES.slice();
  let modelName = "";

  const $ = (id) => document.getElementById(id);
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  function colorOf(name) {
    if (COLORS[name]) return COLORS[name];
    let h = 0;
    for (const ch of String(name)) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
    return EXTRA_COLORS[h % EXTRA_COLORS.length];
  }

  /** Dark or white text, whichever reads better on ``hex``. */
  function textOn(hex) {
    const n = parseInt(hex.slice(1), 16);
    const [r, g, b] = [(n >> 16) & 255, (n >> 8) & 255, n & 255];
    return 0.299 * r + 0.587 * g + 0.114 * b > 150 ? "#14161b" : "#ffffff";
  }

  const pct = (p) => `${Math.round((Number(p) || 0) * 100)}%`;

  /** The class names to show for a face: the model's classes, then any other key of ``probs``. */
  function classOrder(probs) {
    const names = classes.slice();
    for (const k of Object.keys(probs || {})) if (!names.includes(k)) names.push(k);
    return names;
  }

  function largestFace(faces) {
    let best = null;
    for (const f of faces || []) {
      if (!best || f.box[2] * f.box[3] > best.box[2] * best.box[3]) best = f;
    }
    return best;
  }

  function el(tag, props = {}, children = []) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props)) {
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k === "style") node.style.cssText = v;
      else if (k.startsWith("data-")) node.setAttribute(k, v);
      else node[k] = v;
    }
    for (const c of children) if (c) node.append(c);
    return node;
  }

  function showError(node, message) {
    node.textContent = message;
    node.hidden = !message;
  }

  // ---------------------------------------------------------------------------------------------
  // The HTTP API
  // ---------------------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(message, code, status) {
      super(message);
      this.code = code;
      this.status = status;
    }
  }

  /** POST an image to v1/predict; resolve to the JSON answer, or reject with an ApiError whose
   * message is the server's own (``{"error": {"message": ...}}``). */
  async function predict(blob, filename) {
    const form = new FormData();
    form.append("file", blob, filename || "image");
    let resp;
    try {
      resp = await fetch("v1/predict", { method: "POST", body: form });
    } catch (err) {
      throw new ApiError("Could not reach the ferkit server. Is it still running?", "network", 0);
    }
    let body = null;
    try {
      body = await resp.json();
    } catch (err) {
      body = null;
    }
    if (!resp.ok) {
      const e = body && body.error;
      const message = (e && e.message) || `The server answered ${resp.status} ${resp.statusText || ""}`.trim();
      throw new ApiError(message, (e && e.code) || `http_${resp.status}`, resp.status);
    }
    if (!body || !Array.isArray(body.faces)) {
      throw new ApiError("The server sent an answer this page does not understand.", "bad_response", resp.status);
    }
    return body;
  }

  /** Camera frames are analysed one at a time across the webcam loop and the game. */
  let frameLock = Promise.resolve();
  let serverInfoLoaded = false;

  async function loadServerInfo() {
    const status = $("server-status");
    try {
      const health = await fetch("healthz");
      if (!health.ok) throw new Error(String(health.status));
      const resp = await fetch("v1/models");
      if (resp.ok) {
        const info = await resp.json();
        const models = (info && info.models) || [];
        const model = models.find((m) => m.name === info.default) || models[0];
        if (model && Array.isArray(model.classes) && model.classes.length) classes = model.classes.slice();
        modelName = (model && model.name) || info.default || "";
        serverInfoLoaded = true;
      }
      status.textContent = modelName ? `ready · model ${modelName}` : "ready";
      status.className = "server-status ok";
    } catch (err) {
      status.textContent = navigator.onLine === false ? "offline" : "server unreachable";
      status.className = "server-status down";
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Where camera frames are analysed: on this device (ondevice.js) or by the server
  // ---------------------------------------------------------------------------------------------

  const engine = { mode: "server", device: null, error: "", ready: null };

  function storedEngine() {
    try {
      return localStorage.getItem(ENGINE_KEY);
    } catch (err) {
      return null;
    }
  }

  /** Load ONNX Runtime Web and the models (BlazeFace, the classifier or an ensemble's members), then use them
   * unless the user chose the server. */
  async function loadOnDevice() {
    try {
      if (!window.ferkitOnDevice) throw new Error("ondevice.js did not load");
      const resp = await fetch("ondevice.json");
      if (!resp.ok) throw new Error(`ondevice.json: HTTP ${resp.status}`);
      const info = await resp.json();
      engine.device = await window.ferkitOnDevice.OnDevice.create(info);
      if (!serverInfoLoaded) {
        classes = info.classifier.classes.slice();
        modelName = info.classifier.name;
      }
    } catch (err) {
      engine.error = (err && err.message) || String(err);
    }
    setEngine(engine.device && storedEngine() !== "server" ? "device" : "server");
  }

  const PRIVACY = {
    device: "On this device: camera frames are analysed in this browser and never leave it.",
    server: "Server mode: each camera frame is sent to the ferkit server, analysed and discarded.",
  };

  function setEngine(mode, remember = false) {
    if (mode === "device" && !engine.device) mode = "server";
    engine.mode = mode;
    document.body.dataset.engine = mode;
    $("engine-device").setAttribute("aria-checked", String(mode === "device"));
    $("engine-server").setAttribute("aria-checked", String(mode === "server"));
    $("engine-device").disabled = !engine.device;
    const status = $("engine-status");
    if (engine.device) {
      status.textContent = mode === "device" ? "private: no frame leaves this device" : "frames go to the server";
    } else if (!engine.error) {
      status.textContent = "loading the on-device model…";
    } else {
      status.textContent = `the on-device model could not load (${engine.error}); frames go to the server`;
    }
    for (const node of document.querySelectorAll("[data-privacy]")) {
      node.textContent = PRIVACY[mode];
      node.dataset.mode = mode;
    }
    $("footer").textContent = mode === "device"
      ? "Camera frames stay on this device. Photos go to this ferkit server and are not stored."
      : "Runs entirely on this server; images are not stored.";
    if (remember) {
      try {
        localStorage.setItem(ENGINE_KEY, mode);
      } catch (err) {
        // storage is off: the choice lasts for this page
      }
    }
  }

  $("engine-device").addEventListener("click", () => setEngine("device", true));
  $("engine-server").addEventListener("click", () => setEngine("server", true));

  /** Analyse a captured frame where it was captured for: on the device (its pixels) or on the server
   * (its JPEG); one frame at a time. On the device, a task boundary first: inference resolves in
   * microtasks, and without one a loop of frames would never let the page repaint. */
  function analyseFrame(frame) {
    const onDevice = () => sleep(0).then(() => engine.device.predict(frame.pixels));
    const run = frameLock.then(() => (frame.pixels ? onDevice() : predict(frame.blob, "frame.jpg")));
    frameLock = run.catch(() => {});
    return run;
  }

  // ---------------------------------------------------------------------------------------------
  // Drawing: boxes with labels, probability bars
  // ---------------------------------------------------------------------------------------------

  function roundRect(ctx, x, y, w, h, r) {
    ctx.beginPath();
    ctx.moveTo(x + r, y);
    ctx.arcTo(x + w, y, x + w, y + h, r);
    ctx.arcTo(x + w, y + h, x, y + h, r);
    ctx.arcTo(x, y + h, x, y, r);
    ctx.arcTo(x, y, x + w, y, r);
    ctx.closePath();
  }

  /**
   * Draw each face's box and "Happy 90%" label on ``ctx``.
   * ``scale``: canvas pixels per image pixel; ``k``: canvas pixels per CSS pixel (for line and
   * font sizes); ``mirror``: flip boxes horizontally (for a mirrored selfie video underneath).
   */
  function drawFaces(ctx, faces, { scale = 1, k = 1, mirror = false } = {}) {
    const W = ctx.canvas.width, H = ctx.canvas.height;
    const placed = [];
    const fontPx = Math.max(10, Math.round(14 * k));
    ctx.save();
    ctx.font = `600 ${fontPx}px ${FONT}`;
    ctx.textBaseline = "middle";
    for (const face of faces) {
      let [x, y, w, h] = face.box.map((v) => v * scale);
      if (mirror) x = W - x - w;
      const color = colorOf(face.emotion);
      ctx.lineWidth = Math.max(2, 2.5 * k);
      ctx.strokeStyle = "rgba(0,0,0,0.35)";
      ctx.strokeRect(x, y, w, h);
      ctx.lineWidth = Math.max(1.5, 2 * k);
      ctx.strokeStyle = color;
      ctx.strokeRect(x, y, w, h);

      const top = face.probs && face.probs[face.emotion] !== undefined ? face.probs[face.emotion] : face.score;
      const label = `${face.emotion} ${pct(top)}`;
      const padX = 6 * k;
      const lh = fontPx + 8 * k;
      const lw = ctx.measureText(label).width + 2 * padX;
      const half = ctx.lineWidth / 2;
      const lx = Math.min(Math.max(0, x - half), Math.max(0, W - lw));
      // Above the box, else higher up, inside its top or under it: the first spot clear of the
      // labels already drawn (faces side by side in a group photo).
      const above = y - lh - half;
      const spots = [above, above - lh, above - 2 * lh, y + half, y + h + half]
        .filter((v) => v >= 0 && v + lh <= H);
      const clear = (v) => !placed.some((r) => lx < r.x + r.w && r.x < lx + lw && v < r.y + r.h && r.y < v + lh);
      const ly = spots.find(clear) ?? spots[0] ?? Math.max(0, Math.min(above, H - lh));
      placed.push({ x: lx, y: ly, w: lw, h: lh });
      ctx.fillStyle = color;
      roundRect(ctx, lx, ly, lw, lh, 4 * k);
      ctx.fill();
      ctx.fillStyle = textOn(color);
      ctx.fillText(label, lx + padX, ly + lh / 2 + 0.5);
    }
    ctx.restore();
  }

  /** Fill ``container`` with one row per class (name, bar, percent); reuse rows already there. */
  function renderBars(container, probs, top) {
    const names = classOrder(probs);
    if (container.childElementCount !== names.length * 3 || container.dataset.names !== names.join(",")) {
      container.replaceChildren();
      for (const name of names) {
        const color = colorOf(name);
        container.append(
          el("span", { class: "bar-name", text: name }),
          el("span", { class: "bar-track" }, [el("span", { class: "bar-fill", style: `background:${color}` })]),
          el("span", { class: "bar-pct" }),
        );
      }
      container.dataset.names = names.join(",");
    }
    const cells = container.children;
    names.forEach((name, i) => {
      const p = Number((probs || {})[name]) || 0;
      const isTop = name === top;
      cells[3 * i].classList.toggle("top", isTop);
      cells[3 * i + 1].firstChild.style.width = `${Math.max(0, Math.min(100, p * 100)).toFixed(1)}%`;
      cells[3 * i + 1].setAttribute("title", `${name}: ${(p * 100).toFixed(1)}%`);
      cells[3 * i + 2].textContent = pct(p);
      cells[3 * i + 2].classList.toggle("top", isTop);
    });
  }

  /** A face's result: thumbnail (optional), top emotion, and the bars. */
  function faceResult(face, index, thumb) {
    const color = colorOf(face.emotion);
    const top = face.probs && face.probs[face.emotion] !== undefined ? face.probs[face.emotion] : face.score;
    const title = el("div", { class: "face-title" }, [
      document.createTextNode(`${face.emotion} `), el("span", { class: "pct", text: pct(top) }),
    ]);
    const sub = el("div", { class: "face-sub", text: `Face ${index + 1}` });
    const bars = el("div", { class: "bars" });
    renderBars(bars, face.probs, face.emotion);
    const node = el("div", { class: "face-result", "data-emotion": face.emotion, style: `--emo:${color}` }, [
      el("div", { class: "face-head" }, [thumb, el("div", {}, [title, sub])]),
      bars,
    ]);
    return node;
  }

  /** A small square crop of ``face`` from ``image`` (an ImageBitmap or canvas), or null. */
  function faceThumb(image, face, mirror = false) {
    if (!image) return null;
    const [x, y, w, h] = face.box;
    const side = Math.max(w, h) * 1.3;
    const cx = x + w / 2, cy = y + h / 2;
    const c = el("canvas", { class: "face-thumb", width: 88, height: 88 });
    const ctx = c.getContext("2d");
    ctx.fillStyle = "#ddd";
    ctx.fillRect(0, 0, 88, 88);
    if (mirror) { ctx.translate(88, 0); ctx.scale(-1, 1); }
    ctx.drawImage(image, cx - side / 2, cy - side / 2, side, side, 0, 0, 88, 88);
    return c;
  }

  // ---------------------------------------------------------------------------------------------
  // Tabs
  // ---------------------------------------------------------------------------------------------

  const TABS = ["photo", "webcam", "game"];
  let activeTab = "photo";

  function selectTab(name, focus = false, remember = true) {
    if (!TABS.includes(name)) return;
    activeTab = name;
    for (const t of TABS) {
      const tab = $(`tab-${t}`);
      const on = t === name;
      tab.setAttribute("aria-selected", String(on));
      tab.tabIndex = on ? 0 : -1;
      $(`panel-${t}`).hidden = !on;
      if (on && focus) tab.focus();
    }
    if (remember && history.replaceState) history.replaceState(null, "", `#${name}`);
    if (name === "webcam" && cam.stream) webcamLoop();
  }

  for (const t of TABS) {
    $(`tab-${t}`).addEventListener("click", () => selectTab(t));
    $(`tab-${t}`).addEventListener("keydown", (ev) => {
      const i = TABS.indexOf(t);
      if (ev.key === "ArrowRight") selectTab(TABS[(i + 1) % TABS.length], true);
      else if (ev.key === "ArrowLeft") selectTab(TABS[(i + TABS.length - 1) % TABS.length], true);
      else return;
      ev.preventDefault();
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Photo
  // ---------------------------------------------------------------------------------------------

  let photoToken = 0;

  async function decodeImage(file) {
    try {
      return await createImageBitmap(file);
    } catch (err) {
      return null;  // the browser cannot show it (the server may still read it)
    }
  }

  async function analysePhoto(file) {
    if (!file) return;
    const token = ++photoToken;
    const status = $("photo-status");
    showError($("photo-error"), "");
    status.textContent = `Analysing ${file.name || "the image"}…`;
    status.className = "status busy";
    $("photo-results").replaceChildren();
    const bitmapPromise = decodeImage(file);
    let res;
    try {
      res = await predict(file, file.name || "image");
    } catch (err) {
      if (token !== photoToken) return;
      status.textContent = "";
      status.className = "status";
      $("photo-box").hidden = true;
      showError($("photo-error"), err.message);
      return;
    }
    const bitmap = await bitmapPromise;
    if (token !== photoToken) return;
    drawPhoto(bitmap, res);
    const n = res.faces.length;
    const parts = [`${n} face${n === 1 ? "" : "s"}`, `${res.width}×${res.height}`];
    if (res.model) parts.push(res.model);
    if (typeof res.ms === "number") parts.push(`${Math.round(res.ms)} ms`);
    status.textContent = `${file.name ? file.name + ": " : ""}${parts.join(" · ")}`;
    status.className = "status";
    const results = $("photo-results");
    if (!n) {
      results.replaceChildren(el("p", { class: "no-face", text: "No face found" }));
      return;
    }
    results.replaceChildren(...res.faces.map((f, i) => faceResult(f, i, faceThumb(bitmap, f))));
  }

  function drawPhoto(bitmap, res) {
    const canvas = $("photo-canvas");
    const W = res.width || (bitmap && bitmap.width) || 640;
    const H = res.height || (bitmap && bitmap.height) || 480;
    // Big photos are shrunk; small ones are drawn larger so that boxes and labels stay sharp.
    const side = Math.max(W, H);
    const scale = Math.min(MAX_PHOTO_SIDE, Math.max(MIN_PHOTO_SIDE, side)) / side;
    canvas.width = Math.max(1, Math.round(W * scale));
    canvas.height = Math.max(1, Math.round(H * scale));
    $("photo-box").hidden = false;
    const ctx = canvas.getContext("2d");
    if (bitmap) {
      ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    } else {
      ctx.fillStyle = "#d0d4dc";
      ctx.fillRect(0, 0, canvas.width, canvas.height);
    }
    const rect = canvas.getBoundingClientRect();
    const shown = rect.width && rect.height ? Math.min(rect.width / canvas.width, rect.height / canvas.height) : 1;
    const k = Math.max(0.75, 1 / shown);  // canvas pixels per CSS pixel
    drawFaces(ctx, res.faces, { scale, k });
    canvas.dataset.faces = String(res.faces.length);
  }

  const fileInput = $("file-input");
  fileInput.addEventListener("change", () => {
    const file = fileInput.files && fileInput.files[0];
    if (file) analysePhoto(file);
    fileInput.value = "";
  });

  const dropZone = $("drop-zone");
  const photoPanel = $("panel-photo");
  let dragDepth = 0;
  photoPanel.addEventListener("dragenter", (ev) => {
    ev.preventDefault();
    dragDepth += 1;
    dropZone.classList.add("dragging");
  });
  photoPanel.addEventListener("dragleave", () => {
    dragDepth = Math.max(0, dragDepth - 1);
    if (!dragDepth) dropZone.classList.remove("dragging");
  });
  photoPanel.addEventListener("dragover", (ev) => {
    ev.preventDefault();
    if (ev.dataTransfer) ev.dataTransfer.dropEffect = "copy";
  });
  photoPanel.addEventListener("drop", (ev) => {
    ev.preventDefault();
    dragDepth = 0;
    dropZone.classList.remove("dragging");
    const file = ev.dataTransfer && ev.dataTransfer.files && ev.dataTransfer.files[0];
    if (file) analysePhoto(file);
  });
  // A file dropped elsewhere must not make the browser leave the page.
  window.addEventListener("dragover", (ev) => ev.preventDefault());
  window.addEventListener("drop", (ev) => ev.preventDefault());
  document.addEventListener("paste", (ev) => {
    if (activeTab !== "photo" || !ev.clipboardData) return;
    const file = Array.from(ev.clipboardData.files || []).find((f) => f.type.startsWith("image/"));
    if (file) {
      ev.preventDefault();
      analysePhoto(file);
    }
  });

  // ---------------------------------------------------------------------------------------------
  // Camera (shared by the Webcam tab and the game)
  // ---------------------------------------------------------------------------------------------

  const cam = { stream: null, starting: null };
  const VIDEOS = ["webcam-video", "game-video"];

  function cameraErrorMessage(err) {
    switch (err && err.name) {
      case "NotAllowedError":
      case "PermissionDeniedError":
      case "SecurityError":
        return "Camera access was refused. Allow the camera for this page in the browser's site settings, then try again.";
      case "NotFoundError":
      case "DevicesNotFoundError":
      case "OverconstrainedError":
        return "No camera was found. Connect a camera and try again.";
      case "NotReadableError":
      case "TrackStartError":
      case "AbortError":
        return "The camera could not be started: another application may be using it.";
      default:
        return `The camera could not be started (${(err && (err.message || err.name)) || "unknown error"}).`;
    }
  }

  /** Start the camera once; resolve to its stream, or reject with a readable message. */
  function startCamera() {
    if (cam.stream) return Promise.resolve(cam.stream);
    if (cam.starting) return cam.starting;
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      return Promise.reject(new Error(window.isSecureContext
        ? "This browser cannot use a camera."
        : "The camera needs a secure page: open ferkit at https://… or http://localhost."));
    }
    cam.starting = navigator.mediaDevices
      .getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 }, facingMode: "user" }, audio: false })
      .then((stream) => {
        cam.stream = stream;
        for (const id of VIDEOS) {
          const v = $(id);
          v.srcObject = stream;
          v.play().catch(() => {});
          v.addEventListener("loadedmetadata", () => {
            if (v.videoWidth && v.videoHeight) v.parentElement.style.aspectRatio = `${v.videoWidth} / ${v.videoHeight}`;
          }, { once: true });
        }
        for (const track of stream.getVideoTracks()) track.addEventListener("ended", stopCamera);
        updateCameraUi();
        return stream;
      }, (err) => {
        throw new Error(cameraErrorMessage(err));
      })
      .finally(() => { cam.starting = null; });
    return cam.starting;
  }

  function stopCamera() {
    if (cam.stream) for (const track of cam.stream.getTracks()) track.stop();
    cam.stream = null;
    for (const id of VIDEOS) $(id).srcObject = null;
    for (const id of ["webcam-overlay", "game-overlay"]) {
      const c = $(id);
      c.getContext("2d").clearRect(0, 0, c.width, c.height);
      c.dataset.faces = "0";
    }
    fps.times = [];
    window.ferkitStats = { frames: 0, ms: [], started: 0 };
    $("webcam-fps").textContent = "— frames/s";
    if (game.playing) game.aborted = "The camera was stopped.";
    updateCameraUi();
  }

  function updateCameraUi() {
    const on = Boolean(cam.stream);
    $("webcam-start").disabled = on;
    $("webcam-stop").disabled = !on;
    $("webcam-box").classList.toggle("idle", !on);
    $("game-box").classList.toggle("idle", !on);
    if (!on) $("webcam-bars").replaceChildren(el("p", { class: "muted", text: "Start the camera to see the probabilities." }));
  }

  /** Resolve once ``video`` has frames (or after ``ms``). */
  function videoReady(video, ms = 10000) {
    if (video.readyState >= 2 && video.videoWidth) return Promise.resolve(true);
    return new Promise((resolve) => {
      const t0 = performance.now();
      const check = () => {
        if (video.readyState >= 2 && video.videoWidth) resolve(true);
        else if (performance.now() - t0 > ms || !cam.stream) resolve(false);
        else setTimeout(check, 50);
      };
      check();
    });
  }

  const grab = document.createElement("canvas");

  /** The video's current frame (shrunk to MAX_FRAME_SIDE): its pixels for the on-device engine, else a
   * JPEG blob for the server; null without a frame. */
  async function captureFrame(video) {
    const vw = video.videoWidth, vh = video.videoHeight;
    if (!cam.stream || !vw || !vh || video.readyState < 2) return null;
    const s = Math.min(1, MAX_FRAME_SIDE / Math.max(vw, vh));
    const w = Math.round(vw * s), h = Math.round(vh * s);
    if (grab.width !== w) grab.width = w;
    if (grab.height !== h) grab.height = h;
    const ctx = grab.getContext("2d", { willReadFrequently: true });
    ctx.drawImage(video, 0, 0, w, h);
    if (engine.mode === "device") {
      const pixels = window.ferkitOnDevice.image(ctx.getImageData(0, 0, w, h).data, w, h, 4);
      return { pixels, width: w, height: h };
    }
    const blob = await new Promise((resolve) => grab.toBlob(resolve, "image/jpeg", JPEG_QUALITY));
    return blob ? { blob, width: w, height: h } : null;
  }

  /** Draw the answer for a frame on an overlay canvas over a mirrored video. */
  function drawOverlay(canvas, res, frame) {
    if (canvas.width !== frame.width) canvas.width = frame.width;
    if (canvas.height !== frame.height) canvas.height = frame.height;
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    const rect = canvas.getBoundingClientRect();
    const shownScale = rect.width ? Math.min(rect.width / frame.width, rect.height / frame.height) : 1;
    const k = shownScale > 0 ? Math.max(1, 1 / shownScale) : 1;
    // Boxes are in uploaded-frame pixels; scale to the frame if the server saw another size.
    const scale = res.width ? frame.width / res.width : 1;
    drawFaces(ctx, res.faces, { scale, k, mirror: true });
    canvas.dataset.faces = String(res.faces.length);
  }

  // ---------------------------------------------------------------------------------------------
  // Webcam tab
  // ---------------------------------------------------------------------------------------------

  const fps = { times: [] };
  const webcam = { running: false };

  function tickFps(res) {
    const now = performance.now();
    fps.times.push(now);
    while (fps.times.length && now - fps.times[0] > 2000) fps.times.shift();
    const n = fps.times.length;
    const rate = n >= 2 ? ((n - 1) * 1000) / (fps.times[n - 1] - fps.times[0]) : 0;
    const model = typeof res.ms === "number" ? ` · model ${Math.round(res.ms)} ms` : "";
    $("webcam-fps").textContent = `${rate ? rate.toFixed(1) : "…"} frames/s${model}`;
    $("webcam-fps").dataset.frames = String((Number($("webcam-fps").dataset.frames) || 0) + 1);
  }

  function renderWebcamBars(res) {
    const box = $("webcam-bars");
    const face = largestFace(res.faces);
    if (!face) {
      if (!box.querySelector(".no-face")) box.replaceChildren(el("p", { class: "no-face", text: "No face in view" }));
      return;
    }
    let card = box.querySelector(".face-result");
    if (!card) {
      card = el("div", { class: "face-result live" }, [
        el("div", { class: "face-head" }, [el("div", {}, [el("div", { class: "face-title" }), el("div", { class: "face-sub" })])]),
        el("div", { class: "bars" }),
      ]);
      box.replaceChildren(card);
    }
    const top = face.probs && face.probs[face.emotion] !== undefined ? face.probs[face.emotion] : face.score;
    card.dataset.emotion = face.emotion;
    card.style.setProperty("--emo", colorOf(face.emotion));
    const title = card.querySelector(".face-title");
    title.replaceChildren(document.createTextNode(`${face.emotion} `), el("span", { class: "pct", text: pct(top) }));
    const n = res.faces.length;
    card.querySelector(".face-sub").textContent = n > 1 ? `largest of ${n} faces` : "1 face in view";
    renderBars(card.querySelector(".bars"), face.probs, face.emotion);
  }

  /** Grab a frame, predict, draw; repeat while the camera is on and this tab is shown. At most
   * one request is in flight. */
  async function webcamLoop() {
    if (webcam.running) return;
    webcam.running = true;
    const video = $("webcam-video");
    try {
      await videoReady(video);
      while (cam.stream && activeTab === "webcam" && !game.playing) {
        if (document.hidden) {  // the browser tab is in the background: send nothing
          await sleep(250);
          continue;
        }
        const t0 = performance.now();
        const frame = await captureFrame(video);
        if (!frame) {
          await sleep(100);
          continue;
        }
        let res;
        try {
          res = await analyseFrame(frame);
          showError($("webcam-error"), "");
        } catch (err) {
          showError($("webcam-error"), err.message);
          await sleep(1000);
          continue;
        }
        if (!cam.stream) break;
        drawOverlay($("webcam-overlay"), res, frame);
        renderWebcamBars(res);
        tickFps(res);
        const stats = window.ferkitStats;
        if (!stats.frames) stats.started = t0;
        stats.frames += 1;
        stats.ms.push(performance.now() - t0);
        const wait = MIN_FRAME_MS - (performance.now() - t0);
        if (wait > 0) await sleep(wait);
      }
    } finally {
      webcam.running = false;
    }
  }

  $("webcam-start").addEventListener("click", async () => {
    showError($("webcam-error"), "");
    $("webcam-start").disabled = true;
    try {
      await engine.ready;
      await startCamera();
      webcamLoop();
    } catch (err) {
      showError($("webcam-error"), err.message);
      updateCameraUi();
    }
  });
  $("webcam-stop").addEventListener("click", stopCamera);

  // ---------------------------------------------------------------------------------------------
  // Best Actor
  // ---------------------------------------------------------------------------------------------

  const game = { playing: false, phase: "idle", aborted: null, cardUrl: null, cardFile: null, bag: [] };

  function difficulty() {
    const name = $("game-difficulty").value;
    return DIFFICULTIES[name] ? name : "normal";
  }

  function readSettings() {
    const s = Object.assign({ rounds: 5, countdownMs: 3000 }, DIFFICULTIES[difficulty()], window.ferkitGame || {});
    const holdMs = Math.max(0, Number(s.holdMs) || 0);
    return {
      rounds: Math.max(1, Math.round(Number(s.rounds) || 5)),
      countdownMs: Math.max(0, Number(s.countdownMs) || 0),
      holdMs,
      actMs: Math.max(holdMs + 300, Number(s.actMs) || 0),
      threshold: Math.min(1, Math.max(0, Number(s.threshold) || 0)),
    };
  }

  /** The emotions a round may ask for: the model's classes but those in NOT_IN_GAME. */
  function gameEmotions() {
    const names = classes.filter((c) => !NOT_IN_GAME.includes(c));
    return names.length ? names : classes.slice();
  }

  /** The next emotion: drawn from a shuffled bag of them all, refilled when empty, never the previous. */
  function pickTarget(previous) {
    if (!game.bag.length) {
      game.bag = gameEmotions();
      for (let i = game.bag.length - 1; i > 0; i -= 1) {
        const j = Math.floor(Math.random() * (i + 1));
        [game.bag[i], game.bag[j]] = [game.bag[j], game.bag[i]];
      }
      if (game.bag.length > 1 && game.bag[game.bag.length - 1] === previous) game.bag.unshift(game.bag.pop());
    }
    return game.bag.pop();
  }

  function checkAbort() {
    if (game.aborted) throw new Error(game.aborted);
  }

  function setCountdown(text, cls = "") {
    const node = $("game-countdown");
    node.textContent = text;
    node.className = `countdown ${cls}`;
    if (cls.includes("tick")) {
      void node.offsetWidth;  // restart the animation
    }
  }

  /** Frames during the countdown: boxes on the overlay so the player sees they are in view. */
  async function previewLoop(video) {
    while (game.phase === "countdown" && cam.stream) {
      const t0 = performance.now();
      const frame = await captureFrame(video);
      if (!frame) {
        await sleep(50);
        continue;
      }
      try {
        const res = await analyseFrame(frame);
        drawOverlay($("game-overlay"), res, frame);
      } catch (err) {
        // the acting phase reports errors
      }
      const wait = MIN_FRAME_MS - (performance.now() - t0);
      if (wait > 0) await sleep(wait);
    }
  }

  /** One round: a countdown, then ``actMs`` of acting. The score is 100 x the best mean probability of
   * the target over ``holdMs`` (frames with no face count as 0), or 0 when that is under the bar. */
  async function playRound(index, target, cfg) {
    const video = $("game-video");
    $("game-round-no").textContent = `${index + 1}/${cfg.rounds}`;
    $("game-target").textContent = target;
    $("game-act").style.setProperty("--emo", colorOf(target));
    $("game-act").hidden = false;
    $("game-note").textContent = `Get ready to look ${target.toLowerCase()}…`;

    game.phase = "countdown";
    const preview = previewLoop(video);
    const end = performance.now() + cfg.countdownMs;
    let shown = null;
    for (let left = cfg.countdownMs; left > 0; left = end - performance.now()) {
      checkAbort();
      const n = Math.ceil(left / 1000);
      if (n !== shown) {
        setCountdown(String(n), "tick");
        shown = n;
      }
      await sleep(Math.min(50, left));
    }
    game.phase = "hold";
    await preview;  // one frame at a time
    checkAbort();
    setCountdown("Hold it!", "hold");
    $("game-note").textContent = `Hold that ${target.toLowerCase()} face!`;

    const t0 = performance.now(), actEnd = t0 + cfg.actMs;
    const seen = [];  // [time, probability of the target]
    let best = null, bestFrame = null, mean = 0, frames = 0, faceFrames = 0, lastError = "";
    do {
      checkAbort();
      const frame = await captureFrame(video);
      if (!frame) {
        await sleep(50);
        continue;
      }
      let res;
      try {
        res = await analyseFrame(frame);
      } catch (err) {
        lastError = err.message;
        await sleep(100);
        continue;
      }
      const now = performance.now();
      frames += 1;
      drawOverlay($("game-overlay"), res, frame);
      const face = largestFace(res.faces);
      const p = face ? Number(face.probs && face.probs[target]) || 0 : 0;
      if (face) {
        faceFrames += 1;
        if (!bestFrame || p > bestFrame.p) {  // the card shows the frame the model liked best
          const bitmap = frame.pixels ? await createImageBitmap(grab) : null;
          bestFrame = { p, blob: frame.blob, bitmap, face, width: frame.width, height: frame.height, res };
        }
      }
      seen.push([now, p]);
      while (seen.length > 1 && now - seen[1][0] >= cfg.holdMs) seen.shift();
      if (now - t0 >= cfg.holdMs || cfg.holdMs === 0) {  // a whole hold has been seen
        mean = seen.reduce((a, [, q]) => a + q, 0) / seen.length;
        if (!best || mean > best.mean) best = { mean };
        setCountdown(`${Math.round(mean * 100)}`, mean >= cfg.threshold ? "hold pass" : "hold");
      }
    } while (performance.now() < actEnd);
    game.phase = "scored";

    const raw = best ? Math.round(best.mean * 100) : 0;
    const passed = raw > 0 && raw >= Math.round(cfg.threshold * 100);
    let note = "";
    if (!frames) note = lastError ? `no frame analysed: ${lastError}` : "no frame analysed";
    else if (!faceFrames) note = "no face seen";
    else if (!passed) note = `${raw}, under the bar of ${Math.round(cfg.threshold * 100)}`;
    return { target, score: passed ? raw : 0, raw, note, best: bestFrame, frames };
  }

  function addRoundRow(i, r) {
    const color = colorOf(r.target);
    const fill = el("span", { class: "bar-fill", style: `background:${color};width:${r.score}%` });
    const middle = r.note ? el("span", { class: "note", text: r.note }) : el("span", { class: "bar-track" }, [fill]);
    const li = el("li", { class: "round", "data-target": r.target, "data-score": String(r.score), "data-frames": String(r.frames), style: `--emo:${color}` }, [
      el("span", { class: "no", text: String(i + 1) }),
      el("span", { class: "target" }, [el("span", { class: "dot" }), document.createTextNode(r.target)]),
      middle,
      el("span", { class: "score", text: String(r.score) }),
    ]);
    $("game-rounds").append(li);
  }

  function resetGameUi(cfg) {
    $("game-rounds").replaceChildren();
    $("game-total").textContent = "0";
    $("game-round-score").textContent = "–";
    $("game-round-no").textContent = `0/${cfg.rounds}`;
    $("game-result").hidden = true;
    $("game-new-high").hidden = true;
    $("game-note").textContent = "";
    showError($("game-error"), "");
    setCountdown("");
    $("game-act").hidden = true;
  }

  async function startGame() {
    if (game.playing) return;
    const cfg = readSettings();
    resetGameUi(cfg);
    game.playing = true;
    game.aborted = null;
    document.body.dataset.gameState = "playing";
    $("game-start").disabled = true;
    $("game-again").disabled = true;
    $("game-difficulty").disabled = true;
    game.bag = [];
    let finished = false;
    try {
      $("game-note").textContent = "Starting the camera…";
      await engine.ready;
      await startCamera();
      if (!(await videoReady($("game-video")))) throw new Error("The camera gives no picture.");
      const rounds = [];
      let total = 0, previous = null;
      for (let i = 0; i < cfg.rounds; i += 1) {
        const target = pickTarget(previous);
        previous = target;
        const r = await playRound(i, target, cfg);
        rounds.push(r);
        total += r.score;
        addRoundRow(i, r);
        $("game-round-score").textContent = String(r.score);
        $("game-total").textContent = String(total);
        setCountdown(r.note ? "0" : `+${r.score}`, "tick");
        $("game-note").textContent = r.note ? `Round ${i + 1}: ${r.note}.` : `Round ${i + 1}: ${r.target} ${r.score}/100.`;
        if (i + 1 < cfg.rounds) await sleep(Math.min(1000, Math.max(300, cfg.countdownMs / 3)));
        checkAbort();
      }
      await finishGame(rounds, total, cfg);
      finished = true;
    } catch (err) {
      showError($("game-error"), err.message);
      $("game-note").textContent = "";
    } finally {
      game.playing = false;
      game.phase = "idle";
      $("game-act").hidden = true;
      if (!finished) setCountdown("");
      $("game-start").disabled = false;
      $("game-again").disabled = false;
      $("game-difficulty").disabled = false;
      $("game-start").textContent = "Play again";
      document.body.dataset.gameState = finished ? "done" : "idle";
      if (activeTab === "webcam" && cam.stream) webcamLoop();
    }
  }

  function readBests() {
    try {
      const v = JSON.parse(localStorage.getItem(BESTS_KEY) || "{}");
      return v && typeof v === "object" ? v : {};
    } catch (err) {
      return {};
    }
  }

  /** The per-emotion best scores, with ``fresh`` (emotions just beaten) highlighted. */
  function renderBests(bests, fresh = []) {
    $("game-bests").replaceChildren(...gameEmotions().map((name) => {
      const v = Number.isFinite(Number(bests[name])) ? String(bests[name]) : "–";
      return el("div", { class: `best-tile${fresh.includes(name) ? " new" : ""}`, "data-emotion": name, "data-best": v,
                         style: `--emo:${colorOf(name)}` }, [
        el("span", { class: "label", text: name }), el("span", { class: "big", text: v }),
      ]);
    }));
  }

  /** Keep each emotion's best round score (localStorage); return the emotions that beat theirs. */
  function updateBests(rounds) {
    const bests = readBests(), fresh = [];
    for (const r of rounds) {
      if (r.score > 0 && !(Number(bests[r.target]) >= r.score)) {
        bests[r.target] = r.score;
        if (!fresh.includes(r.target)) fresh.push(r.target);
      }
    }
    try {
      localStorage.setItem(BESTS_KEY, JSON.stringify(bests));
    } catch (err) {
      // storage is off (private mode): the bests live for this page only
    }
    renderBests(bests, fresh);
    return fresh;
  }

  function readHighScore() {
    try {
      const v = localStorage.getItem(HIGH_SCORE_KEY);
      return v === null || v === "" || !Number.isFinite(Number(v)) ? null : Number(v);
    } catch (err) {
      return null;
    }
  }

  async function finishGame(rounds, total, cfg) {
    const max = cfg.rounds * 100;
    $("game-final").textContent = String(total);
    $("game-max").textContent = String(max);
    setCountdown(`${total}`, "tick");
    $("game-note").textContent = "Game over.";

    let bestIndex = -1;
    rounds.forEach((r, i) => { if (r.best && (bestIndex < 0 || r.score > rounds[bestIndex].score)) bestIndex = i; });
    const bestRound = bestIndex >= 0 ? rounds[bestIndex] : null;
    $("game-best-round").textContent = bestRound
      ? `Best round: ${bestIndex + 1} (${bestRound.target}, ${bestRound.score}/100)`
      : "Best round: none (no face seen)";

    const previous = readHighScore();
    const isNew = previous === null ? total > 0 : total > previous;
    const high = previous === null ? total : Math.max(previous, total);
    try {
      if (isNew || previous === null) localStorage.setItem(HIGH_SCORE_KEY, String(high));
    } catch (err) {
      // storage is off (private mode): the high score lives for this page only
    }
    $("game-highscore").textContent = `High score: ${high}`;
    $("game-new-high").hidden = !isNew;
    const fresh = updateBests(rounds);
    if (fresh.length) $("game-note").textContent = `Game over. New best for ${fresh.join(", ")}!`;

    await drawCard(rounds, total, max, bestRound, isNew);
    $("game-result").hidden = false;
  }

  /** The shareable result card on #game-card, then the download link and share button. */
  async function drawCard(rounds, total, max, bestRound, isNew) {
    const canvas = $("game-card");
    const W = canvas.width, H = canvas.height;
    const ctx = canvas.getContext("2d");
    const bg = ctx.createLinearGradient(0, 0, W, H);
    bg.addColorStop(0, "#1b2030");
    bg.addColorStop(1, "#2d3658");
    ctx.fillStyle = bg;
    ctx.fillRect(0, 0, W, H);
    // A strip of the seven emotion colours along the top.
    const names = DEFAULT_CLASSES;
    names.forEach((n, i) => {
      ctx.fillStyle = COLORS[n];
      ctx.fillRect((i * W) / names.length, 0, W / names.length + 1, 10);
    });

    const left = 56;
    ctx.textBaseline = "alphabetic";
    ctx.fillStyle = "#ffffff";
    ctx.font = `800 54px ${FONT}`;
    ctx.fillText("ferkit Best Actor", left, 92);

    ctx.font = `800 96px ${FONT}`;
    ctx.fillStyle = "#ffe36b";
    const totalText = String(total);
    ctx.fillText(totalText, left, 210);
    const tw = ctx.measureText(totalText).width;
    ctx.font = `600 40px ${FONT}`;
    ctx.fillStyle = "#b8c0d8";
    ctx.fillText(` / ${max}`, left + tw, 210);
    if (isNew) {
      ctx.font = `700 24px ${FONT}`;
      const label = "New high score!";
      const lw = ctx.measureText(label).width + 28;
      ctx.fillStyle = "#fac800";
      roundRect(ctx, left, 232, lw, 38, 19);
      ctx.fill();
      ctx.fillStyle = "#1b2030";
      ctx.fillText(label, left + 14, 259);
    }

    // Rounds: dot, target, bar, score.
    const top = 300, bottom = H - 70;
    const rowH = Math.min(56, (bottom - top) / Math.max(1, rounds.length));
    const fontPx = Math.max(12, Math.round(rowH * 0.48));
    const barX = left + 230, barW = 260;
    rounds.forEach((r, i) => {
      const y = top + i * rowH + rowH / 2;
      const color = colorOf(r.target);
      ctx.fillStyle = color;
      ctx.beginPath();
      ctx.arc(left + 9, y, Math.min(9, rowH / 4), 0, 2 * Math.PI);
      ctx.fill();
      ctx.font = `600 ${fontPx}px ${FONT}`;
      ctx.textBaseline = "middle";
      ctx.fillStyle = "#ffffff";
      ctx.fillText(r.target, left + 30, y);
      const bh = Math.max(6, rowH * 0.28);
      ctx.fillStyle = "rgba(255,255,255,0.14)";
      roundRect(ctx, barX, y - bh / 2, barW, bh, bh / 2);
      ctx.fill();
      if (r.score > 0) {
        ctx.fillStyle = color;
        roundRect(ctx, barX, y - bh / 2, Math.max(bh, (barW * r.score) / 100), bh, bh / 2);
        ctx.fill();
      }
      ctx.fillStyle = r.note ? "#9aa3b8" : "#ffffff";
      ctx.font = `700 ${fontPx}px ${FONT}`;
      ctx.textAlign = "right";
      ctx.fillText(String(r.score), barX + barW + 64, y);
      ctx.textAlign = "left";
    });
    ctx.textBaseline = "alphabetic";

    // The best round's frame, mirrored as the player saw it, with the face box.
    const sx = 660, sy = 110, sw = 484, sh = 363;
    ctx.save();
    roundRect(ctx, sx, sy, sw, sh, 18);
    ctx.fillStyle = "#0e1014";
    ctx.fill();
    ctx.clip();
    let drewPhoto = false;
    if (bestRound && bestRound.best) {
      try {
        const b = bestRound.best;
        const img = b.bitmap || await createImageBitmap(b.blob);
        const s = Math.max(sw / img.width, sh / img.height);
        const dw = img.width * s, dh = img.height * s;
        const dx = sx + (sw - dw) / 2, dy = sy + (sh - dh) / 2;
        ctx.translate(dx + dw, dy);
        ctx.scale(-1, 1);
        ctx.drawImage(img, 0, 0, dw, dh);
        const fs = (b.res && b.res.width ? img.width / b.res.width : 1) * s;
        const [x, y, w, h] = b.face.box.map((v) => v * fs);
        ctx.lineWidth = 4;
        ctx.strokeStyle = colorOf(bestRound.target);
        ctx.strokeRect(x, y, w, h);
        drewPhoto = true;
      } catch (err) {
        drewPhoto = false;
      }
    }
    ctx.restore();
    if (!drewPhoto) {
      ctx.fillStyle = "#9aa3b8";
      ctx.font = `600 28px ${FONT}`;
      ctx.textAlign = "center";
      ctx.fillText("no face seen", sx + sw / 2, sy + sh / 2);
      ctx.textAlign = "left";
    }
    ctx.fillStyle = "#ffffff";
    ctx.font = `600 26px ${FONT}`;
    ctx.textAlign = "center";
    ctx.fillText(bestRound ? `Best round: ${bestRound.target} ${bestRound.score}` : "Best round: –", sx + sw / 2, sy + sh + 44);
    ctx.textAlign = "left";

    ctx.fillStyle = "#8e97ad";
    ctx.font = `500 20px ${FONT}`;
    ctx.fillText(`ferkit — facial emotion recognition · ${new Date().toLocaleDateString()}`, left, H - 32);

    // Download link and share button.
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
    const link = $("game-download");
    if (game.cardUrl) URL.revokeObjectURL(game.cardUrl);
    game.cardUrl = blob ? URL.createObjectURL(blob) : canvas.toDataURL("image/png");
    link.href = game.cardUrl;
    link.download = "best-actor.png";
    game.cardFile = null;
    game.shareText = `I scored ${total}/${max} in ferkit Best Actor!`;
    let canShare = false;
    if (blob && typeof File === "function" && navigator.share && navigator.canShare) {
      try {
        const file = new File([blob], "best-actor.png", { type: "image/png" });
        canShare = navigator.canShare({ files: [file] });
        if (canShare) game.cardFile = file;
      } catch (err) {
        canShare = false;
      }
    }
    $("game-share").hidden = !canShare;
  }

  $("game-share").addEventListener("click", async () => {
    if (!game.cardFile || !navigator.share) return;
    try {
      await navigator.share({ files: [game.cardFile], title: "ferkit Best Actor", text: game.shareText });
    } catch (err) {
      if (err && err.name !== "AbortError") showError($("game-error"), `Could not share: ${err.message}`);
    }
  });
  $("game-start").addEventListener("click", startGame);
  $("game-again").addEventListener("click", () => {
    $("panel-game").scrollIntoView({ behavior: "smooth", block: "start" });
    startGame();
  });

  // ---------------------------------------------------------------------------------------------
  // Start
  // ---------------------------------------------------------------------------------------------

  window.addEventListener("pagehide", stopCamera);
  const fromHash = location.hash.replace("#", "");
  selectTab(TABS.includes(fromHash) ? fromHash : "photo", false, false);
  const hs = readHighScore();
  if (hs !== null) $("game-highscore").textContent = `High score: ${hs}`;
  try {
    const d = localStorage.getItem(DIFFICULTY_KEY);
    if (d && DIFFICULTIES[d]) $("game-difficulty").value = d;
  } catch (err) {
    // storage is off
  }
  $("game-difficulty").addEventListener("change", () => {
    try {
      localStorage.setItem(DIFFICULTY_KEY, difficulty());
    } catch (err) {
      // storage is off
    }
  });
  setEngine("server");
  engine.ready = Promise.all([loadServerInfo(), loadOnDevice()]).then(() => renderBests(readBests()));
  if ("serviceWorker" in navigator && window.isSecureContext) {
    navigator.serviceWorker.register("sw.js").catch(() => {});  // the page works without it, online
  }
})();

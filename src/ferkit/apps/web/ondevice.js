// ferkit on the device: BlazeFace and the emotion classifier run in this browser with ONNX Runtime Web
// (WebAssembly, one thread, vendored under ort/), so camera frames never leave the device.
// The pre-processing is ferkit's Python pipeline (ferkit/inference/detect.py and recognizer.py) step by
// step, in OpenCV's arithmetic where it matters: RGB->grey in fixed point, area and bilinear resizes,
// getRectSubPix and warpAffine with replicated borders. tests/test_web_ondevice.py compares the two.
"use strict";

(() => {
  const SIZE = 256, STRIDES = [16, 32, 32, 32], PER_CELL = 2, MIN_SCORE = 0.5, IOU = 0.3;

  /** Python's round(): halves to even. */
  function pyRound(v) {
    const r = Math.round(v);
    return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
  }
  const clamp = (v, lo, hi) => (v < lo ? lo : v > hi ? hi : v);
  const u8 = (v) => clamp(Math.round(v), 0, 255);

  /** An image: {data: Uint8Array|Uint8ClampedArray, width, height, channels}. */
  const image = (data, width, height, channels) => ({ data, width, height, channels });

  /** cv2.resize INTER_AREA, shrinking: each output pixel is the mean of the source area it covers. */
  function resizeArea(src, w, h) {
    const { data, width: W, height: H, channels: C } = src;
    const out = new Uint8Array(w * h * C);
    const sx = W / w, sy = H / h;
    const spans = (n, s, max) => {  // per output index: [first source index, weights]
      const tab = [];
      for (let d = 0; d < n; d++) {
        const a = d * s, b = Math.min((d + 1) * s, max);
        const ws = [];
        const first = Math.floor(a);
        for (let i = first; i < Math.ceil(b - 1e-9); i++) ws.push(Math.min(b, i + 1) - Math.max(a, i));
        tab.push([first, ws]);
      }
      return tab;
    };
    const xs = spans(w, sx, W), ys = spans(h, sy, H);
    const acc = new Float64Array(C);
    for (let y = 0; y < h; y++) {
      const [y0, wy] = ys[y];
      for (let x = 0; x < w; x++) {
        const [x0, wx] = xs[x];
        acc.fill(0);
        let total = 0;
        for (let j = 0; j < wy.length; j++) {
          const row = (y0 + j) * W;
          for (let i = 0; i < wx.length; i++) {
            const wgt = wy[j] * wx[i], p = (row + x0 + i) * C;
            total += wgt;
            for (let c = 0; c < C; c++) acc[c] += wgt * data[p + c];
          }
        }
        const o = (y * w + x) * C;
        for (let c = 0; c < C; c++) out[o + c] = u8(acc[c] / total);
      }
    }
    return image(out, w, h, C);
  }

  /** cv2.resize INTER_LINEAR: half-pixel centres, edges clamped. */
  function resizeLinear(src, w, h) {
    const { data, width: W, height: H, channels: C } = src;
    const out = new Uint8Array(w * h * C);
    const taps = (n, N) => {
      const t = [];
      const s = N / n;
      for (let d = 0; d < n; d++) {
        let f = (d + 0.5) * s - 0.5, i = Math.floor(f);
        f -= i;
        if (i < 0) { i = 0; f = 0; }
        if (i >= N - 1) { i = N - 1; f = 0; }
        t.push([i, Math.min(i + 1, N - 1), f]);
      }
      return t;
    };
    const tx = taps(w, W), ty = taps(h, H);
    for (let y = 0; y < h; y++) {
      const [y0, y1, fy] = ty[y];
      for (let x = 0; x < w; x++) {
        const [x0, x1, fx] = tx[x];
        const a = (y0 * W + x0) * C, b = (y0 * W + x1) * C, c0 = (y1 * W + x0) * C, d = (y1 * W + x1) * C;
        const o = (y * w + x) * C;
        for (let c = 0; c < C; c++) {
          const top = data[a + c] * (1 - fx) + data[b + c] * fx;
          const bottom = data[c0 + c] * (1 - fx) + data[d + c] * fx;
          out[o + c] = u8(top * (1 - fy) + bottom * fy);
        }
      }
    }
    return image(out, w, h, C);
  }

  /** detect.shrink: an integer-factor area step, then bilinear for the rest. */
  function shrink(src, w, h) {
    const k = Math.min(Math.floor(src.width / w), Math.floor(src.height / h));
    if (k >= 2) {
      const W = Math.floor(src.width / k) * k, H = Math.floor(src.height / k) * k;
      src = resizeArea(crop(src, 0, 0, W, H), W / k, H / k);
    }
    return resizeLinear(src, w, h);
  }

  function crop(src, x, y, w, h) {
    if (x === 0 && y === 0 && w === src.width && h === src.height) return src;
    const C = src.channels, out = new Uint8Array(w * h * C);
    for (let r = 0; r < h; r++) out.set(src.data.subarray(((y + r) * src.width + x) * C, ((y + r) * src.width + x + w) * C), r * w * C);
    return image(out, w, h, C);
  }

  /** cv2.cvtColor(COLOR_RGB2GRAY) on 8-bit pixels (its fixed-point weights); ``src`` RGB or RGBA. */
  function grey(src) {
    const { data, width, height, channels: C } = src;
    const out = new Uint8Array(width * height);
    for (let i = 0, p = 0; i < out.length; i++, p += C) {
      out[i] = (data[p] * 4899 + data[p + 1] * 9617 + data[p + 2] * 1868 + 8192) >> 14;
    }
    return image(out, width, height, 1);
  }

  function rgbOf(src) {
    if (src.channels === 3) return src;
    const n = src.width * src.height, out = new Uint8Array(n * 3);
    for (let i = 0; i < n; i++) {
      out[3 * i] = src.data[4 * i];
      out[3 * i + 1] = src.data[4 * i + 1];
      out[3 * i + 2] = src.data[4 * i + 2];
    }
    return image(out, src.width, src.height, 3);
  }

  /** Bilinear sample of a grey image with replicated borders. */
  function sample(g, x, y) {
    const x0 = Math.floor(x), y0 = Math.floor(y), fx = x - x0, fy = y - y0;
    const W = g.width, H = g.height, d = g.data;
    const xa = clamp(x0, 0, W - 1), xb = clamp(x0 + 1, 0, W - 1), ya = clamp(y0, 0, H - 1), yb = clamp(y0 + 1, 0, H - 1);
    return (d[ya * W + xa] * (1 - fx) + d[ya * W + xb] * fx) * (1 - fy) + (d[yb * W + xa] * (1 - fx) + d[yb * W + xb] * fx) * fy;
  }

  /** cv2.getRectSubPix: a ``span`` x ``span`` window centred at (cx, cy), borders replicated. */
  function rectSubPix(g, span, cx, cy) {
    const out = new Uint8Array(span * span);
    const x0 = cx - (span - 1) * 0.5, y0 = cy - (span - 1) * 0.5;
    for (let y = 0; y < span; y++) for (let x = 0; x < span; x++) out[y * span + x] = u8(sample(g, x0 + x, y0 + y));
    return image(out, span, span, 1);
  }

  /** cv2.warpAffine(INTER_LINEAR, BORDER_REPLICATE) of a square grey image by the 2x3 matrix ``m``
   * (source coordinates in 1/32 pixel steps, as OpenCV's). */
  function warpAffine(g, m) {
    const n = g.width, out = new Uint8Array(n * n);
    let d = m[0] * m[4] - m[1] * m[3];
    d = d ? 1 / d : 0;
    const a11 = m[4] * d, a22 = m[0] * d, a12 = -m[1] * d, a21 = -m[3] * d;
    const b1 = -a11 * m[2] - a12 * m[5], b2 = -a21 * m[2] - a22 * m[5];
    for (let y = 0; y < n; y++) {
      for (let x = 0; x < n; x++) {
        const X = (Math.round(a11 * x * 1024) + Math.round((a12 * y + b1) * 1024) + 16) >> 5;
        const Y = (Math.round(a21 * x * 1024) + Math.round((a22 * y + b2) * 1024) + 16) >> 5;
        out[y * n + x] = u8(sample(g, X / 32, Y / 32));
      }
    }
    return image(out, n, n, 1);
  }

  /** recognizer.align_face: the square around the box, eyes levelled, ``size`` x ``size``. */
  function alignFace(g, box, eyes, size) {
    const [x, y, w, h] = box;
    const side = Math.max(w, h), outer = pyRound(size * 1.5), span = Math.max(2, pyRound(side * 1.5));
    let region = rectSubPix(g, span, x + w / 2, y + h / 2);
    region = span > outer ? resizeArea(region, outer, outer) : resizeLinear(region, outer, outer);
    const angle = Math.atan2(eyes[1][1] - eyes[0][1], eyes[1][0] - eyes[0][0]);
    const c = outer / 2, a = Math.cos(angle), b = Math.sin(angle);
    region = warpAffine(region, [a, b, (1 - a) * c - b * c, -b, a, b * c + (1 - a) * c]);
    const m = (outer - size) >> 1;
    return crop(region, m, m, size, size);
  }

  /** recognizer.crop_face: the box resized to ``size`` x ``size``. */
  function cropFace(g, box, size) {
    const [x, y, w, h] = box;
    const x0 = Math.max(0, x), y0 = Math.max(0, y);
    const c = crop(g, x0, y0, Math.min(g.width, x + w) - x0, Math.min(g.height, y + h) - y0);
    return Math.min(c.width, c.height) >= size ? resizeArea(c, size, size) : resizeLinear(c, size, size);
  }

  /** core.classifier.face_views: the float views of an n x n crop that ``tta`` averages: the crop; plus its
   * mirror image (flip); or ten crops of 11/12 of the side (four corners, centre, and their mirrors), each
   * resized back to n x n bilinearly (half-pixel centres, as OpenCV and PyTorch resize floats). */
  function ttaViews(face, tta) {
    const n = face.width, base = Float32Array.from(face.data);
    const mirror = (v) => {
      const out = new Float32Array(n * n);
      for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) out[y * n + x] = v[y * n + n - 1 - x];
      return out;
    };
    if (tta === "flip") return [base, mirror(base)];
    if (tta !== "tencrop") return [base];
    const k = pyRound((n * 11) / 12), m = n - k, c = m >> 1, scale = k / n;
    const taps = [];
    for (let d = 0; d < n; d++) {
      const s = Math.max(0, (d + 0.5) * scale - 0.5), i = Math.min(Math.floor(s), k - 1);
      taps.push([i, Math.min(i + 1, k - 1), i < k - 1 ? s - i : 0]);
    }
    const views = [];
    for (const [top, left] of [[0, 0], [0, m], [m, 0], [m, m], [c, c]]) {
      const v = new Float32Array(n * n);
      for (let y = 0; y < n; y++) {
        const [y0, y1, fy] = taps[y], r0 = (top + y0) * n + left, r1 = (top + y1) * n + left;
        for (let x = 0; x < n; x++) {
          const [x0, x1, fx] = taps[x];
          const a = base[r0 + x0] + fx * (base[r0 + x1] - base[r0 + x0]);
          const b = base[r1 + x0] + fx * (base[r1 + x1] - base[r1 + x0]);
          v[y * n + x] = a + fy * (b - a);
        }
      }
      views.push(v, mirror(v));
    }
    return views;
  }

  const anchorCache = new Map();
  /** detect._anchor_centres: SSD anchor centres, layers of one stride merged. */
  function anchors(h, w) {
    const key = `${h}x${w}`;
    if (anchorCache.has(key)) return anchorCache.get(key);
    const out = [];
    for (let i = 0; i < STRIDES.length;) {
      let j = i;
      while (j < STRIDES.length && STRIDES[j] === STRIDES[i]) j++;
      const s = STRIDES[i], reps = PER_CELL * (j - i);
      for (let r = 0; r < h / s; r++) for (let c = 0; c < w / s; c++) for (let k = 0; k < reps; k++) out.push([(c + 0.5) * s, (r + 0.5) * s]);
      i = j;
    }
    anchorCache.set(key, out);
    return out;
  }

  /** detect.weighted_nms: each kept detection is the score-weighted mean of its overlapping group. */
  function weightedNms(cands) {
    cands.sort((p, q) => q.score - p.score);
    const area = (b) => Math.max(0, b[2] - b[0]) * Math.max(0, b[3] - b[1]);
    const alive = cands.map(() => true), out = [];
    for (let i = 0; i < cands.length; i++) {
      if (!alive[i]) continue;
      const bi = cands[i].box, box = [0, 0, 0, 0], pts = cands[i].points.map(() => [0, 0]);
      let total = 0;
      for (let j = 0; j < cands.length; j++) {
        if (!alive[j]) continue;
        const bj = cands[j].box;
        const iw = Math.max(0, Math.min(bi[2], bj[2]) - Math.max(bi[0], bj[0]));
        const ih = Math.max(0, Math.min(bi[3], bj[3]) - Math.max(bi[1], bj[1]));
        const inter = iw * ih;
        if (j !== i && !(inter / Math.max(area(bi) + area(bj) - inter, 1e-12) > IOU)) continue;
        const s = cands[j].score;
        total += s;
        for (let k = 0; k < 4; k++) box[k] += bj[k] * s;
        cands[j].points.forEach((p, k) => { pts[k][0] += p[0] * s; pts[k][1] += p[1] * s; });
        alive[j] = false;
      }
      out.push({ box: box.map((v) => v / total), points: pts.map(([px, py]) => [px / total, py / total]), score: cands[i].score });
    }
    return out;
  }

  class OnDevice {
    constructor(info, detector, classifiers) {
      this.info = info;
      this.classes = info.classifier.classes;
      this.size = info.classifier.input_size;
      this.detector = detector;
      this.classifiers = classifiers;  // one session, or an ensemble's members (their probabilities averaged)
    }

    /** Load the runtime, BlazeFace and the classifier (each member of an ensemble); ``info`` is ondevice.json. */
    static async create(info) {
      const ort = window.ort;
      if (!ort) throw new Error("ONNX Runtime Web did not load");
      ort.env.wasm.numThreads = 1;
      ort.env.wasm.proxy = false;
      ort.env.wasm.wasmPaths = new URL(info.runtime, document.baseURI).href;
      ort.env.logLevel = "error";
      const opts = { executionProviders: ["wasm"], graphOptimizationLevel: "all" };
      const detector = await ort.InferenceSession.create(info.detector.url, opts);
      const classifiers = [];
      for (const url of info.classifier.urls) classifiers.push(await ort.InferenceSession.create(url, opts));
      return new OnDevice(info, detector, classifiers);
    }

    /** BlazeFace on an RGB image: [{box: [x, y, w, h], landmarks: [[x, y] x 6], score}], left to right. */
    async detect(rgb) {
      const { width: w, height: h } = rgb;
      const scale = SIZE / Math.max(h, w);
      const nh = Math.max(1, pyRound(h * scale)), nw = Math.max(1, pyRound(w * scale));
      const small = scale < 1 ? shrink(rgb, nw, nh) : resizeLinear(rgb, nw, nh);
      const ih = Math.ceil(nh / 32) * 32, iw = Math.ceil(nw / 32) * 32;
      const py = (ih - nh) >> 1, px = (iw - nw) >> 1;
      const x = new Float32Array(3 * ih * iw).fill(-1);
      const k = Math.fround(1 / 127.5);
      for (let c = 0; c < 3; c++) {
        for (let r = 0; r < nh; r++) {
          for (let q = 0; q < nw; q++) {
            x[(c * ih + r + py) * iw + q + px] = Math.fround(small.data[(r * nw + q) * 3 + c] * k) - 1;
          }
        }
      }
      const ort = window.ort;
      const feeds = { [this.detector.inputNames[0]]: new ort.Tensor("float32", x, [1, 3, ih, iw]) };
      const res = await this.detector.run(feeds);
      const reg = res.regressors.data, cls = res.classificators.data;
      const all = anchors(ih, iw), cands = [];
      for (let i = 0; i < cls.length; i++) {
        const score = 1 / (1 + Math.exp(-clamp(cls[i], -80, 80)));
        if (score < MIN_SCORE) continue;
        const [ax, ay] = all[i], r = reg.subarray(16 * i, 16 * i + 16);
        const cx = r[0] + ax, cy = r[1] + ay, bw = r[2], bh = r[3];
        if (!(bw > 0 && bh > 0)) continue;
        const points = [];
        for (let p = 2; p < 8; p++) points.push([r[2 * p] + ax, r[2 * p + 1] + ay]);
        cands.push({ box: [cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], points, score });
      }
      const found = [];
      for (const d of weightedNms(cands)) {
        const b = [(d.box[0] - px) / scale, (d.box[1] - py) / scale, (d.box[2] - px) / scale, (d.box[3] - py) / scale];
        const x1 = Math.max(0, pyRound(b[0])), y1 = Math.max(0, pyRound(b[1]));
        const x2 = Math.min(w, pyRound(b[2])), y2 = Math.min(h, pyRound(b[3]));
        if (x2 > x1 && y2 > y1) {
          found.push({ box: [x1, y1, x2 - x1, y2 - y1], score: d.score,
                       landmarks: d.points.map(([lx, ly]) => [(lx - px) / scale, (ly - py) / scale]) });
        }
      }
      return found.sort((p, q) => p.box[0] - q.box[0] || p.box[1] - q.box[1]);
    }

    /** The faces in an RGB or RGBA image ({data, width, height, channels}), in the server's answer's
     * shape: {width, height, faces: [{box, probs, emotion, score, landmarks}], ms, crops}. Faces are
     * eye-aligned as the server aligns them (``serve --no-align`` turns it off here too), and their
     * probabilities averaged over the server's test-time augmentation (``serve --tta``) and an ensemble's members
     * (``serve --model flagship,default``). */
    async predict(img, { align = this.info.align !== false, tta = this.info.tta || "none" } = {}) {
      const t0 = performance.now();
      const dets = await this.detect(rgbOf(img));
      const g = grey(img), n = this.size;
      const crops = dets.map((d) => (align && d.landmarks ? alignFace(g, d.box, d.landmarks, n) : cropFace(g, d.box, n)));
      const faces = [];
      if (crops.length) {
        const views = crops.map((c) => ttaViews(c, tta)), V = views[0].length;
        const x = new Float32Array(crops.length * V * n * n);
        views.flat().forEach((v, i) => x.set(v, i * n * n));
        const ort = window.ort;
        const C = this.classes.length, M = this.classifiers.length;
        const p = new Float32Array(crops.length * C);  // each face's mean over its V views and the M members
        for (const session of this.classifiers) {
          const out = await session.run({ [session.inputNames[0]]: new ort.Tensor("float32", x, [crops.length * V, 1, n, n]) });
          const raw = out[session.outputNames[0]].data;
          for (let i = 0; i < crops.length * V; i++) for (let c = 0; c < C; c++) p[Math.floor(i / V) * C + c] += raw[i * C + c] / (V * M);
        }
        dets.forEach((d, i) => {
          const probs = {};
          let top = 0;
          for (let c = 0; c < C; c++) {
            probs[this.classes[c]] = p[i * C + c];
            if (p[i * C + c] > p[i * C + top]) top = c;
          }
          faces.push({ box: d.box, probs, emotion: this.classes[top], score: p[i * C + top],
                       landmarks: d.landmarks.map(([lx, ly]) => [Math.round(lx * 10) / 10, Math.round(ly * 10) / 10]) });
        });
      }
      return { width: img.width, height: img.height, faces, ms: performance.now() - t0, model: this.info.classifier.name,
               crops: crops.map((c) => c.data) };
    }
  }

  window.ferkitOnDevice = { OnDevice, image, _grey: grey, _align: alignFace };
})();

"""CPU inference speed of an exported model on ONNX Runtime: per face and per 640x480 frame.

    .venv/bin/python benchmarks/inference_speed.py [--model M.onnx ...] [--out benchmarks/inference_speed.md]

Classification: 48x48 faces at batch 1 (median latency) and batch 256 (faces/s). End to end: one
640x480 frame holding one face (the bundled astronaut photo resized), Haar detection + crop +
classification, median over the timed runs. The default model is the one shipped in the package.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import cv2
import numpy as np
import onnxruntime

from ferkit.demo import demo_photo
from ferkit.inference import EmotionClassifier, Recognizer, default_model_path, read_image


def median_ms(fn, runs: int, warmup: int = 20) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * float(np.median(times))


def frame_640x480() -> np.ndarray:
    """The bundled photo (512x512, one face), its top 480 rows centred on a grey 640x480 canvas."""
    frame = np.full((480, 640, 3), 128, np.uint8)
    frame[:, 64:576] = read_image(demo_photo())[:480]
    return frame


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", nargs="*", default=[str(default_model_path())])
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--out", default="benchmarks/inference_speed.md")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    one, many = rng.integers(0, 256, (1, 48, 48), dtype=np.uint8), rng.integers(0, 256, (256, 48, 48), dtype=np.uint8)
    frame = frame_640x480()
    rows = []
    for path in args.model:
        clf = EmotionClassifier(path)
        rec = Recognizer(model=path)
        assert len(rec.predict(frame)) == 1, "the benchmark frame should hold exactly one detected face"
        b1 = median_ms(lambda: clf.predict_proba(one), args.runs)
        b256 = median_ms(lambda: clf.predict_proba(many, batch_size=256), max(20, args.runs // 10), warmup=3)
        e2e = median_ms(lambda: rec.predict(frame), args.runs // 3)
        detect = median_ms(lambda: rec.detector.detect(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)), args.runs // 3)
        rows.append((Path(path).name, clf.metadata.get("precision", "?"), b1, 256 / (b256 / 1000), detect, e2e))
        print(f"{rows[-1][0]}: {b1:.3f} ms/face at batch 1, {rows[-1][3]:.0f} faces/s batched, "
              f"detect {detect:.2f} ms, end to end {e2e:.2f} ms per 640x480 frame")
    lines = [f"# CPU inference speed ({os.cpu_count()} cores, onnxruntime {onnxruntime.__version__})", "",
             "Measured with `.venv/bin/python benchmarks/inference_speed.py"
             + ("" if args.model == [str(default_model_path())] else " --model " + " ".join(args.model)) + "`",
             "(medians; end to end = Haar detection + crop + classification of one 640x480 frame with one face).", "",
             "| model | precision | ms per face, batch 1 | faces/s, batch 256 | Haar detect ms | end to end ms per frame |",
             "|---|---|---:|---:|---:|---:|"]
    lines += [f"| {n} | {p} | {b1:.3f} | {fps:.0f} | {d:.2f} | {e:.2f} |" for n, p, b1, fps, d, e in rows]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

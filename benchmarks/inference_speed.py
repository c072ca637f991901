"""CPU inference speed of an exported model (or an ensemble: `--model A,B`) on ONNX Runtime: per face and per
640x480 frame.

    .venv/bin/python benchmarks/inference_speed.py [--model M.onnx|NAME|A,B ...] [--tta none flip tencrop]
        [--out benchmarks/inference_speed.md]

Classification: 48x48 faces at batch 1 (median latency) and batch 256 (faces/s). End to end: one
640x480 frame holding one face (the bundled astronaut photo), detection + alignment + classification,
median over the timed runs, for each detector. The default model is the one shipped in the package. With
``--tta``, each test-time augmentation is timed (``--tta`` of predict, video, webcam and serve), end to end
with BlazeFace only.
Video: frames/s of `ferkit video` on ../shared/examples/fer_woman2.mp4 (596x336, 29.97 fps), when present.
With `--fer-python .venv-peers/bin/python` (made by `make bench-peers`), the `fer` package is timed on
the same frame in its own virtual environment, in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime

from ferkit.apps.video import video_file
from ferkit.data.augment import TTA_MODES
from ferkit.demo import demo_photo
from ferkit.inference import Recognizer, default_model_path, load_classifier, read_image
from ferkit.inference.detect import DETECTORS

VIDEO = Path(__file__).resolve().parents[2] / "shared" / "examples" / "fer_woman2.mp4"


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
    ap.add_argument("--tta", nargs="+", default=["none"], choices=TTA_MODES, help="test-time augmentations to time")
    ap.add_argument("--fer-python", help="python of a virtual environment with the `fer` package")
    ap.add_argument("--out", default="benchmarks/inference_speed.md")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    one, many = rng.integers(0, 256, (1, 48, 48), dtype=np.uint8), rng.integers(0, 256, (256, 48, 48), dtype=np.uint8)
    frame = frame_640x480()
    rows, e2e = [], []
    tta_named = args.tta != ["none"]
    for path, tta in [(p, t) for p in args.model for t in args.tta]:
        name = Path(path).name + (f" (tta {tta})" if tta_named else "")
        clf = load_classifier(path)  # "A,B": an ensemble
        b1 = median_ms(lambda: clf.predict_proba(one, tta=tta), args.runs)
        b256 = median_ms(lambda: clf.predict_proba(many, batch_size=256, tta=tta), max(20, args.runs // 10), warmup=3)
        precision = "+".join(m.metadata.get("precision", "?") for m in clf.members)
        rows.append((name, precision, b1, 256 / (b256 / 1000)))
        print(f"{rows[-1][0]}: {b1:.3f} ms/face at batch 1, {rows[-1][3]:.0f} faces/s batched")
        for det in DETECTORS if not tta_named else ["blazeface"]:
            rec = Recognizer(model=path, detector=det, tta=tta)
            n = len(rec.predict(frame))
            ms = median_ms(lambda: rec.predict(frame), args.runs // 3, warmup=5)
            e2e.append((name, det, n, ms))
            print(f"  {det}: {n} face(s), {ms:.2f} ms per 640x480 frame")
    video = None
    if VIDEO.exists():
        with tempfile.TemporaryDirectory() as tmp:
            v = video_file(VIDEO, out=tmp, model=args.model[0], save_video=False, progress=False)
        video = (v.frames_read, v.seconds, v.frames_read / v.seconds)
        print(f"video: {video[2]:.1f} frames/s")
    peer = None
    if args.fer_python:
        script = Path(__file__).with_name("peer_fer.py")
        r = subprocess.run([args.fer_python, str(script)], capture_output=True, text=True, check=True)
        peer = json.loads(r.stdout.strip().splitlines()[-1])
        print(f"fer: {peer}")
    lines = [f"# CPU inference speed ({os.cpu_count()} cores, onnxruntime {onnxruntime.__version__})", "",
             "Measured with `.venv/bin/python benchmarks/inference_speed.py"
             + ("" if args.model == [str(default_model_path())] else " --model " + " ".join(args.model))
             + (" --tta " + " ".join(args.tta) if tta_named else "")
             + (f" --fer-python {args.fer_python}" if args.fer_python else "") + "` (medians, one run).", "",
             "## Classification (ONNX Runtime, 48x48 grey faces)", "",
             "| model | precision | ms per face, batch 1 | faces/s, batch 256 |", "|---|---|---:|---:|"]
    lines += [f"| {n} | {p} | {b1:.3f} | {fps:.0f} |" for n, p, b1, fps in rows]
    lines += ["", "## End to end: one 640x480 frame with one face (detect, align, classify)", "",
              "| model | detector | faces found | ms per frame |", "|---|---|---:|---:|"]
    lines += [f"| {n} | {d} | {k} | {ms:.2f} |" for n, d, k, ms in e2e]
    if peer:
        name, ours = next((n, ms) for n, d, _, ms in e2e if d == "blazeface")
        lines += [f"| `fer` package ({peer['package']}, mini-Xception on TensorFlow, own venv) | {peer['detector']} | "
                  f"{peer['faces']} | {peer['ms_per_frame']:.2f} |", "",
                  f"ferkit ({name}, blazeface) is {peer['ms_per_frame'] / ours:.1f}x faster per frame than `fer` "
                  "in this run."]
    if video:
        lines += ["", "## Video", "", f"`ferkit video` (default detector, every frame, no mp4 written) on "
                  f"`fer_woman2.mp4` (596x336, 29.97 fps): {video[0]} frames in {video[1]:.1f} s = "
                  f"**{video[2]:.0f} frames/s**, {video[2] / 29.97:.1f}x real time."]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

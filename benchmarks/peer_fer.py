"""Time the `fer` package (mini-Xception, TensorFlow; OpenCV Haar detector by default) on the same
640x480 frame as ferkit's benchmarks. Runs in its own virtual environment (see `make bench-peers`);
prints one JSON line. Not imported by ferkit.

    .venv-peers/bin/python benchmarks/peer_fer.py [--runs 50]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

PHOTO = Path(__file__).resolve().parents[1] / "src" / "ferkit" / "assets" / "astronaut.jpg"


def frame_640x480_bgr() -> np.ndarray:
    """The bundled photo's top 480 rows centred on a grey 640x480 canvas (as benchmarks/inference_speed.py)."""
    rgb = np.asarray(Image.open(PHOTO).convert("RGB"))
    frame = np.full((480, 640, 3), 128, np.uint8)
    frame[:, 64:576] = rgb[:480]
    return np.ascontiguousarray(frame[..., ::-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--mtcnn", action="store_true", help="fer's MTCNN detector instead of its Haar default")
    args = ap.parse_args()
    import fer
    from fer.fer import FER

    detector = FER(mtcnn=args.mtcnn)
    frame = frame_640x480_bgr()
    for _ in range(5):
        faces = detector.detect_emotions(frame)
    times = []
    for _ in range(args.runs):
        t = time.perf_counter()
        detector.detect_emotions(frame)
        times.append(time.perf_counter() - t)
    print(json.dumps({"package": f"fer {getattr(fer, '__version__', '?')}", "detector": "mtcnn" if args.mtcnn else "haar",
                      "faces": len(faces), "ms_per_frame": 1000 * float(np.median(times)),
                      "top": max(faces[0]["emotions"], key=faces[0]["emotions"].get) if faces else None}))


if __name__ == "__main__":
    main()

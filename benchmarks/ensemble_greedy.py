"""Greedy ensemble selection (Caruana et al., 2004) over every candidate model at hand, on PublicTest only: start
from the best single candidate, then repeatedly add (with replacement: a model may count twice) the candidate
whose addition scores best on PublicTest (accuracy; ties: the lower log-loss), --max-size times; the ensemble kept
is the step with the best PublicTest accuracy (ties: the lower log-loss, then the fewer members), as in the paper,
so that members that only help together are still found past a step that lowers the accuracy. Only the chosen
ensemble is then scored on PrivateTest; the other candidates' PrivateTest is never computed.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ensemble_greedy.py --data ../shared/data/fer2013.csv.gz \\
        --tta flip --candidates flagship default runs/*/best.pt

A candidate trained on other classes (the shipped `ferplus` model: FER+'s eight, in FER+'s order) is scored on the
data's classes: its probabilities reordered to them, the classes the data lacks (Contempt) dropped, renormalised.

Each candidate's probabilities are cached under --cache (keyed by the file's and the split's content hashes and the
TTA), so that a rerun with more candidates scores only the new ones. Candidates with the same content are scored once.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np

from ferkit.core.predict import ensemble_proba, load_member
from ferkit.core.runtime import file_sha256
from ferkit.core.shipped import model_list, resolve_model
from ferkit.data import load_dataset
from ferkit.data.dataset import Split
from ferkit.data.labels import probabilities_on


def _faces_digest(split: Split) -> str:
    """A short digest of ``split``'s faces, in the cache's keys so that other data never hits the cache."""
    return hashlib.sha256(split.images.tobytes()).hexdigest()[:8]


def _probs(path: Path, split: Split, classes: tuple[str, ...], faces: str, tta: str, cache: Path) -> np.ndarray:
    """``path``'s probabilities on ``split`` (whose faces' digest is ``faces``) over the data's ``classes``, from
    --cache when this file has scored these faces with this TTA."""
    file = cache / f"{file_sha256(path)}-{split.name}-{faces}-{tta}.npy"
    if not file.exists():
        member = load_member(path)
        p = ensemble_proba([member], split.images, tta=tta)
        if tuple(member[1].classes) != tuple(classes):
            try:
                p = probabilities_on(p, member[1].classes, classes)
            except ValueError as exc:
                raise SystemExit(f"{path}: {exc}") from exc
        file.parent.mkdir(parents=True, exist_ok=True)
        np.save(file, p.astype(np.float32))
    return np.load(file)


def _score(p: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(accuracy, log-loss)."""
    return float((p.argmax(1) == labels).mean()), float(-np.log(p[np.arange(len(labels)), labels] + 1e-9).mean())


def greedy_steps(probs: list[np.ndarray], labels: np.ndarray, max_size: int) -> list[tuple[int, float, float]]:
    """The greedy ensemble's ``max_size`` steps: (index into ``probs`` added, the ensemble's accuracy and log-loss
    on ``labels`` after it), repeats allowed. Each step adds the member whose addition scores best (accuracy, then
    lower log-loss)."""
    steps: list[tuple[int, float, float]] = []
    total = np.zeros_like(probs[0], dtype=np.float64)
    for n in range(1, max_size + 1):
        trials = [_score((total + p) / n, labels) for p in probs]
        pick = max(range(len(probs)), key=lambda i: (trials[i][0], -trials[i][1]))
        steps.append((pick, *trials[pick]))
        total += probs[pick]
    return steps


def best_size(steps: list[tuple[int, float, float]]) -> int:
    """How many of ``steps`` to keep: up to the best-scoring step (accuracy, then lower log-loss, then the
    earlier)."""
    return 1 + max(range(len(steps)), key=lambda k: (steps[k][1], -steps[k][2], -k))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="fer2013.csv(.gz)")
    ap.add_argument("--candidates", nargs="+", required=True, help="checkpoints, ONNX files or shipped names")
    ap.add_argument("--tta", default="flip", choices=["none", "flip", "tencrop"])
    ap.add_argument("--max-size", type=int, default=8, help="most members (counting repeats)")
    ap.add_argument("--cache", default="runs/probs", help="folder of cached probabilities")
    args = ap.parse_args()

    paths: dict[str, Path] = {}  # content digest -> first path with it
    for c in args.candidates:
        for m in model_list(c):
            p = resolve_model(m)  # a shipped name -> its file
            paths.setdefault(file_sha256(p), p)
    cands = list(paths.values())
    data = load_dataset(args.data)
    pub = data.split("PublicTest")
    cache = Path(args.cache)
    probs, pub_faces = {}, _faces_digest(pub)
    for p in cands:
        probs[p] = _probs(p, pub, data.classes, pub_faces, args.tta, cache)
        acc, nll = _score(probs[p], pub.labels)
        print(f"candidate {p}: PublicTest {100 * acc:.2f}% (log-loss {nll:.4f})", flush=True)

    steps = greedy_steps([probs[p] for p in cands], pub.labels, args.max_size)
    keep = best_size(steps)
    for n, (i, acc, nll) in enumerate(steps, 1):
        print(f"step {n}: + {cands[i]} -> PublicTest {100 * acc:.2f}% (log-loss {nll:.4f}){' <- kept' * (n == keep)}")
    steps = steps[:keep]
    chosen = [cands[i] for i, _, _ in steps]
    names = ", ".join(f"{p} x{chosen.count(p)}" for p in dict.fromkeys(chosen))
    print(f"chosen on PublicTest (tta={args.tta}): {names}: {100 * steps[-1][1]:.2f}%")
    priv = data.split("PrivateTest")
    priv_faces = _faces_digest(priv)
    ens = np.mean([_probs(p, priv, data.classes, priv_faces, args.tta, cache) for p in chosen], axis=0)
    acc, nll = _score(ens, priv.labels)
    print(f"its PrivateTest (tta={args.tta}): {100 * acc:.2f}% (log-loss {nll:.4f})")


if __name__ == "__main__":
    main()

"""Greedy ensemble selection (Caruana et al., 2004) over every candidate model at hand, on PublicTest only: start
from the best single candidate, then repeatedly add (with replacement: a model may count twice) the candidate that
raises PublicTest accuracy the most (ties: the lower log-loss), until none raises it or --max-size members are in.
Only the chosen ensemble is then scored on PrivateTest; the other candidates' PrivateTest is never computed.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ensemble_greedy.py --data ../shared/data/fer2013.csv.gz \\
        --tta flip --candidates flagship default runs/*/best.pt

Each candidate's probabilities are cached under --cache (keyed by the file's and the split's content hashes and the TTA), so that a
rerun with more candidates scores only the new ones. Candidates with the same content are scored once.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np

from ferkit.core.predict import ensemble_proba, load_member
from ferkit.core.shipped import model_list, resolve_model
from ferkit.data import load_dataset


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _probs(path: Path, images: np.ndarray, split: str, tta: str, cache: Path) -> np.ndarray:
    faces = hashlib.sha256(images.tobytes()).hexdigest()[:8]  # the split's faces, so other data never hits the cache
    file = cache / f"{_digest(path)}-{split}-{faces}-{tta}.npy"
    if not file.exists():
        member = load_member(path)
        file.parent.mkdir(parents=True, exist_ok=True)
        np.save(file, ensemble_proba([member], images, tta=tta).astype(np.float32))
    return np.load(file)


def _score(p: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(accuracy, log-loss)."""
    return float((p.argmax(1) == labels).mean()), float(-np.log(p[np.arange(len(labels)), labels] + 1e-9).mean())


def greedy_select(probs: list[np.ndarray], labels: np.ndarray, max_size: int) -> tuple[list[int], tuple[float, float]]:
    """Indices into ``probs`` of the greedy ensemble (repeats allowed) and its (accuracy, log-loss) on ``labels``:
    each step adds the member whose addition scores best (accuracy, then lower log-loss); stops when no addition
    raises the accuracy or ``max_size`` members are in."""
    chosen: list[int] = []
    total = np.zeros_like(probs[0], dtype=np.float64)
    best = (-1.0, 0.0)
    while len(chosen) < max_size:
        trials = [_score((total + p) / (len(chosen) + 1), labels) for p in probs]
        pick = max(range(len(probs)), key=lambda i: (trials[i][0], -trials[i][1]))
        if trials[pick][0] <= best[0]:
            break
        chosen.append(pick)
        total += probs[pick]
        best = trials[pick]
    return chosen, best


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
            paths.setdefault(_digest(p), p)
    cands = list(paths.values())
    data = load_dataset(args.data)
    pub = data.split("PublicTest")
    cache = Path(args.cache)
    probs = {}
    for p in cands:
        probs[p] = _probs(p, pub.images, "PublicTest", args.tta, cache)
        acc, nll = _score(probs[p], pub.labels)
        print(f"candidate {p}: PublicTest {100 * acc:.2f}% (log-loss {nll:.4f})", flush=True)

    picks, (acc, _) = greedy_select([probs[p] for p in cands], pub.labels, args.max_size)
    chosen = [cands[i] for i in picks]
    for n in range(1, len(chosen) + 1):
        a, nll = _score(np.mean([probs[p] for p in chosen[:n]], axis=0), pub.labels)
        print(f"step {n}: + {chosen[n - 1]} -> PublicTest {100 * a:.2f}% (log-loss {nll:.4f})")
    names = ", ".join(f"{p} x{chosen.count(p)}" for p in dict.fromkeys(chosen))
    print(f"chosen on PublicTest (tta={args.tta}): {names}: {100 * acc:.2f}%")
    priv = data.split("PrivateTest")
    ens = np.mean([_probs(p, priv.images, "PrivateTest", args.tta, cache) for p in chosen], axis=0)
    acc, nll = _score(ens, priv.labels)
    print(f"its PrivateTest (tta={args.tta}): {100 * acc:.2f}% (log-loss {nll:.4f})")


if __name__ == "__main__":
    main()

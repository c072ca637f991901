"""Ways to combine the shipped models, scored on PublicTest (the selection split) with flip TTA: the FER+ model as
a third member of the FER2013 pair (its seven shared emotions, Contempt dropped and the rest renormalised) at
several weights, and the pair weighted unequally.

    .venv/bin/python benchmarks/ensemble_options.py --data ../shared/data/fer2013.csv.gz
"""

from __future__ import annotations

import argparse

import numpy as np

from ferkit.data import FER2013_CLASSES, load_dataset
from ferkit.data.labels import probabilities_on
from ferkit.inference import load_classifier


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="fer2013.csv(.gz)")
    ap.add_argument("--tta", default="flip")
    args = ap.parse_args()
    split = load_dataset(args.data).split("PublicTest")
    classifiers = {name: load_classifier(name) for name in ("flagship", "default", "ferplus")}
    probs = {name: clf.predict_proba(split.images, tta=args.tta) for name, clf in classifiers.items()}
    mapped = probabilities_on(probs["ferplus"], classifiers["ferplus"].classes, FER2013_CLASSES)  # Contempt dropped

    def acc(p: np.ndarray) -> str:
        return f"{100 * (p.argmax(1) == split.labels).mean():.2f}%"

    pair = (probs["flagship"] + probs["default"]) / 2
    print(f"PublicTest, tta={args.tta}: flagship {acc(probs['flagship'])}, default {acc(probs['default'])}, "
          f"ferplus (7 emotions) {acc(mapped)}, the pair {acc(pair)}")
    for w in (0.1, 0.25, 0.5):
        print(f"the pair + ferplus at weight {w}: {acc((1 - w) * pair + w * mapped)}")
    for w in (0.4, 0.6):
        print(f"flagship at weight {w}, default {1 - w:g}: {acc(w * probs['flagship'] + (1 - w) * probs['default'])}")


if __name__ == "__main__":
    main()

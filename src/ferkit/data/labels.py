"""Class names of the label sets ferkit knows, and how one maps onto another."""

import numpy as np

FER2013_CLASSES: tuple[str, ...] = ("Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral")
"""FER2013 label order: 0=Angry ... 6=Neutral."""

FERPLUS_CLASSES: tuple[str, ...] = (
    "Neutral", "Happiness", "Surprise", "Sadness", "Anger", "Disgust", "Fear", "Contempt",
)
"""FER+ emotion order, as in Microsoft's fer2013new.csv vote columns."""

IMAGE_SIZE = 48


_CANONICAL = {"Anger": "Angry", "Happiness": "Happy", "Sadness": "Sad"}  # FER+ names -> FER2013 names


def label_map(source: tuple[str, ...] | list[str], target: tuple[str, ...] | list[str]) -> np.ndarray:
    """For each class of ``source``, the index of the same emotion in ``target`` (FER2013 and FER+
    name it differently: Angry/Anger, Happy/Happiness, Sad/Sadness), or -1 where ``target`` lacks it
    (FER+'s Contempt in FER2013)."""
    index = {_CANONICAL.get(c, c): i for i, c in enumerate(target)}
    return np.array([index.get(_CANONICAL.get(c, c), -1) for c in source], dtype=np.int64)


def probabilities_on(p: np.ndarray, source: tuple[str, ...] | list[str],
                     target: tuple[str, ...] | list[str]) -> np.ndarray:
    """Class probabilities ``p`` over ``source``'s classes as probabilities over ``target``'s: matched by emotion
    (:func:`label_map`), the classes ``target`` lacks dropped, each row renormalised. A ValueError when ``target``
    has a class ``source`` lacks."""
    lut = label_map(source, target)
    missing = sorted(set(range(len(target))) - set(lut[lut >= 0].tolist()))
    if missing:
        raise ValueError(f"a model's classes {list(source)} lack {[target[i] for i in missing]}")
    out = np.zeros((len(p), len(target)), dtype=np.float64)
    out[:, lut[lut >= 0]] = p[:, lut >= 0]
    return out / out.sum(1, keepdims=True)

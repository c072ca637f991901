"""Annotate an image with each face's box, top emotion and probability bars."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from .recognizer import Face

COLOURS = {"Angry": (220, 40, 40), "Disgust": (120, 160, 40), "Fear": (150, 60, 200), "Happy": (250, 200, 0),
           "Sad": (40, 110, 230), "Surprise": (250, 120, 20), "Neutral": (170, 170, 170),
           "Contempt": (30, 165, 160)}  # RGB
COLOURS |= {"Anger": COLOURS["Angry"], "Happiness": COLOURS["Happy"], "Sadness": COLOURS["Sad"]}  # FER+ names


def annotate(rgb: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
    """A copy of ``rgb`` with boxes, labels and a bar per class beside each face."""
    out = rgb.copy()
    side = max(out.shape[:2])
    scale = max(0.35, side / 1400)
    thick = max(1, round(side / 500))
    for face in faces:
        x, y, w, h = face.box
        colour = COLOURS.get(face.emotion, (0, 200, 0))
        cv2.rectangle(out, (x, y), (x + w, y + h), colour, thick)
        label = f"{face.emotion} {face.score:.0%}"
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        ty = y - 4 if y - th - 6 >= 0 else y + h + th + 4
        cv2.rectangle(out, (x, ty - th - 3), (x + tw + 4, ty + base - 1), colour, -1)
        cv2.putText(out, label, (x + 2, ty - 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick, cv2.LINE_AA)
        fs = scale * 0.7
        (_, text_h), _ = cv2.getTextSize("Sg", cv2.FONT_HERSHEY_SIMPLEX, fs, 1)
        bar_h = text_h + 6
        if h < 3 * bar_h:
            continue  # a small face: its label is enough, bars would cover its neighbours
        bar_w = cv2.getTextSize("Surprise 100%", cv2.FONT_HERSHEY_SIMPLEX, fs, 1)[0][0] + 8
        bx = x + w + 4 if x + w + 4 + bar_w < out.shape[1] else max(0, x - bar_w - 4)
        for i, (name, p) in enumerate(face.probs.items()):
            by = y + i * bar_h
            if by + bar_h > out.shape[0]:
                break
            cv2.rectangle(out, (bx, by + 1), (bx + bar_w, by + bar_h - 1), (40, 40, 40), -1)
            cv2.rectangle(out, (bx, by + 1), (bx + int(bar_w * p), by + bar_h - 1), COLOURS.get(name, (0, 200, 0)), -1)
            cv2.putText(out, f"{name} {p:.0%}", (bx + 4, by + bar_h - 4), cv2.FONT_HERSHEY_SIMPLEX, fs, (255, 255, 255),
                        1, cv2.LINE_AA)
    return out

"""Faces as the classifier sees them, one way for photos at inference and for training photos: a detector's
:class:`Detection` and the square grey crop around it levelled on the eyes (:func:`face_crop`)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

Box = tuple[int, int, int, int]  # x, y, w, h in image pixels


@dataclass
class Detection:
    box: Box
    score: float
    landmarks: np.ndarray | None = None  # (K, 2) pixels; BlazeFace: left eye, right eye (as seen), nose, mouth, ears


def crop_face(grey: np.ndarray, box: Box, size: int = 48) -> np.ndarray:
    """The box's pixels resized to ``size`` x ``size`` (area interpolation when shrinking)."""
    x, y, w, h = box
    crop = grey[max(0, y):y + h, max(0, x):x + w]
    interp = cv2.INTER_AREA if min(crop.shape) >= size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interp)


def align_face(grey: np.ndarray, box: Box, eyes: np.ndarray, size: int = 48) -> np.ndarray:
    """A ``size`` x ``size`` crop of the square around the box's centre (side = the box's longer
    side), rotated so that the line through the two eyes is level."""
    x, y, w, h = box
    centre = (x + w / 2, y + h / 2)
    side = max(w, h)
    outer = round(size * 1.5)  # a margin, so the rotation has pixels to bring in
    span = max(2, round(side * 1.5))
    region = cv2.getRectSubPix(grey, (span, span), centre)  # replicates the border past the image edge
    region = cv2.resize(region, (outer, outer), interpolation=cv2.INTER_AREA if span > outer else cv2.INTER_LINEAR)
    (lx, ly), (rx, ry) = eyes[0], eyes[1]
    angle = float(np.degrees(np.arctan2(ry - ly, rx - lx)))
    rot = cv2.getRotationMatrix2D((outer / 2, outer / 2), angle, 1.0)
    region = cv2.warpAffine(region, rot, (outer, outer), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    m = (outer - size) // 2
    return region[m:m + size, m:m + size]


def face_crop(grey: np.ndarray, det: Detection, align: bool = True, size: int = 48) -> np.ndarray:
    """The ``size`` x ``size`` grey input for a detection: eye-aligned when the detector gave eyes and ``align``."""
    if align and det.landmarks is not None and len(det.landmarks) >= 2:
        return align_face(grey, det.box, det.landmarks, size)
    return crop_face(grey, det.box, size)


"""Face detectors behind one interface: made by name with options, threads reaching both models."""

import cv2
import numpy as np
import pytest

from ferkit.inference import Recognizer
from ferkit.inference.detect import DETECTORS, BlazeFaceDetector, Detector, HaarDetector, create_detector


def test_every_detector_is_a_detector_made_by_name():
    for name in DETECTORS:
        det = create_detector(name)
        assert isinstance(det, Detector) and det.name == name
        assert det.detect(np.full((64, 64, 3), 128, np.uint8)) == []


def test_options_reach_the_detector():
    blaze = create_detector("blazeface", threads=1, min_score=0.8, iou_threshold=0.4)
    assert isinstance(blaze, BlazeFaceDetector) and (blaze.threads, blaze.min_score, blaze.iou_threshold) == (1, 0.8, 0.4)
    haar = create_detector("haar", min_neighbors=3, max_side=640)
    assert isinstance(haar, HaarDetector) and (haar.min_neighbors, haar.max_side, haar.threads) == (3, 640, None)
    with pytest.raises(TypeError, match="min_score"):
        create_detector("haar", min_score=0.5)


def test_recognizer_threads_reach_either_detector():
    saved = cv2.getNumThreads()
    try:
        rec = Recognizer(threads=1)
        assert isinstance(rec.detector, BlazeFaceDetector) and rec.detector.threads == 1
        cv2.setNumThreads(4)
        rec = Recognizer(detector="haar", threads=2)
        assert isinstance(rec.detector, HaarDetector) and rec.detector.threads == 2 and cv2.getNumThreads() == 2
    finally:
        cv2.setNumThreads(saved)


def test_a_detector_object_is_used_as_given():
    class Nothing:
        name = "nothing"

        def detect(self, rgb):
            return []

    det = Nothing()
    assert isinstance(det, Detector) and Recognizer(detector=det).detector is det
    assert Recognizer(detector=det).predict(np.zeros((50, 50, 3), np.uint8)) == []

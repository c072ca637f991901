"""The face detectors, kept importable from their old module: they live in :mod:`ferkit.core.detect`, since
training crops the faces of photos with them too."""

from ..core.detect import (  # noqa: F401
    DEFAULT_DETECTOR, DETECTORS, BlazeFaceDetector, Detector, HaarDetector, create_detector, shrink, weighted_nms,
)
from ..core.faces import Box, Detection  # noqa: F401

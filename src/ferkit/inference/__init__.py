"""Inference: read images, detect faces, crop, classify with ONNX Runtime, draw the results."""

from ..core.classifier import EmotionClassifier, EnsembleClassifier, default_model_path, load_classifier, shipped_models
from .detect import HaarDetector, create_detector
from .images import ImageError, as_rgb, decode_image, read_image
from .recognizer import Face, Recognizer

__all__ = ["EmotionClassifier", "EnsembleClassifier", "Face", "HaarDetector", "ImageError", "Recognizer", "as_rgb",
           "create_detector", "decode_image", "default_model_path", "load_classifier", "read_image", "shipped_models"]

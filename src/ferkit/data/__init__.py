"""Data: FER2013 readers (CSV, archive, image folders), FER+ labels, caching, augmentation."""

from .dataset import FERDataset, Split, load_dataset
from .errors import DataError
from .labels import FER2013_CLASSES, FERPLUS_CLASSES, IMAGE_SIZE

__all__ = ["DataError", "FERDataset", "FER2013_CLASSES", "FERPLUS_CLASSES", "IMAGE_SIZE", "Split", "load_dataset"]

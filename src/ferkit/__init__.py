"""ferkit: facial emotion recognition. Train honest FER2013 models; evaluate them."""

from .data import FER2013_CLASSES, FERPLUS_CLASSES, DataError, FERDataset, load_dataset
from .evaluation import evaluate
from .models import count_macs, count_parameters, create_model, list_models
from .training import TrainConfig, load_checkpoint, model_from_checkpoint, train

__version__ = "0.1.0"

__all__ = [
    "DataError", "FER2013_CLASSES", "FERPLUS_CLASSES", "FERDataset", "TrainConfig", "count_macs", "count_parameters",
    "create_model", "evaluate", "list_models", "load_checkpoint", "load_dataset", "model_from_checkpoint", "train",
]

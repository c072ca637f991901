"""ferkit: facial emotion recognition. Train honest FER2013 models; evaluate them.

The functions mirror the CLI: ``ferkit.train`` = ``ferkit train``, ``ferkit.evaluate`` = ``ferkit evaluate``,
``ferkit.data_report`` = ``ferkit data-report``, ``ferkit.list_models`` = ``ferkit models``.
"""

from .data import FER2013_CLASSES, FERPLUS_CLASSES, DataError, FERDataset, load_dataset
from .data.report import data_report
from .evaluation import evaluate
from .models import count_macs, count_parameters, create_model, list_models
from .training import TrainConfig, load_checkpoint, model_from_checkpoint, train

__version__ = "0.1.0"

__all__ = [
    "DataError", "data_report", "FER2013_CLASSES", "FERPLUS_CLASSES", "FERDataset", "TrainConfig", "count_macs", "count_parameters",
    "create_model", "evaluate", "list_models", "load_checkpoint", "load_dataset", "model_from_checkpoint", "train",
]

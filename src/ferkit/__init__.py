"""ferkit: facial emotion recognition. Train honest FER2013 models; evaluate, export and use them.

The functions mirror the CLI: ``ferkit.train`` = ``ferkit train``, ``ferkit.evaluate`` = ``ferkit evaluate``,
``ferkit.export`` = ``ferkit export``, ``ferkit.predict`` = ``ferkit predict``, ``ferkit.data_report`` =
``ferkit data-report``, ``ferkit.list_models`` = ``ferkit models``; ``ferkit.Recognizer`` for photos in code.
"""

from .version import __version__

from .data import FER2013_CLASSES, FERPLUS_CLASSES, DataError, FERDataset, load_dataset
from .data.report import data_report
from .evaluation import evaluate
from .export import export
from .models import count_macs, count_parameters, create_model, list_models
from .training import TrainConfig, load_checkpoint, model_from_checkpoint, train



def __getattr__(name: str):
    """``Recognizer``, ``Face`` and ``predict`` load ONNX Runtime and OpenCV only when first used."""
    if name in ("Recognizer", "Face"):
        from . import inference

        return getattr(inference, name)
    if name == "predict":
        from .apps.predict import predict_files

        return predict_files
    raise AttributeError(f"module 'ferkit' has no attribute {name!r}")


__all__ = [
    "DataError", "data_report", "FER2013_CLASSES", "FERPLUS_CLASSES", "FERDataset", "TrainConfig", "count_macs", "count_parameters",
    "create_model", "evaluate", "export", "Face", "predict", "Recognizer", "list_models", "load_checkpoint", "load_dataset", "model_from_checkpoint", "train",
]

"""Model registry: ``create_model(name)``, ``list_models()``; importing this registers every model."""

from . import efficient, mini_xception, seeds, transfer  # noqa: F401  (registers the models)
from .registry import (count_macs, count_parameters, create_model, list_models, model_aliases, model_entry,
                       register_alias, register_model)

__all__ = ["count_macs", "count_parameters", "create_model", "list_models", "model_aliases", "model_entry", "register_alias",
           "register_model"]

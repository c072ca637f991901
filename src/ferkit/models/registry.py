"""A timm-style model registry: ``@register_model`` builders, ``create_model(name)``, ``list_models()``."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from ..errors import ConfigError


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable[..., nn.Module]
    description: str
    input_size: int = 48
    channels: int = 1
    requires: str | None = None  # the optional module it is built with (timm), if any

    @property
    def available(self) -> bool:
        """Whether the module it needs is installed (its builder then works)."""
        return self.requires is None or importlib.util.find_spec(self.requires) is not None


_REGISTRY: dict[str, ModelEntry] = {}
_ALIASES: dict[str, str] = {}


def register_model(name: str, description: str, input_size: int = 48, channels: int = 1,
                   requires: str | None = None) -> Callable:
    """Register a builder ``(num_classes, in_chans) -> nn.Module`` with its default input size and channels;
    ``requires`` names an optional module it needs (it is then listed only where that is installed)."""
    def wrap(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = ModelEntry(name, builder, description, input_size, channels, requires)
        return builder

    return wrap


def register_alias(old: str, name: str) -> None:
    """Keep ``old`` working as another name of the registered ``name`` (not listed by :func:`list_models`)."""
    if old in _REGISTRY or old in _ALIASES or name not in _REGISTRY:
        raise ValueError(f"alias {old!r} clashes with a model, or {name!r} is not registered")
    _ALIASES[old] = name


def model_aliases() -> dict[str, str]:
    """Old names still accepted, and the model each now names."""
    return dict(_ALIASES)


def list_models(include_unavailable: bool = False) -> list[str]:
    """The registered names; those whose optional module is not installed only with ``include_unavailable``."""
    return sorted(n for n, e in _REGISTRY.items() if include_unavailable or e.available)


def model_entry(name: str) -> ModelEntry:
    try:
        return _REGISTRY[_ALIASES.get(name, name)]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; choose from: {', '.join(list_models(True))}") from None


def create_model(name: str, num_classes: int = 7, in_chans: int = 1) -> nn.Module:
    """Build a registered model with fresh weights."""
    return model_entry(name).builder(num_classes=num_classes, in_chans=in_chans)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, input_size: int = 48, in_chans: int = 1) -> int:
    """Forward multiply-accumulates for one image (PyTorch's FLOP counter / 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, in_chans, input_size, input_size))
    model.train(was_training)
    return counter.get_total_flops() // 2

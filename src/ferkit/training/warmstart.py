"""Warm starts: ``--pretrained`` backbone weights from a timm/torchvision state dict, ``--init`` from a ferkit
checkpoint, and the head/backbone split that ``--freeze-epochs`` and ``--backbone-lr-scale`` use.

Files are read safely (``torch.load(weights_only=True)`` or safetensors) and never downloaded. A tensor is taken
when its name and shape match the model's; the rest of the model keeps its fresh initialisation, and a
:class:`LoadReport` says what was loaded, what is new and what in the file went unused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..core.checkpoint import Checkpoint, CheckpointError, load_checkpoint
from ..data.labels import label_map
from ..errors import ConfigError, optional_import

_NESTED = ("state_dict", "model", "module", "model_state_dict")  # where training scripts keep the weights


@dataclass
class LoadReport:
    """What a warm start did: tensors ``loaded`` (by model key), ``new`` (freshly initialised), ``unused`` (file
    keys not taken), ``notes`` (first-layer adaptation, head rows kept)."""

    source: str
    loaded: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    parameters: int = 0  # numbers loaded

    def summary(self) -> str:
        def names(keys: list[str]) -> str:
            return ", ".join(keys[:6]) + (f" and {len(keys) - 6} more" if len(keys) > 6 else "") if keys else "none"

        return "\n".join([f"warm start from {self.source}: loaded {len(self.loaded)} tensors "
                          f"({self.parameters / 1e6:.2f}M numbers)", f"  newly initialised: {names(self.new)}",
                          f"  not used from the file: {names(self.unused)}", *(f"  {n}" for n in self.notes)])


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a state-dict file: ``.safetensors``, or a PyTorch file (``.pth``, ``.bin``, ``.pt``) holding
    a state dict, maybe under ``state_dict``/``model``/``module``; ``module.`` prefixes (DDP) are dropped."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such weights file")
    if path.suffix == ".safetensors":
        st = optional_import("safetensors.torch", "transfer", "reading .safetensors weights")
        try:
            state = st.load_file(str(path))
        except Exception as exc:  # safetensors raises its own error types for damaged files
            raise CheckpointError(path, f"unreadable safetensors file: {exc}") from None
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a damaged or foreign file fails in torch.load with any of a dozen types
            raise CheckpointError(path, f"not a weights file torch.load reads safely: {str(exc).splitlines()[0]}") from None
    if isinstance(state, Mapping) and state.get("format", "").startswith("ferkit-checkpoint"):
        raise ConfigError(f"{path} is a ferkit checkpoint: start from it with --init, not --pretrained")
    while isinstance(state, Mapping) and not _tensors(state):
        inner = next((state[k] for k in _NESTED if isinstance(state.get(k), Mapping)), None)
        if inner is None:
            break
        state = inner
    if not isinstance(state, Mapping) or not _tensors(state):
        raise CheckpointError(path, "no state dict of tensors in it")
    return {k.removeprefix("module."): v for k, v in state.items() if isinstance(v, torch.Tensor)}


def _tensors(d: Mapping) -> bool:
    return any(isinstance(v, torch.Tensor) for v in d.values())


def head_names(model: nn.Module) -> list[str]:
    """Module names of the model's classifier head: timm's ``pretrained_cfg["classifier"]`` where the model has
    one, else its :func:`output_layer`."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    if cfg.get("classifier"):
        names = cfg["classifier"]
        return [names] if isinstance(names, str) else list(names)
    return [output_layer(model)]


def in_head(key: str, heads: list[str]) -> bool:
    return any(key == h or key.startswith(h + ".") for h in heads)


def output_layer(model: nn.Module) -> str:
    """The name of the last Linear (or, in all-convolutional networks, Conv2d) layer: the one whose output rows
    are the classes."""
    layers = [name for name, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    if not layers:
        raise ConfigError(f"{type(model).__name__} has no Linear or Conv2d layer to take as its classifier")
    return layers[-1]


def _adapt_first_conv(weight: torch.Tensor, channels: int) -> torch.Tensor:
    """An RGB first-layer kernel (O, 3, kh, kw) for ``channels`` inputs: summed for one (a grey image through the
    sum equals the grey image repeated through the RGB kernel), repeated and rescaled otherwise (as timm does)."""
    if channels == 1:
        return weight.sum(1, keepdim=True)
    reps = -(-channels // weight.shape[1])
    return weight.repeat(1, reps, 1, 1)[:, :channels] * (weight.shape[1] / channels)


def load_pretrained(model: nn.Module, path: str | Path) -> LoadReport:
    """Load backbone weights from a timm/torchvision state dict into ``model`` (a ``timm_*`` model, or any whose
    keys match); the classifier head stays freshly initialised for the task's classes, an RGB first layer is
    adapted to the model's input channels. Every backbone parameter must be in the file."""
    state = read_state_dict(path)
    prefix = getattr(model, "backbone_prefix", "")
    heads = head_names(model)
    first_conv = (getattr(model, "pretrained_cfg", None) or {}).get("first_conv")
    own = model.state_dict()
    report = LoadReport(str(path))
    take = {}
    for key, value in state.items():
        target = prefix + key
        if target not in own or in_head(target, heads):  # the file's own classifier lands here too
            report.unused.append(key)
            continue
        if value.shape != own[target].shape and first_conv and target == f"{first_conv}.weight" and value.ndim == 4:
            report.notes.append(f"first layer {target}: {value.shape[1]} input channels adapted to "
                                f"{own[target].shape[1]}")
            value = _adapt_first_conv(value, own[target].shape[1])
        if value.shape != own[target].shape:
            report.unused.append(key)
            continue
        take[target] = value
    params = {k for k, _ in model.named_parameters()}
    missing = sorted(k for k in params if k not in take and not in_head(k, heads))
    if missing:
        raise ConfigError(f"{path}: {len(missing)} of the backbone's {len(params)} parameter tensors are not in it "
                          f"with the right shape (e.g. {', '.join(missing[:3])}): is it a state dict of this "
                          f"architecture?")
    return _load(model, take, own, report)


def init_from_checkpoint(model: nn.Module, ckpt: Checkpoint | str | Path, classes: tuple[str, ...] | list[str]) -> LoadReport:
    """Load a ferkit checkpoint's weights into ``model`` (its architecture) for a run on ``classes``: tensors whose
    shape differs start fresh; when the classes differ, the output layer keeps the rows of the classes both have
    (matched by emotion: Happy = happiness) and the other rows start fresh."""
    ckpt = ckpt if isinstance(ckpt, Checkpoint) else load_checkpoint(ckpt)
    state = {k: v.float() if v.is_floating_point() else v for k, v in ckpt.state_dict.items()}
    own = model.state_dict()
    report = LoadReport(f"{ckpt.model} checkpoint ({len(ckpt.classes)} classes)")
    take = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    out = output_layer(model)
    if list(classes) != list(ckpt.classes):
        rows = torch.from_numpy(label_map(tuple(c.capitalize() for c in classes),
                                          tuple(c.capitalize() for c in ckpt.classes)))
        kept = [c for c, r in zip(classes, rows) if r >= 0]
        for name in (f"{out}.weight", f"{out}.bias"):
            take.pop(name, None)
            if name in state and name in own and state[name].shape[1:] == own[name].shape[1:]:
                fresh = own[name].clone()
                fresh[rows >= 0] = state[name][rows[rows >= 0]]
                take[name] = fresh
        report.notes.append(f"classes differ: the output layer {out} keeps the rows of {len(kept)} of "
                            f"{len(classes)} classes ({', '.join(kept) or 'none'}); the other rows start fresh")
    report.unused = sorted(k for k in state if k not in take)
    return _load(model, take, own, report)


def _load(model: nn.Module, take: dict[str, torch.Tensor], own: dict[str, torch.Tensor], report: LoadReport) -> LoadReport:
    if not take:
        raise ConfigError(f"{report.source}: no tensor matches the model by name and shape")
    model.load_state_dict({**own, **take})
    report.loaded = sorted(take)
    report.new = sorted(k for k in own if k not in take and not k.endswith("num_batches_tracked"))
    report.parameters = sum(v.numel() for v in take.values())
    return report


def set_backbone_frozen(model: nn.Module, frozen: bool) -> None:
    """Freeze (or unfreeze) every parameter outside the head; frozen, the backbone's normalisation layers are put
    in eval mode too, so their running statistics stay as they are (call after ``model.train()``)."""
    heads = head_names(model)
    for name, p in model.named_parameters():
        if not in_head(name, heads):
            p.requires_grad_(not frozen)
    if frozen:
        for name, m in model.named_modules():
            if isinstance(m, nn.modules.batchnorm._NormBase) and not in_head(name, heads):
                m.eval()


def split_parameters(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(backbone, head) parameters."""
    heads = head_names(model)
    backbone, head = [], []
    for name, p in model.named_parameters():
        (head if in_head(name, heads) else backbone).append(p)
    return backbone, head

"""The models shipped inside the package, by name (light: the CLI reads the names without loading ONNX Runtime)."""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from ..errors import ConfigError

DEFAULT_MODEL = "resnet_sw_fer2013.int8.onnx"
#: Models shipped inside the package, by the name ``--weights`` takes: name -> ONNX file in ``ferkit/weights``.
#: The README's Results give each one's training command and accuracy.
SHIPPED_MODELS: dict[str, str] = {
    "default": DEFAULT_MODEL,
    "small": "resnet_s_fer2013.onnx",
    "ferplus": "resnet_m_ferplus.int8.onnx",
    "flagship": "resnet_m_fer2013.int8.onnx",
}


def _weights_file(name: str) -> Path:
    return Path(str(resources.files("ferkit") / "weights" / name))


def default_model_path() -> Path:
    """The default model shipped inside the package (trained on FER2013; see the README for its command)."""
    return _weights_file(DEFAULT_MODEL)


def shipped_models() -> dict[str, Path]:
    """The models shipped inside the package: name -> ONNX file."""
    return {name: _weights_file(file) for name, file in SHIPPED_MODELS.items()}


def is_shipped_name(model: str | Path) -> bool:
    """Whether ``model`` is a shipped model's name with no file of that name in the current folder."""
    return str(model) in SHIPPED_MODELS and not Path(model).exists()


def resolve_model(model: str | Path | None) -> Path:
    """The ONNX file for ``model``: a shipped model's name (``None`` is ``"default"``) or a path. A file
    in the current folder wins over a shipped name only when it exists."""
    if model is None:
        return default_model_path()
    path = Path(model)
    if isinstance(model, str) and is_shipped_name(model):
        return _weights_file(SHIPPED_MODELS[model])
    if not path.is_file():
        names = ", ".join(SHIPPED_MODELS)
        raise FileNotFoundError(f"{path}: no such ONNX model (shipped models: {names}; or an ONNX file from `ferkit export`)")
    return path


ModelSpec = str | Path | Sequence[str | Path] | None


def model_list(model: ModelSpec) -> list[str | Path | None]:
    """The models ``model`` names: one (a shipped name, an ONNX file, or ``None`` for the default), or several for an
    ensemble, as a sequence or one comma-separated string (``"flagship,default"``; an existing file whose name has a
    comma stays one model)."""
    if isinstance(model, (list, tuple)):
        if not model:
            raise ConfigError("an ensemble needs at least one model")
        return list(model)
    if isinstance(model, str) and "," in model and not Path(model).exists():
        names = [m.strip() for m in model.split(",")]
        if not all(names):
            raise ConfigError(f"{model!r}: an empty name in the comma-separated models")
        return names
    return [model]

"""``ferkit import-keras``: a Keras HDF5 model into the matching ferkit network, written as a ferkit checkpoint
and an ONNX file, and checked against Keras' own probabilities.

The network is found by comparing the Keras layers (kind, weight shapes, strides, padding, output shapes,
activations) with each registered network in module order, or named with ``model=``. TensorFlow is never
imported here: Keras' probabilities come from another Python that has it (``keras_python``, run on
:mod:`keras_reference`) or from an ``.npz`` of faces and the probabilities Keras gave them (``expect``).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..core.checkpoint import Checkpoint
from ..core.runtime import ModelError, cpu_session
from ..data.labels import FER2013_CLASSES
from ..errors import ConfigError, FerkitError
from ..models.registry import create_model, list_models, model_entry
from .keras_h5 import KerasGraph, Unit, keras_units, read_keras
from .onnx import INPUT, export_onnx

CHECK_FACES = 64
TOLERANCE = 1e-4  # largest probability difference accepted as "the same model"


@dataclass(frozen=True)
class Preprocessing:
    """How the seed fed its network: ``(pixels / 255 - mean) / std``, and its class order."""

    classes: tuple[str, ...]
    mean: float
    std: float
    source: str


# The preprocessing and class order of the Keras code each registered seed network comes from.
SEEDS: dict[str, Preprocessing] = {
    "seed000_cnn": Preprocessing(FER2013_CLASSES, 0.0, 1 / 255, "seed 000: raw 0..255 pixels (its StandardScaler output "
                                                                "is overwritten before use), FER2013 label order"),
    "seed001_cnn": Preprocessing(FER2013_CLASSES, 0.0, 1.0, "seed 001 prints no preprocessing code: x / 255 assumed, "
                                                            "FER2013 label order"),
    "seed002_vgg": Preprocessing(FER2013_CLASSES, 0.0, 1.0, "seed 002: x_train / 255.0, FER2013 label order"),
    "seed003_cnn": Preprocessing(("Angry", "Disgust", "Fear", "Happy", "Neutral", "Sad", "Surprise"), 0.0, 1.0,
                                 "seed 003: ImageDataGenerator(rescale=1./255), classes in folder (alphabetical) order"),
    "mini_xception": Preprocessing(FER2013_CLASSES, 0.5, 0.5, "fer: (x / 255.0 - 0.5) * 2.0, FER2013 label order"),
}
ASSUMED = Preprocessing(FER2013_CLASSES, 0.0, 1.0, "assumed: x / 255, FER2013 label order (--mean/--std/--classes)")


@dataclass
class ImportResult:
    model: str
    checkpoint: Path
    onnx: Path
    keras_params: int  # weights and BatchNorm moving statistics, as Keras' summary counts them
    preprocessing: Preprocessing
    reference: str | None  # where Keras' probabilities came from; None: not compared
    faces: int
    max_diff: float | None  # largest |p_keras - p_ferkit|, PyTorch
    max_diff_onnx: float | None  # ... and the ONNX file on ONNX Runtime

    @property
    def ok(self) -> bool:
        return self.max_diff is None or max(self.max_diff, self.max_diff_onnx or 0.0) <= TOLERANCE


_ACTS = {nn.ReLU: "relu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid", nn.ELU: "elu", nn.SELU: "selu",
         nn.Softplus: "softplus", nn.SiLU: "swish", nn.GELU: "gelu", nn.Softmax: "softmax"}


@dataclass
class TorchSide:
    units: list[tuple[str, nn.Module, tuple | None]]  # weighted modules in registration order: kind, module, output
    activations: list[str]
    nchw_flatten: bool  # its Flatten orders features (C, H, W) as nn.Flatten does, not Keras' (H, W, C)


def _flatten_order(flatten: nn.Module | None, shape: tuple[int, ...] | None) -> bool:
    """Whether ``flatten`` (a module taking (N, C, H, W) to (N, F)) orders features as nn.Flatten does."""
    if flatten is None or shape is None:
        return True
    probe = torch.arange(float(np.prod(shape))).reshape(1, *shape)
    with torch.no_grad():
        return bool(torch.equal(flatten(probe), probe.flatten(1)))


def _torch_side(model: nn.Module, shape: tuple[int, int, int]) -> TorchSide:
    """The weighted modules of ``model``, its activation modules and its Flatten's order, from one forward pass."""
    units, acts, hooks, seen = [], [], [], {}
    flatten: list[tuple[nn.Module, tuple]] = []

    def record(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        seen.setdefault(id(module), tuple(output.shape[1:]))
        if not flatten and args and getattr(args[0], "dim", lambda: 0)() == 4 and output.dim() == 2:
            flatten.append((module, tuple(args[0].shape[1:])))

    for m in model.modules():
        if isinstance(m, nn.LeakyReLU):
            acts.append(f"leaky_relu({m.negative_slope:g})")
        elif type(m) in _ACTS:
            acts.append(_ACTS[type(m)])
        if list(m.parameters(recurse=False)):
            if isinstance(m, nn.Conv2d):
                kind = "conv" if m.groups == 1 else ("dwconv" if m.groups == m.in_channels else "grouped conv")
            else:
                kind = {nn.Linear: "dense", nn.BatchNorm2d: "bn", nn.BatchNorm1d: "bn"}.get(type(m), type(m).__name__)
            units.append((kind, m))
        elif next(m.children(), None) is not None:
            continue
        hooks.append(m.register_forward_hook(record))
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, shape[2], shape[0], shape[1]))
    finally:
        for h in hooks:
            h.remove()
    nchw = _flatten_order(*(flatten[0] if flatten else (None, None)))
    return TorchSide([(k, m, seen.get(id(m))) for k, m in units], acts, nchw)


def _difference(unit: Unit, kind: str, m: nn.Module, out: tuple | None) -> str | None:
    """Why Keras' ``unit`` and the module ``m`` differ, or None."""
    if unit.kind != kind:
        return f"Keras layer {unit.layer} is a {unit.kind}, the network has a {kind} there"
    what = f"Keras layer {unit.layer} ({unit.kind})"
    if kind == "bn":
        if m.num_features != unit.params[0].shape[0]:
            return f"{what} has {unit.params[0].shape[0]} features, the network {m.num_features}"
    else:
        if tuple(m.weight.shape) != unit.params[0].shape:
            return f"{what} has weights {unit.params[0].shape}, the network {tuple(m.weight.shape)}"
        if (m.bias is not None) != (len(unit.params) > 1):
            return f"{what} {'has' if len(unit.params) > 1 else 'has no'} bias, unlike the network"
        if kind != "dense" and (tuple(m.stride), tuple(m.padding)) != (unit.stride, unit.padding):
            return (f"{what} has stride {unit.stride} and padding {unit.padding}, the network "
                    f"{tuple(m.stride)} and {tuple(m.padding)}")
    if out != unit.out_shape:
        return f"{what} outputs {unit.out_shape} (C, H, W), the network {out}"
    return None


def _match(graph: KerasGraph, name: str) -> tuple[nn.Module | None, int, str | None]:
    """(network with fresh weights, units matched before the first difference, the difference or None)."""
    model = create_model(name, num_classes=graph.num_classes, in_chans=graph.input_shape[2])
    side = _torch_side(model, graph.input_shape)
    theirs, acts = side.units, side.activations
    for i, (unit, (kind, m, out)) in enumerate(zip(graph.units, theirs)):
        why = _difference(unit, kind, m, out)
        if why:
            return model, i, why
    if len(theirs) != len(graph.units):
        return model, min(len(theirs), len(graph.units)), (f"Keras has {len(graph.units)} weighted layers, "
                                                            f"the network {len(theirs)}")
    if acts != graph.activations:
        return model, len(theirs), f"activations differ: Keras {graph.activations}, the network {acts}"
    return model, len(theirs), None


def find_network(graph: KerasGraph, path: Path, name: str | None = None) -> tuple[str, nn.Module]:
    """The registered network that ``graph`` is (``name``, or the first that matches), with fresh weights."""
    h, w, c = graph.input_shape
    if name is not None:
        model_entry(name)  # an unknown name is a ConfigError listing the choices
        try:
            model, _, why = _match(graph, name)
        except RuntimeError:  # its layers do not fit the input at all
            raise ModelError(path, f"is not a {name}: {name} does not run on its {h}x{w}x{c} input") from None
        if why:
            raise ModelError(path, f"is not a {name}: {why}")
        return name, model
    closest = (-1, "", "")
    for candidate in list_models():
        if model_entry(candidate).input_size != h or h != w:
            continue
        try:
            model, matched, why = _match(graph, candidate)
        except (FerkitError, ImportError, RuntimeError):  # a network that cannot be built so (extras, sizes)
            continue
        if why is None:
            return candidate, model
        closest = max(closest, (matched, candidate, why))
    near = f"; closest: {closest[1]} ({closest[2]})" if closest[1] else ""
    raise ModelError(path, f"matches no ferkit network (input {h}x{w}x{c}, {len(graph.units)} weighted layers, "
                           f"{graph.num_params:,} parameters){near}; name one with --model")


def copy_weights(graph: KerasGraph, model: nn.Module) -> None:
    """Copy the Keras weights into ``model`` (matched unit for unit): the features after a Flatten reordered
    unless the network flattens channels-last as Keras does; BatchNorm's epsilon, where the network's differs
    from Keras', folded into the running variance, so that the normalisation is the same."""
    side = _torch_side(model, graph.input_shape)
    with torch.no_grad():
        for unit, (_, m, _) in zip(graph.units, side.units):
            arrays = unit.nchw() if side.nchw_flatten else unit.params
            params = [torch.from_numpy(np.ascontiguousarray(p, dtype=np.float32)) for p in arrays]
            if unit.kind == "bn":  # var + Keras' eps = (var + Keras' eps - the network's eps) + the network's eps
                var = params[3] + (unit.eps - m.eps) if unit.eps != m.eps else params[3]
                for target, value in zip((m.weight, m.bias, m.running_mean, m.running_var), params[:3] + [var]):
                    target.copy_(value)
            else:
                m.weight.copy_(params[0])
                if len(params) > 1:
                    m.bias.copy_(params[1])
    model.eval()


def _check_faces(graph: KerasGraph, expect: str | Path | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Grey faces (N, H, W) for the check, as ferkit's models take them (a colour network: repeated to its channels),
    with Keras' probabilities for them from ``expect``, else random ones and None."""
    h, w, c = graph.input_shape
    if expect is None:
        return np.random.default_rng(0).integers(0, 256, (CHECK_FACES, h, w)).astype(np.uint8), None
    try:
        with np.load(expect) as npz:
            faces, probs = npz["faces"], npz["probs"]
    except (OSError, KeyError, ValueError) as exc:
        raise ConfigError(f"{expect}: not an .npz with 'faces' and 'probs' ({' '.join(str(exc).split())})") from None
    if faces.shape[1:] not in ((h, w), (h, w, c)) or probs.shape != (len(faces), graph.num_classes):
        raise ConfigError(f"{expect}: faces {faces.shape} and probs {probs.shape} do not fit the model's input "
                          f"{h}x{w}x{c} and {graph.num_classes} classes")
    if faces.ndim == 4:
        if (faces != faces[..., :1]).any():
            raise ConfigError(f"{expect}: colour faces; ferkit's networks see grey faces (repeated to {c} channels "
                              "for a colour network): give Keras' probabilities for grey ones")
        faces = faces[..., 0]
    return faces, probs


def keras_probabilities(python: str, path: Path, json_path: Path | None, faces: np.ndarray, pre: Preprocessing
                        ) -> np.ndarray:
    """Keras' probabilities for ``faces``, computed by ``python`` (an interpreter with TensorFlow)."""
    script = Path(__file__).with_name("keras_reference.py")
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "faces.npy", faces)
        out = Path(tmp) / "probs.npy"
        cmd = [python, str(script), str(path), str(json_path or "-"), str(Path(tmp) / "faces.npy"), str(out),
               repr(pre.mean), repr(pre.std)]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True)
        except OSError as exc:
            raise ConfigError(f"--keras-python {python}: cannot run it ({exc.strerror or exc})") from None
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise ConfigError(f"--keras-python {python}: Keras failed on {path} ({last})")
        return np.load(out)


def import_keras(path: str | Path, json_path: str | Path | None = None, model: str | None = None,
                 out: str | Path | None = None, expect: str | Path | None = None, keras_python: str | None = None,
                 classes: list[str] | None = None, mean: float | None = None, std: float | None = None) -> ImportResult:
    """Import a Keras ``.h5`` (full model, or weights with ``json_path``) into the matching registered network;
    write ``out/best.pt``, ``out/best.onnx`` and ``out/import.json``; compare with Keras when its probabilities
    are at hand: ``expect`` (.npz of grey 'faces' 0..255 and Keras' 'probs'), ``keras_python``, or TensorFlow in
    this interpreter. ``classes``, ``mean`` and ``std`` override the seed's class order and preprocessing."""
    path = Path(path)
    keras = read_keras(path, json_path)
    try:
        graph = keras_units(keras)
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(path, f"cannot be converted: {' '.join(str(exc).split())}") from None
    name, net = find_network(graph, path, model)
    name = model_entry(name).name  # an old alias -> the network's name
    copy_weights(graph, net)
    seed = SEEDS.get(name, ASSUMED)
    pre = Preprocessing(tuple(classes or seed.classes), seed.mean if mean is None else mean,
                        seed.std if std is None else std, seed.source)
    if len(pre.classes) != graph.num_classes:
        raise ConfigError(f"{len(pre.classes)} class names for a model of {graph.num_classes} outputs: pass --classes")
    faces, reference_probs = _check_faces(graph, expect)
    out = Path(out) if out else Path("runs") / f"keras-{path.stem}"
    out.mkdir(parents=True, exist_ok=True)
    h, _, c = graph.input_shape
    ckpt = Checkpoint(model=name, classes=list(pre.classes), state_dict=net.state_dict(), mean=pre.mean, std=pre.std,
                      input_size=h, channels=c, config={"source": "keras", "keras_file": str(path),
                                                         "keras_version": keras.keras_version,
                                                         "preprocessing": pre.source})
    ckpt.save(out / "best.pt")
    onnx_path = export_onnx(ckpt, out / "best.onnx")
    reference = str(expect) if expect is not None else None
    if reference_probs is None:
        python = keras_python or (sys.executable if importlib.util.find_spec("tensorflow") else None)
        if python:
            reference_probs = keras_probabilities(python, path, keras.json_path, faces, pre)
            reference = f"Keras in {python}"
    diff = diff_onnx = None
    if reference_probs is not None:
        pixels = faces.astype(np.float32)[:, None]  # (N, 1, H, W): the ONNX file repeats them to the channels itself
        with torch.no_grad():
            x = torch.from_numpy((pixels / 255.0 - pre.mean) / pre.std).expand(-1, c, -1, -1)
            ours = F.softmax(net(x), 1).numpy()
        theirs = cpu_session(onnx_path, threads=1).run(None, {INPUT: pixels})[0]
        diff = float(np.abs(ours - reference_probs).max())
        diff_onnx = float(np.abs(theirs - reference_probs).max())
    result = ImportResult(name, out / "best.pt", onnx_path, graph.num_params, pre, reference, len(faces), diff,
                          diff_onnx)
    (out / "import.json").write_text(json.dumps({**asdict(result), "checkpoint": str(result.checkpoint),
                                                 "onnx": str(onnx_path), "keras_file": str(path)}, indent=2) + "\n")
    return result


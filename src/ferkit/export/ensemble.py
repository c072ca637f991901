"""``ferkit export A.onnx,B.onnx``: exported models merged into one ONNX file that averages their probabilities.

The members' graphs run side by side on the one input (grey faces, 0..255) and a ``Mean`` node averages their
outputs, so a runtime that loads one file (a phone, the browser, another language) gets the ensemble that
``--weights A,B`` runs as separate sessions. Each member keeps its own normalisation, temperature and precision.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..core.runtime import INT8_WEIGHT_BITS, file_sha256
from ..core.shipped import ModelSpec, model_list
from ..data.dataset import FERDataset
from ..errors import ConfigError
from ..version import __version__
from .onnx import INPUT, OUTPUT
from .result import ExportResult

if TYPE_CHECKING:
    from ..core.classifier import EnsembleClassifier


def merge_onnx(ensemble: EnsembleClassifier, out: Path) -> Path:
    """Write ``out``: the ensemble's member files (which it checked share classes and input size) as one graph whose
    output is the mean of theirs, with metadata naming the members."""
    import onnx
    from onnx import compose, helper

    classifiers = ensemble.members
    first = classifiers[0]
    graphs, opsets, ir_version, shared_input = [], {}, 0, None
    for i, c in enumerate(classifiers):
        model = onnx.load(str(c.path))
        ir_version, shared_input = max(ir_version, model.ir_version), shared_input or model.graph.input[0]
        model = compose.add_prefix(model, prefix=f"m{i}/")
        for node in model.graph.node:  # every member reads the one shared input
            node.input[:] = [INPUT if name == f"m{i}/{INPUT}" else name for name in node.input]
        graphs.append(model.graph)
        for op in model.opset_import:
            opsets[op.domain] = max(opsets.get(op.domain, 0), op.version)
    mean = helper.make_node("Mean", [g.output[0].name for g in graphs], [OUTPUT], name="ensemble_mean")
    output = helper.make_tensor_value_info(OUTPUT, onnx.TensorProto.FLOAT, ["batch", len(first.classes)])
    graph = helper.make_graph([n for g in graphs for n in g.node] + [mean], "ferkit_ensemble", [shared_input], [output],
                              initializer=[t for g in graphs for t in g.initializer],
                              value_info=[v for g in graphs for v in g.value_info])
    merged = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()],
                               producer_name="ferkit")
    merged.ir_version = ir_version
    precisions = [c.metadata.get("precision", "fp32") for c in classifiers]
    int8_bits = {c.metadata.get("weight_bits") for c in classifiers if c.metadata.get("precision") == "int8"}
    meta = {"ferkit_version": __version__, "model": "+".join(c.metadata.get("model", c.name) for c in classifiers),
            "classes": json.dumps(list(first.classes)), "input": first.metadata.get("input", ""),
            "output": "class probabilities (N, C), the members' mean",
            "precision": "+".join(dict.fromkeys(precisions)),
            **({"weight_bits": INT8_WEIGHT_BITS if int8_bits == {INT8_WEIGHT_BITS} else "8"} if int8_bits else {}),
            "members": json.dumps([{"file": c.path.name, "sha256": file_sha256(c.path), "model": c.metadata.get("model"),
                                    "precision": c.metadata.get("precision"), "temperature": c.metadata.get("temperature"),
                                    "val_acc": c.metadata.get("val_acc")} for c in classifiers])}
    for key, value in meta.items():
        merged.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(merged)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(merged, str(out))
    return out


def export_ensemble(models: ModelSpec, out: str | Path, data: str | Path | FERDataset | None = None,
                    seed: int = 0) -> ExportResult:
    """Merge exported models (ONNX files or shipped names, :func:`model_list`) into ``out`` (:func:`merge_onnx`),
    then check it against the members run one by one: the largest probability difference on faces of ``data``'s
    Training split (random faces without data), and both accuracies on its validation split (PublicTest)."""
    from ..core.classifier import EmotionClassifier, EnsembleClassifier
    from ..core.predict import is_onnx_member, load_member, resize_faces

    members = [str(m) for m in model_list(models)]
    if len(members) < 2:
        raise ConfigError("an ensemble export needs two or more models")
    if not all(is_onnx_member(m) for m in members):
        raise ConfigError(f"an ensemble is merged from exported models ({', '.join(members)}): export each checkpoint "
                          "first (`ferkit export RUN --int8 --temperature auto`) and pass the .onnx files")
    reference = EnsembleClassifier(members)
    path = merge_onnx(reference, Path(out))
    merged = EmotionClassifier(path)
    dataset = load_member(members[0])[1].dataset(data)
    size = reference.input_size
    if dataset is None:
        check = np.random.default_rng(seed).integers(0, 256, (64, size, size), dtype=np.uint8)
    else:
        train = dataset.split("train")
        check = resize_faces(train.images[np.sort(np.random.default_rng(seed).permutation(len(train))[:256])], size)
    diff = float(np.abs(merged.predict_proba(check) - reference.predict_proba(check)).max())
    if dataset is None:
        return ExportResult(path, diff, None, None)
    val = dataset.split("val")
    faces = resize_faces(val.images, size)
    ref, got = reference.predict_proba(faces), merged.predict_proba(faces)
    return ExportResult(path, diff, float((ref.argmax(1) == val.labels).mean()), float((got.argmax(1) == val.labels).mean()),
                        val_agreement=float((got.argmax(1) == ref.argmax(1)).mean()),
                        val_mean_abs_diff=float(np.abs(got - ref).mean()))

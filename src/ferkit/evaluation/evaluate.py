"""``ferkit evaluate``: score a checkpoint (or an ensemble of them) on one split and write JSON, PNGs
and an HTML report."""

from __future__ import annotations

import base64
import hashlib
import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data.dataset import FERDataset
from ..data.labels import label_map
from ..data.duplicates import deduplicated
from ..core.device import setup_device
from ..core.predict import ensemble_proba, is_onnx_member, load_member
from ..core.shipped import model_list
from ..errors import ConfigError
from . import plots
from .metrics import classification_metrics


@dataclass
class EvaluationResult:
    metrics: dict[str, Any]
    probs: np.ndarray
    labels: np.ndarray
    out_dir: Path
    report: Path


def _member_name(checkpoint: Path) -> str:
    """A checkpoint's run folder name, or the file's stem outside a run folder."""
    run_dir = checkpoint if checkpoint.is_dir() else checkpoint.parent
    return run_dir.name if (run_dir / "config.json").exists() else checkpoint.stem


def _default_out(checkpoints: list[Path], split: str, tta: str, dedup: bool, label_set: str | None = None) -> Path:
    """``eval-[<ONNX file>-]<split>[-<label set>][-<tta>][-dedup]``; the label set is named when it is not the
    model's own, an ONNX file so that it does not share its run folder's reports with the checkpoint."""
    onnx = len(checkpoints) == 1 and is_onnx_member(checkpoints[0])
    name = ("eval-" + (f"{checkpoints[0].name}-" if onnx else "") + split + (f"-{label_set}" if label_set else "")
            + (f"-{tta}" if tta != "none" else "") + ("-dedup" if dedup else ""))
    if len(checkpoints) > 1:
        members = "+".join(_member_name(c) for c in checkpoints)
        if len(members) > 100:  # keep the folder name short; the hash tells the member lists apart
            digest = hashlib.sha1("\n".join(str(c.resolve()) for c in checkpoints).encode()).hexdigest()[:8]
            members = f"{len(checkpoints)}-{digest}"
        return Path("runs") / f"ensemble-{members}" / name
    run_dir = checkpoints[0] if checkpoints[0].is_dir() else checkpoints[0].parent
    base = run_dir if (run_dir / "config.json").exists() else Path("runs") / f"eval-{checkpoints[0].stem}"
    return base / name


def sample_indices(labels: np.ndarray, num_classes: int, per_class: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    picks = [rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in range(num_classes)]
    return np.concatenate(picks).astype(int)


def evaluate(checkpoint: str | Path | Sequence[str | Path], data: str | Path | FERDataset, split: str = "test",
             tta: str = "none", dedup: bool = False, labels: str | None = None, ferplus: str | Path | None = None,
             skip_bad_rows: bool = False, out: str | Path | None = None, device: str = "auto",
             progress: bool = True) -> EvaluationResult:
    """Evaluate ``checkpoint`` on ``split`` of ``data``; several checkpoints (a list, or comma-separated as
    ``--weights`` takes them) are an ensemble (their class probabilities averaged, each model with its own
    normalisation and the same TTA). ``labels`` defaults to the label set the (first) checkpoint was trained
    with. Writes metrics.json, figures and report.html to ``out``."""
    given = [checkpoint] if isinstance(checkpoint, (str, Path)) else list(checkpoint)
    paths = [Path(m) for c in given for m in model_list(c)]
    if not paths:
        raise ConfigError("no checkpoint given")
    dev = setup_device(device)
    members = [load_member(p, dev) for p in paths]
    models, ckpts = [m for m, _ in members], [c for _, c in members]
    ckpt = ckpts[0]
    for p, other in zip(paths[1:], ckpts[1:]):
        if other.classes != ckpt.classes:
            raise ConfigError(f"{p}: classes {other.classes} differ from {paths[0]}'s {ckpt.classes}; "
                             "an ensemble needs models of one label set")
    other_labels = labels if labels and labels != ckpt.labels else None
    dataset = ckpt.dataset(data, labels=labels, ferplus=ferplus, skip_bad_rows=skip_bad_rows, progress=progress)
    classes = ckpt.classes
    s = dataset.split(split)
    if dedup:
        s = s.subset(deduplicated(dataset, split))
    labels, dropped = s.labels, 0
    if list(dataset.classes) != classes:  # e.g. a FER2013 model on FER+ labels: score the emotions both have
        lut = label_map(dataset.classes, classes)
        if (lut < 0).all():
            raise ConfigError(f"checkpoint classes {classes} share no emotion with the data's {list(dataset.classes)}")
        keep = np.flatnonzero(lut[s.labels] >= 0)
        dropped = len(s) - len(keep)
        s = s.subset(keep)
        labels = lut[s.labels]
    probs = ensemble_proba(list(zip(models, ckpts)), s.images, tta=tta, device=dev, progress=progress)
    metrics = classification_metrics(probs, labels, classes)
    if list(dataset.classes) != classes:
        missing = [c for c, i in zip(dataset.classes, label_map(dataset.classes, classes)) if i < 0]
        metrics["label_mapping"] = {"data_classes": list(dataset.classes), "dropped_rows": dropped,
                                    "dropped_classes": missing}
    ensemble = len(paths) > 1
    metrics.update({"split": s.name, "tta": tta, "dedup": dedup, "data": dataset.source, "ensemble": ensemble,
                    "checkpoint": [str(p) for p in paths] if ensemble else str(paths[0]),
                    "model": [c.model for c in ckpts] if ensemble else ckpt.model,
                    "epoch": [c.epoch for c in ckpts] if ensemble else ckpt.epoch})
    out_dir = Path(out) if out else _default_out(paths, s.name, tta, dedup, other_labels)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (out_dir / "classification_report.txt").write_text(metrics["classification_report"])
    np.savez_compressed(out_dir / "predictions.npz", probs=probs, labels=labels, ids=s.ids)
    run = None if ensemble or not paths[0].exists() else paths[0]  # a shipped model's name has no run
    figures = _figures(metrics, probs, s.images, labels, classes, run, out_dir)
    report = write_html_report(metrics, figures, out_dir / "report.html")
    return EvaluationResult(metrics, probs, labels, out_dir, report)


def _figures(metrics: dict[str, Any], probs: np.ndarray, images: np.ndarray, labels: np.ndarray, classes: list[str],
             checkpoint: Path | None, out_dir: Path) -> dict[str, Path]:
    """The report's figures; training curves only for a single checkpoint (its run's metrics.csv)."""
    pred, conf = probs.argmax(1), probs.max(1)
    figs = {"Confusion matrices": plots.plot_confusion(metrics, classes, out_dir / "confusion.png"),
            "Calibration": plots.plot_reliability(metrics, out_dir / "reliability.png")}
    if checkpoint is not None:
        run_dir = checkpoint if checkpoint.is_dir() else checkpoint.parent
        curves = plots.plot_curves(run_dir / "metrics.csv", out_dir / "curves.png")
        if curves is not None:
            figs["Training curves"] = curves
    idx = sample_indices(labels, len(classes), per_class=4)
    figs["Sample predictions"] = plots.plot_face_grid(images[idx], labels[idx], pred[idx], conf[idx], classes,
                                                      out_dir / "samples.png", "Sample predictions (4 per class)")
    wrong = np.flatnonzero(pred != labels)
    worst = wrong[np.argsort(-conf[wrong])][:32]
    if len(worst):
        figs["Worst mistakes"] = plots.plot_face_grid(images[worst], labels[worst], pred[worst], conf[worst], classes,
                                                      out_dir / "mistakes.png", "Most confident mistakes")
    return figs


def write_html_report(metrics: dict[str, Any], figures: dict[str, Path], path: Path) -> Path:
    """One self-contained HTML file: metric tables and every figure embedded as base64 PNG."""
    per_class = "".join(
        f"<tr><td>{html.escape(c)}</td><td>{v['precision']:.4f}</td><td>{v['recall']:.4f}</td>"
        f"<td>{v['f1-score']:.4f}</td><td>{int(v['support'])}</td></tr>" for c, v in metrics["per_class"].items())
    imgs = "".join(
        f"<h2>{html.escape(t)}</h2><img alt='{html.escape(t)}' src='data:image/png;base64,"
        f"{base64.b64encode(p.read_bytes()).decode()}'>" for t, p in figures.items())
    mapping = metrics.get("label_mapping")
    ensemble = metrics["ensemble"]
    models = f"ensemble of {len(metrics['model'])} ({', '.join(metrics['model'])})" if ensemble else metrics["model"]
    head = (f"{models} on {metrics['split']}{' (deduplicated)' if metrics['dedup'] else ''}, "
            f"TTA {metrics['tta']}, {'probabilities averaged' if ensemble else 'no ensemble'}"
            + (f", the data's labels mapped onto the model's classes ({mapping['dropped_rows']} rows of "
               f"{', '.join(mapping['dropped_classes']) or 'no class'} left out)" if mapping else ""))
    paths = metrics["checkpoint"] if ensemble else [metrics["checkpoint"]]
    epochs = metrics["epoch"] if ensemble else [metrics["epoch"]]
    checkpoints = "checkpoint" + ("s" if ensemble else "") + ": " + "; ".join(
        f"<code>{html.escape(p)}</code> (epoch {e})" for p, e in zip(paths, epochs))
    doc = f"""<!doctype html><html><head><meta charset="utf-8"><title>ferkit evaluation: {html.escape(head)}</title>
<style>body{{font-family:sans-serif;max-width:1200px;margin:2em auto;color:#222}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}}td:first-child{{text-align:left}}img{{max-width:100%}}</style>
</head><body><h1>ferkit evaluation</h1><p>{html.escape(head)}<br>{checkpoints}, data: <code>{html.escape(metrics['data'])}</code></p>
<table><tr><th>images</th><th>accuracy</th><th>macro-F1</th><th>ECE</th></tr>
<tr><td>{metrics['num_images']}</td><td>{metrics['accuracy']:.4f}</td><td>{metrics['macro_f1']:.4f}</td><td>{metrics['ece']:.4f}</td></tr></table>
<h2>Per class</h2><table><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr>{per_class}</table>
{imgs}</body></html>"""
    path.write_text(doc)
    return path

"""The ``ferkit models`` listing (name, parameters, forward MACs, description) and ``--summary``'s per-layer table."""

from __future__ import annotations

import json

from .registry import count_macs, count_parameters, create_model, list_models, model_aliases, model_entry


def model_rows() -> list[dict]:
    rows = []
    for name in list_models():
        entry = model_entry(name)
        model = create_model(name, in_chans=entry.channels)  # as trained by default: its own channels and size
        rows.append({"name": name, "params": count_parameters(model),
                     "macs": count_macs(model, entry.input_size, entry.channels),
                     "input": f"{entry.channels}x{entry.input_size}x{entry.input_size}", "description": entry.description})
    return rows


def models_table(as_json: bool = False) -> str:
    rows = model_rows()
    if as_json:
        return json.dumps(rows, indent=2)
    lines = [f"{'model':<16}{'params':>10}{'MACs':>10}  {'input':<9} description"]
    for r in rows:
        lines.append(f"{r['name']:<16}{r['params'] / 1e6:>9.2f}M{r['macs'] / 1e6:>9.1f}M  {r['input']:<9} {r['description']}")
    aliases = model_aliases()
    if aliases:
        lines.append("old names still accepted: " + ", ".join(f"{a} = {n}" for a, n in sorted(aliases.items())))
    return "\n".join(lines)


def layer_rows(name: str, input_size: int | None = None, in_chans: int | None = None) -> list[dict]:
    """One row per leaf module of ``name`` in forward order: its name, type, output shape (N, C, H, W) for one
    image of ``input_size`` and ``in_chans`` (default: the model's own), and its own parameters (trainable and not)."""
    import torch

    size, in_chans = input_size or model_entry(name).input_size, in_chans or model_entry(name).channels
    model = create_model(name, in_chans=in_chans).eval()
    rows: list[dict] = []

    def record(layer_name: str):
        def hook(module, _inputs, output):
            own = list(module.parameters(recurse=False))
            rows.append({"layer": layer_name, "type": type(module).__name__, "output": [1, *output.shape[1:]],
                         "params": sum(p.numel() for p in own if p.requires_grad),
                         "non_trainable": sum(p.numel() for p in own if not p.requires_grad)
                         + sum(b.numel() for k, b in module.named_buffers(recurse=False) if k.startswith("running_"))})
        return hook

    handles = [m.register_forward_hook(record(n)) for n, m in model.named_modules() if n and not list(m.children())]
    try:
        with torch.no_grad():
            model(torch.zeros(1, in_chans, size, size))
    finally:
        for h in handles:
            h.remove()
    return rows


def summary_table(name: str, input_size: int | None = None, in_chans: int | None = None) -> str:
    """A per-layer table like Keras' ``model.summary()``. Totals count BatchNorm's running mean and variance as
    non-trainable parameters, as Keras does, so they compare with the seeds' printed summaries."""
    rows = layer_rows(name, input_size, in_chans)
    size, in_chans = input_size or model_entry(name).input_size, in_chans or model_entry(name).channels
    width = max(len(f"{r['layer']} ({r['type']})") for r in rows) + 2
    lines = [f"Model: {model_entry(name).name} (input {in_chans}x{size}x{size}; output shapes are N, C, H, W)",
             f"{'Layer (type)':<{width}}{'Output shape':<22}{'Param #':>12}"]
    for r in rows:
        lines.append(f"{r['layer'] + ' (' + r['type'] + ')':<{width}}{str(tuple(r['output'])):<22}"
                     f"{r['params'] + r['non_trainable']:>12,}")
    trainable = sum(r["params"] for r in rows)
    frozen = sum(r["non_trainable"] for r in rows)
    lines += [f"Total params: {trainable + frozen:,}", f"Trainable params: {trainable:,}",
              f"Non-trainable params: {frozen:,} (BatchNorm running statistics and frozen weights)"]
    return "\n".join(lines)

"""The ``ferkit models`` listing: name, parameters, forward MACs and description."""

from __future__ import annotations

import json

from .registry import count_macs, count_parameters, create_model, list_models, model_entry


def model_rows() -> list[dict]:
    rows = []
    for name in list_models():
        entry = model_entry(name)
        model = create_model(name)
        rows.append({"name": name, "params": count_parameters(model), "macs": count_macs(model, entry.input_size),
                     "input": f"1x{entry.input_size}x{entry.input_size}", "description": entry.description})
    return rows


def models_table(as_json: bool = False) -> str:
    rows = model_rows()
    if as_json:
        return json.dumps(rows, indent=2)
    lines = [f"{'model':<16}{'params':>10}{'MACs':>10}  {'input':<9} description"]
    for r in rows:
        lines.append(f"{r['name']:<16}{r['params'] / 1e6:>9.2f}M{r['macs'] / 1e6:>9.1f}M  {r['input']:<9} {r['description']}")
    return "\n".join(lines)

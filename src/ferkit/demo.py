"""``ferkit demo``: the whole train -> evaluate loop in about a minute, on built-in cartoon faces.

No download and no data set needed; it shows what ``ferkit train`` and ``ferkit evaluate`` write.
"""

from __future__ import annotations

from pathlib import Path

from .data.synthetic import synthetic_dataset
from .evaluation import evaluate
from .training import train


def demo(project: Path = Path("runs")) -> Path:
    """Train ``resnet_s`` for a few epochs on synthetic faces, evaluate it; return the report path."""
    data = synthetic_dataset(per_class=(100, 25, 25), seed=0)
    print("ferkit demo: 7 classes of synthetic cartoon faces (FER2013 is not needed for the demo)")
    result = train(model="resnet_s", data="synthetic", dataset=data, project=str(project), name="demo", epochs=6,
                   batch_size=32, optimizer="adamw", lr=3e-3, schedule="onecycle")
    res = evaluate(result.run_dir / "best.pt", data=data, split="test", progress=False)
    m = res.metrics
    print(f"test accuracy {m['accuracy']:.3f} (chance 0.143), macro-F1 {m['macro_f1']:.3f}\n"
          f"run folder: {result.run_dir}\nHTML report: {res.report}")
    return res.report

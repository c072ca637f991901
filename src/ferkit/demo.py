"""``ferkit demo``: recognise the emotion on a bundled public-domain photo with the shipped model,
offline. ``ferkit demo --train`` instead runs the train -> evaluate loop on built-in cartoon faces."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from .data.synthetic import synthetic_dataset


def demo_photo() -> Path:
    """The bundled photo: NASA astronaut Eileen Collins (public domain, from scikit-image's data)."""
    return Path(str(resources.files("ferkit") / "assets" / "astronaut.jpg"))


def demo(project: Path = Path("runs")) -> Path:
    """Predict on the bundled photo; return the annotated image's path."""
    from .apps.predict import predict_files

    res = predict_files([demo_photo()], out=project / "demo", progress=False, overwrite=True)
    faces = json.loads((res.out_dir / "predictions.jsonl").read_text().splitlines()[0])["faces"]
    print(f"ferkit demo: {len(faces)} face(s) in the bundled photo (NASA astronaut Eileen Collins, public domain)")
    for i, f in enumerate(faces):
        x, y, w, h = f["box"]
        print(f"  face {i} at x={x} y={y} w={w} h={h}: {f['emotion']} ({f['score']:.0%})")
    image = res.out_dir / "astronaut.jpg"
    print(f"annotated photo: {image}\nrows: {res.out_dir / 'predictions.csv'}, {res.out_dir / 'predictions.jsonl'}")
    return image


def demo_train(project: Path = Path("runs")) -> Path:
    """Train ``resnet_s`` for a few epochs on synthetic faces, evaluate it; return the report path."""
    from .evaluation import evaluate
    from .training import train
    from .training.trainer import next_run_dir

    data = synthetic_dataset(per_class=(100, 25, 25), seed=0)
    print("ferkit demo --train: 7 classes of synthetic cartoon faces (FER2013 is not needed for the demo)")
    result = train(model="resnet_s", data="synthetic", dataset=data, project=str(project),
                   name=next_run_dir(project, None, "demo-train").name, epochs=6,
                   batch_size=32, optimizer="adamw", lr=3e-3, schedule="onecycle")
    res = evaluate(result.run_dir / "best.pt", data=data, split="test", progress=False)
    m = res.metrics
    print(f"test accuracy {m['accuracy']:.3f} (chance 0.143), macro-F1 {m['macro_f1']:.3f}\n"
          f"run folder: {result.run_dir}\nHTML report: {res.report}")
    return res.report

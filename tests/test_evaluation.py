"""Evaluation: metrics against hand-computed values, TTA views, and the files of a report."""

import json

import numpy as np
import pytest
import torch

from ferkit.data.synthetic import synthetic_dataset
from ferkit.evaluation import evaluate
from ferkit.evaluation.metrics import classification_metrics, expected_calibration_error
from ferkit.evaluation.predict import tta_views
from ferkit.training import train


def test_metrics_on_a_known_confusion():
    labels = np.array([0, 0, 1, 1, 2, 2])
    probs = np.eye(3)[[0, 1, 1, 1, 2, 0]] * 0.7 + 0.1
    m = classification_metrics(probs, labels, ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert m["confusion_matrix_normalized"][1] == [0.0, 1.0, 0.0]
    assert m["per_class"]["b"]["precision"] == pytest.approx(2 / 3)
    assert m["per_class"]["a"]["recall"] == pytest.approx(0.5)
    f1 = [2 * 0.5 * 0.5 / 1.0, 2 * (2 / 3) / (2 / 3 + 1), 2 * 1 * 0.5 / 1.5]
    assert m["macro_f1"] == pytest.approx(np.mean(f1))


def test_ece_is_zero_when_calibrated_and_large_when_overconfident():
    labels = np.array([0, 1] * 50)
    calibrated = np.tile([[0.5, 0.5]], (100, 1))
    assert expected_calibration_error(calibrated, labels)[0] == pytest.approx(0.0)
    wrong_and_sure = np.tile([[0.99, 0.01]], (100, 1))
    assert expected_calibration_error(wrong_and_sure, labels)[0] == pytest.approx(0.49)


def test_tta_views():
    x = torch.arange(2 * 48 * 48, dtype=torch.float32).view(2, 1, 48, 48)
    assert len(tta_views(x, "none")) == 1
    flip = tta_views(x, "flip")
    assert torch.equal(flip[1], x.flip(-1))
    ten = tta_views(x, "tencrop")
    assert len(ten) == 10 and all(v.shape == x.shape for v in ten)
    with pytest.raises(ValueError):
        tta_views(x, "twentycrop")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    data = synthetic_dataset(per_class=(24, 8, 8), seed=3)
    run = train(dataset=data, project=str(tmp_path_factory.mktemp("runs")), progress=False, model="resnet_s",
                data="synthetic", epochs=2, batch_size=32, optimizer="adamw", lr=3e-3, threads=2)
    return data, run


@pytest.mark.parametrize("tta", ["none", "flip", "tencrop"])
def test_evaluate_writes_the_report(trained, tta):
    data, run = trained
    res = evaluate(run.run_dir / "best.pt", data=data, split="test", tta=tta, progress=False)
    assert res.out_dir == run.run_dir / ("eval-test" + ("" if tta == "none" else f"-{tta}"))
    for name in ("metrics.json", "classification_report.txt", "confusion.png", "reliability.png", "curves.png",
                 "samples.png", "predictions.npz", "report.html"):
        assert (res.out_dir / name).stat().st_size > 0, name
    m = json.loads((res.out_dir / "metrics.json").read_text())
    assert m["tta"] == tta and m["split"] == "test" and m["num_images"] == 56
    assert m["accuracy"] == pytest.approx(float((res.probs.argmax(1) == res.labels).mean()))
    assert np.allclose(res.probs.sum(1), 1, atol=1e-5)
    html = res.report.read_text()
    assert "data:image/png;base64," in html and "src='http" not in html  # self-contained
    assert f"{m['accuracy']:.4f}" in html


def test_evaluate_refuses_mismatched_labels(trained, tmp_path):
    from ferkit.data.labels import FERPLUS_CLASSES

    data, run = trained
    other = data.__class__(FERPLUS_CLASSES, data.splits, data.roles, "x")
    with pytest.raises(ValueError, match="classes"):
        evaluate(run.run_dir / "best.pt", data=other, progress=False, out=tmp_path)


def test_evaluate_on_real_privatetest_dedup(trained, fer2013, tmp_path):
    """The dedup option drops the PrivateTest rows whose image is also in Training or PublicTest."""
    _, run = trained
    res = evaluate(run.run_dir / "best.pt", data=fer2013, split="PrivateTest", dedup=True, progress=False, out=tmp_path)
    assert res.metrics["num_images"] == 3589 - 314 and res.metrics["dedup"] is True

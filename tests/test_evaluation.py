"""Evaluation: metrics against hand-computed values, TTA views, and the files of a report."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from repo_scripts import load_script

from ferkit.data.labels import FER2013_CLASSES, FERPLUS_CLASSES, label_map
from ferkit.data.synthetic import synthetic_dataset
from ferkit.evaluation import evaluate
from ferkit.evaluation.metrics import (apply_temperature, classification_metrics, expected_calibration_error,
                                      fit_temperature)
from ferkit.evaluation.predict import predict_proba, tta_views
from ferkit.training import model_from_checkpoint, train


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


@pytest.mark.parametrize("true_t", [0.5, 1.0, 2.5])
def test_fit_temperature_recovers_the_temperature_the_labels_were_drawn_at(true_t):
    """Labels drawn from softmax(logits / T): the fitted temperature is T, and applying it lowers the ECE."""
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2.0, (20000, 7))
    truth = apply_temperature(F.softmax(torch.from_numpy(logits), 1).numpy(), true_t)
    labels = (rng.random((len(truth), 1)) > truth.cumsum(1)).sum(1)
    probs = F.softmax(torch.from_numpy(logits), 1).numpy()  # the model's, at temperature 1
    t = fit_temperature(probs, labels)
    assert t == pytest.approx(true_t, rel=0.05)
    fixed = apply_temperature(probs, t)
    assert (fixed.argmax(1) == probs.argmax(1)).all() and np.allclose(fixed.sum(1), 1)
    if true_t != 1.0:
        assert expected_calibration_error(fixed, labels)[0] < 0.5 * expected_calibration_error(probs, labels)[0]


def test_tta_views():
    x = torch.arange(2 * 48 * 48, dtype=torch.float32).view(2, 1, 48, 48)
    assert len(tta_views(x, "none")) == 1 and torch.equal(tta_views(x, "none")[0], x)
    flip = tta_views(x, "flip")
    assert len(flip) == 2 and torch.equal(flip[0], x) and torch.equal(flip[1], x.flip(-1))
    ten = tta_views(x, "tencrop")
    assert len(ten) == 10 and all(v.shape == x.shape for v in ten)
    assert all(torch.equal(ten[i + 1], ten[i].flip(-1)) for i in range(0, 10, 2))  # each crop, then its mirror
    assert not any(torch.equal(a, b) for i, a in enumerate(ten) for b in ten[i + 1:])  # five places, ten views
    centre = F.interpolate(x[..., 2:46, 2:46], size=(48, 48), mode="bilinear", align_corners=False)
    assert torch.equal(ten[8], centre)
    with pytest.raises(ValueError, match="tta must be one of"):
        tta_views(x, "twentycrop")


def test_ten_crops_follow_the_input_size():
    """Ten-crop views are 11/12 of the side whatever the input size: 44 of 48, 88 of 96."""
    for size, crop in ((48, 44), (96, 88)):
        x = torch.rand(1, 1, size, size)
        corner = F.interpolate(x[..., :crop, :crop], size=(size, size), mode="bilinear", align_corners=False)
        assert torch.equal(tta_views(x, "tencrop")[0], corner)
        assert all(torch.equal(a, b) for a, b in zip(tta_views(x, "tencrop"), tta_views(x, "tencrop", crop)))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    data = synthetic_dataset(per_class=(24, 8, 8), seed=3)
    run = train(dataset=data, project=str(tmp_path_factory.mktemp("runs")), progress=False, model="resnet_s",
                data="synthetic", epochs=2, batch_size=32, optimizer="adamw", lr=3e-3)
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
    model, ckpt = model_from_checkpoint(run.run_dir / "best.pt")
    want = predict_proba(model, data.split("test").images, ckpt["mean"], ckpt["std"], tta=tta)
    assert np.allclose(res.probs, want, atol=1e-5)  # the views of ``tta``, averaged
    html = res.report.read_text()
    assert "data:image/png;base64," in html and "src='http" not in html  # self-contained
    assert f"{m['accuracy']:.4f}" in html


def test_evaluate_refuses_labels_with_no_emotion_in_common(trained, tmp_path):
    data, run = trained
    other = replace(data, classes=tuple("abcdefg"))
    with pytest.raises(ValueError, match="share no emotion"):
        evaluate(run.run_dir / "best.pt", data=other, progress=False, out=tmp_path)


def test_label_map_between_fer2013_and_ferplus():
    assert label_map(FERPLUS_CLASSES, FER2013_CLASSES).tolist() == [6, 3, 5, 4, 0, 1, 2, -1]  # Contempt: none
    assert label_map(FER2013_CLASSES, FERPLUS_CLASSES).tolist() == [4, 5, 6, 1, 3, 2, 0]


def test_evaluate_maps_ferplus_labels_onto_a_fer2013_model(trained, tmp_path):
    """Data labelled in FER+ order (with some Contempt rows) scored by a FER2013-class model: labels are
    carried over by emotion, Contempt rows left out and counted."""
    data, run = trained
    test_key = data.roles["test"]
    s = data.splits[test_key]
    ferplus_labels = s.labels.copy()
    ferplus_labels[:5] = 7  # Contempt
    other = replace(data, classes=FERPLUS_CLASSES, splits={**data.splits, test_key: replace(s, labels=ferplus_labels)})
    res = evaluate(run.run_dir / "best.pt", data=other, split="test", progress=False, out=tmp_path)
    assert res.labels.tolist() == label_map(FERPLUS_CLASSES, FER2013_CLASSES)[ferplus_labels[5:]].tolist()
    assert res.metrics["num_images"] == len(s) - 5
    assert res.metrics["label_mapping"] == {"data_classes": list(FERPLUS_CLASSES), "dropped_rows": 5,
                                            "dropped_classes": ["Contempt"]}
    assert "5 rows of Contempt left out" in res.report.read_text()


def test_reports_on_another_label_set_get_their_own_folder(trained):
    """`--labels ferplus` and the model's own labels no longer write into one report folder."""
    data, run = trained
    test_key = data.roles["test"]
    other = replace(data, classes=FERPLUS_CLASSES)
    own = evaluate(run.run_dir / "best.pt", data=data, split="test", progress=False)
    ferplus = evaluate(run.run_dir / "best.pt", data=other, split="test", labels="ferplus", progress=False)
    same = evaluate(run.run_dir / "best.pt", data=data, split="test", labels="fer2013", progress=False)
    assert own.out_dir == same.out_dir == run.run_dir / f"eval-{test_key}"
    assert ferplus.out_dir == run.run_dir / f"eval-{test_key}-ferplus"
    assert (own.out_dir / "metrics.json").exists() and (ferplus.out_dir / "metrics.json").exists()


def test_shipped_model_on_ferplus_privatetest(fer2013_path, tmp_path):
    """FER+ majority labels (Microsoft's re-labelling of FER2013) for the shipped default FER2013 model."""
    if not (fer2013_path.parent / "fer2013new.csv").exists():
        pytest.skip("fer2013new.csv (FER+ votes) is absent")
    from ferkit.data import load_dataset

    ferplus = load_dataset(fer2013_path, labels="ferplus", progress=False)
    res = evaluate("default", data=ferplus, split="PrivateTest", progress=False, out=tmp_path)
    mapping = res.metrics["label_mapping"]
    assert mapping["dropped_classes"] == ["Contempt"] and mapping["dropped_rows"] > 0
    assert res.metrics["num_images"] + mapping["dropped_rows"] == len(ferplus.split("PrivateTest"))
    assert res.metrics["accuracy"] > 0.65  # 71.85% when measured; a wrong mapping scores far lower


def test_evaluate_on_real_privatetest_dedup(trained, fer2013, tmp_path):
    """The dedup option drops the PrivateTest rows whose image is also in Training or PublicTest."""
    _, run = trained
    res = evaluate(run.run_dir / "best.pt", data=fer2013, split="PrivateTest", dedup=True, progress=False, out=tmp_path)
    assert res.metrics["num_images"] == 3589 - 314 and res.metrics["dedup"] is True


def test_ensemble_averages_the_members_probabilities(trained, tmp_path):
    data, run = trained
    other = train(dataset=data, project=str(tmp_path / "runs"), progress=False, model="webcam_cnn", data="synthetic",
                  epochs=1, batch_size=32, optimizer="adamw", lr=3e-3, seed=7)
    members = [evaluate(r.run_dir / "best.pt", data=data, split="test", tta="flip", progress=False,
                        out=tmp_path / f"m{i}") for i, r in enumerate((run, other))]
    assert not np.allclose(members[0].probs, members[1].probs, atol=1e-3)
    res = evaluate([run.run_dir / "best.pt", other.run_dir], data=data, split="test", tta="flip", progress=False,
                   out=tmp_path / "ens")
    assert np.allclose(res.probs, (members[0].probs + members[1].probs) / 2, atol=1e-6)
    m = json.loads((res.out_dir / "metrics.json").read_text())
    assert m["ensemble"] is True and m["model"] == ["resnet_s", "webcam_cnn"] and len(m["checkpoint"]) == 2
    assert m["accuracy"] == pytest.approx(float((res.probs.argmax(1) == res.labels).mean()))
    assert "ensemble of 2 (resnet_s, webcam_cnn)" in res.report.read_text()
    assert not (res.out_dir / "curves.png").exists()  # no single run's curves for an ensemble
    commas = evaluate(f"{run.run_dir / 'best.pt'},{other.run_dir}", data=data, split="test", tta="flip",
                      progress=False, out=tmp_path / "commas")  # as --weights takes them
    assert np.array_equal(commas.probs, res.probs)


def test_ensemble_needs_one_label_set(trained, tmp_path):
    data, run = trained
    ferplus = replace(data, classes=FERPLUS_CLASSES[:7])
    other = train(dataset=ferplus, project=str(tmp_path), progress=False, model="resnet_s", data="synthetic",
                  epochs=1, batch_size=32)
    with pytest.raises(ValueError, match="an ensemble needs models of one label set"):
        evaluate([run.run_dir, other.run_dir], data=data, progress=False, out=tmp_path / "ens")


def test_default_ensemble_folder_names_its_members(tmp_path):
    """Two ensembles of equal size get different default folders (named after their members)."""
    from ferkit.evaluation.evaluate import _default_out

    run_a, run_b = tmp_path / "runs" / "a", tmp_path / "runs" / "b"
    for d in (run_a, run_b):
        d.mkdir(parents=True)
        (d / "config.json").write_text("{}")
    loose = tmp_path / "shipped.pt"
    out_ab = _default_out([run_a / "best.pt", run_b / "best.pt"], "PrivateTest", "flip", False)
    out_a_loose = _default_out([run_a / "best.pt", loose], "PrivateTest", "flip", False)
    assert out_ab == Path("runs") / "ensemble-a+b" / "eval-PrivateTest-flip"
    assert out_a_loose == Path("runs") / "ensemble-a+shipped" / "eval-PrivateTest-flip"
    many = [tmp_path / f"{'x' * 30}{i}.pt" for i in range(5)]
    long_out = _default_out(many, "test", "none", False)
    assert long_out.parent.name.startswith("ensemble-5-") and len(long_out.parent.name) == len("ensemble-5-") + 8
    assert long_out != _default_out(many[:4] + [tmp_path / "other.pt"], "test", "none", False)


@pytest.mark.parametrize("tta", ["none", "tencrop"])
def test_an_exported_model_scores_as_its_checkpoint(checkpoint, onnx_fp32, toy, tmp_path, tta):
    """`ferkit evaluate model.onnx`: ONNX Runtime's probabilities, with the same TTA views, match PyTorch's."""
    pt = evaluate(checkpoint, data=toy, split="test", tta=tta, progress=False, out=tmp_path / "pt")
    onnx = evaluate(onnx_fp32.path, data=toy, split="test", tta=tta, progress=False, out=tmp_path / "onnx")
    assert np.allclose(onnx.probs, pt.probs, atol=1e-4)
    assert onnx.metrics["model"] == "resnet_s" and onnx.metrics["epoch"] is None
    assert np.array_equal(onnx.labels, pt.labels)


def test_exported_and_shipped_models_get_their_own_report_folders(tmp_path):
    from ferkit.evaluation.evaluate import _default_out

    run = tmp_path / "runs" / "a"
    run.mkdir(parents=True)
    (run / "config.json").write_text("{}")
    assert _default_out([run / "best.pt"], "PrivateTest", "none", False) == run / "eval-PrivateTest"
    assert _default_out([run / "best.int8.onnx"], "PrivateTest", "flip", False) == run / "eval-best.int8.onnx-PrivateTest-flip"
    assert _default_out([Path("default")], "PrivateTest", "none", False) == Path("runs/eval-default/eval-default-PrivateTest")


def test_a_shipped_model_is_evaluated_by_name(toy, tmp_path):
    res = evaluate("default", data=toy, split="test", progress=False, out=tmp_path)
    assert res.metrics["model"] == "resnet_sw" and res.probs.shape == (len(toy.split("test")), 7)
    assert not (tmp_path / "curves.png").exists()


def test_greedy_ensemble_selection_keeps_the_best_step():
    """benchmarks/ensemble_greedy.py: the best single model first, then the member that fixes the most faces; the
    ensemble kept ends at the best step, so that steps that lower the accuracy are dropped, and members that only
    help together are found past a step that did not raise it."""
    greedy = load_script("benchmarks/ensemble_greedy.py")
    labels = np.array([0, 0, 0, 1, 1, 1])

    def probs(correct):  # confident (0.8) and right where ``correct`` says, 0.8 on the wrong class elsewhere
        p = np.full((6, 2), 0.2)
        p[np.arange(6), np.where(correct, labels, 1 - labels)] = 0.8
        return p

    a = probs([1, 1, 1, 1, 0, 0])  # 4/6
    b = probs([0, 0, 1, 1, 1, 1])  # 4/6, right where a is wrong
    weak = probs([0, 0, 0, 0, 0, 1])  # 1/6
    a[[0, 1]] = [[0.95, 0.05]] * 2  # each is surer where it is right: their average gets all six faces
    b[[4, 5]] = [[0.05, 0.95]] * 2
    steps = greedy.greedy_steps([weak, a, b], labels, max_size=5)
    assert len(steps) == 5
    kept = steps[:greedy.best_size(steps)]
    assert sorted(i for i, _, _ in kept) == [1, 2] and kept[-1][1] == 1.0
    steps = greedy.greedy_steps([a, weak], labels, max_size=3)
    assert [i for i, _, _ in steps[:greedy.best_size(steps)]] == [0]

    # Three models, each right on 4 of 6 faces and surer where wrong (0.9) than where right (0.8): any two
    # together get only the faces both get right, but the three outvote each one's errors. The second step cannot
    # raise the accuracy (a selection that stopped there keeps one model); the best step holds all three.
    labels = np.array([0, 0, 1, 1, 0, 1])

    def wrong_on(faces):
        p = np.where(np.arange(2) == labels[:, None], 0.8, 0.2)
        p[faces] = 1 - np.where(np.arange(2) == labels[faces, None], 0.9, 0.1)
        return p

    trio = [wrong_on([4, 5]), wrong_on([0, 1]), wrong_on([2, 3])]
    steps = greedy.greedy_steps(trio, labels, max_size=6)
    kept = steps[:greedy.best_size(steps)]
    assert steps[1][1] <= steps[0][1] and set(i for i, _, _ in kept) == {0, 1, 2} and kept[-1][1] == 1.0


def test_a_ferplus_models_probabilities_onto_fer2013_classes():
    """A FER+ model's eight probabilities become FER2013's seven (data.labels.probabilities_on, used by the ensemble
    benchmarks): reordered by name (Anger -> Angry ...), Contempt dropped, rows summing to one; data classes the
    model lacks are refused."""
    from ferkit.data.labels import FER2013_CLASSES, FERPLUS_CLASSES, probabilities_on

    p = np.array([[0.1, 0.2, 0.05, 0.05, 0.3, 0.05, 0.05, 0.2]])  # Neutral, Happiness, ..., Fear, Contempt
    out = probabilities_on(p, FERPLUS_CLASSES, FER2013_CLASSES)
    assert out.shape == (1, 7) and np.isclose(out.sum(), 1.0)
    by_name = dict(zip(FER2013_CLASSES, out[0] * 0.8))  # Contempt's 0.2 spread back over the seven
    assert np.allclose([by_name["Angry"], by_name["Happy"], by_name["Neutral"]], [0.3, 0.2, 0.1])
    with pytest.raises(ValueError, match="lack"):
        probabilities_on(out, FER2013_CLASSES[:6], FER2013_CLASSES)

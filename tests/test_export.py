"""ONNX (fp32, int8) and TFLite export and their parity with PyTorch; the ONNX classifier's checks."""

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest
from repo_scripts import load_script

from ferkit.core.checkpoint import Checkpoint
from ferkit.core.predict import to_input
from ferkit.core.runtime import INT8_WEIGHT_BITS
from ferkit.evaluation.predict import predict_proba
from ferkit.export import export
from ferkit.inference import EmotionClassifier
from ferkit.training import model_from_checkpoint


def test_fp32_export_matches_pytorch(onnx_fp32, checkpoint, toy):
    assert onnx_fp32.max_abs_diff < 1e-4
    assert onnx_fp32.val_acc_export == pytest.approx(onnx_fp32.val_acc_torch, abs=1e-9)
    clf = EmotionClassifier(onnx_fp32.path)
    assert clf.classes[0] == "Angry" and len(clf.classes) == 7 and clf.metadata["precision"] == "fp32"
    model, ckpt = model_from_checkpoint(checkpoint)
    faces = toy.split("test").images
    ref = predict_proba(model, faces, ckpt["mean"], ckpt["std"])
    got = clf.predict_proba(faces, batch_size=5)  # several batches, a ragged last one
    assert got.shape == ref.shape and np.abs(got - ref).max() < 1e-4
    assert np.allclose(got.sum(1), 1, atol=1e-5)


def test_int8_export_is_smaller_and_close(checkpoint, toy, onnx_fp32, tmp_path):
    res = export(checkpoint, int8=True, data=toy, out=tmp_path / "m.int8.onnx", calibration_images=64)
    meta = EmotionClassifier(res.path).metadata
    assert res.path.exists() and meta["precision"] == "int8" and meta["weight_bits"] == INT8_WEIGHT_BITS
    assert meta["calibration"] == "minmax" and res.val_agreement > 0.8 and 0 < res.val_mean_abs_diff < 0.1
    assert _weight_peak(res.path) == 64  # 7-bit weights, the range used: exact in every CPU's fused int8 kernels
    assert res.path.stat().st_size < 0.4 * onnx_fp32.path.stat().st_size  # int8 weights
    assert 0 < res.max_abs_diff < 0.5 and abs(res.val_acc_export - res.val_acc_torch) < 0.2
    probs = EmotionClassifier(res.path).predict_proba(toy.split("val").images[:32])  # softmax left in float:
    assert np.allclose(probs.sum(1), 1, atol=1e-5) and len(np.unique(probs)) > 32 * 7 // 2  # not 1/255 steps


def test_percentile_calibration_narrows_the_activation_ranges_and_stays_close(checkpoint, toy, tmp_path):
    # 129 faces: three batches of 43 (the histogram calibrators stack them, and failed on 65 + 64)
    files = {m: export(checkpoint, int8=True, data=toy, out=tmp_path / f"{m}.int8.onnx", calibration_images=129,
                       calibration_method=m) for m in ("minmax", "percentile")}
    res = files["percentile"]
    assert EmotionClassifier(res.path).metadata["calibration"] == "percentile"
    assert 0 < res.max_abs_diff < 0.5 and res.val_agreement > 0.8 and 0 < res.val_mean_abs_diff < 0.1
    minmax, percentile = (_activation_scales(files[m].path) for m in ("minmax", "percentile"))
    assert minmax.keys() == percentile.keys()
    assert all(percentile[k] <= minmax[k] * 1.001 for k in minmax)  # within the extremes seen,
    assert sum(percentile[k] < 0.95 * minmax[k] for k in minmax) >= 3  # and some well inside (long tails cut)


def _activation_scales(path) -> dict[str, float]:
    """The quantisation step of each activation (a QuantizeLinear with one scale) of an int8 ONNX model."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    init = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    return {n.input[0]: float(init[n.input[1]]) for n in graph.node
            if n.op_type == "QuantizeLinear" and n.input[1] in init and init[n.input[1]].ndim == 0}


def test_calibration_batches_are_of_one_size_and_hold_every_face():
    from ferkit.export.onnx import _calibration_batches

    faces = np.arange(130 * 4).astype(np.uint8).reshape(130, 2, 2)
    batches = _calibration_batches(faces, size=64)
    assert len(batches) == 3 and {b.shape for b in batches} == {(44, 1, 2, 2)}
    got = np.concatenate(batches)[:, 0]
    assert np.array_equal(got[:130], faces) and np.array_equal(got[130:], faces[:2])
    assert [b.shape for b in _calibration_batches(faces[:5])] == [(5, 1, 2, 2)]


def test_an_unknown_calibration_method_is_a_clear_error(checkpoint, toy, tmp_path):
    with pytest.raises(ValueError, match="calibration method must be one of minmax, percentile"):
        export(checkpoint, int8=True, data=toy, out=tmp_path / "x.onnx", calibration_method="entropy")
    r = subprocess.run([sys.executable, "-m", "ferkit", "export", str(checkpoint), "--int8", "--calibration", "entropy"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "--calibration" in r.stderr and "Traceback" not in r.stderr


def _weight_peak(path) -> int:
    """The largest |weight| of an int8 ONNX model, in quantisation steps."""
    import onnx
    from onnx import numpy_helper

    weights = [numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer
               if i.data_type == onnx.TensorProto.INT8]
    return max(int(np.abs(w.astype(np.int32)).max()) for w in weights)


def _tool(name: str):
    """The script tools/NAME.py, imported as a module."""
    return load_script(f"tools/{name}.py")


def _runs_unfused(clf: EmotionClassifier) -> bool:
    try:
        return clf.session.get_session_options().get_session_config_entry("session.disable_quant_qdq") == "1"
    except RuntimeError:  # no such entry
        return False


@pytest.mark.parametrize("name", ["default", "flagship", "ferplus"])
def test_shipped_int8_models_give_probabilities_that_sum_to_one(name):
    from ferkit.core.shipped import resolve_model

    faces = np.random.default_rng(0).integers(0, 256, (16, 48, 48), dtype=np.uint8)
    clf = EmotionClassifier(resolve_model(name))
    assert clf.metadata["precision"] == "int8" and np.allclose(clf.predict_proba(faces).sum(1), 1, atol=1e-5)
    assert (clf.classes[-1] == "Contempt") if name == "ferplus" else (len(clf.classes) == 7)
    assert clf.metadata["weight_bits"] == INT8_WEIGHT_BITS and _weight_peak(clf.path) == 64 and not _runs_unfused(clf)


def test_8bit_int8_models_run_unfused_where_the_kernels_saturate_until_requantised_to_7_bits(
        onnx_fp32, toy, tmp_path, monkeypatch):
    """An int8 model exported before 7-bit weights (tools/int8_weights_7bit.py rewrites one)."""
    import shutil

    from ferkit.core import runtime
    from ferkit.export.onnx import _quantize_int8, _set_metadata

    eight, seven = tmp_path / "8bit.onnx", tmp_path / "7bit.onnx"
    _quantize_int8(onnx_fp32.path, eight, toy.split("train").images[:64], seven_bit_weights=False)
    _set_metadata(eight, {**EmotionClassifier(onnx_fp32.path).metadata, "precision": "int8"})
    assert _weight_peak(eight) == 127

    monkeypatch.setattr(runtime, "int8_kernels_saturate", lambda: True)
    old = EmotionClassifier(eight)
    assert _runs_unfused(old) and "weight_bits" not in old.metadata

    shutil.copy(eight, seven)
    tool = _tool("int8_weights_7bit")
    tool.main(str(seven))
    new = EmotionClassifier(seven)
    assert _weight_peak(seven) == 64 and new.metadata["weight_bits"] == INT8_WEIGHT_BITS and not _runs_unfused(new)
    faces = toy.split("test").images
    p_old, p_new = old.predict_proba(faces), new.predict_proba(faces)
    assert np.abs(p_old - p_new).max() < 0.1 and (p_old.argmax(1) == p_new.argmax(1)).mean() > 0.9

    monkeypatch.setattr(runtime, "int8_kernels_saturate", lambda: False)
    assert not _runs_unfused(EmotionClassifier(eight))  # CPUs with VNNI (or without AVX2) fuse every model


def test_a_temperature_divides_the_logits_inside_the_exported_file(checkpoint, toy, onnx_fp32, tmp_path):
    from ferkit.evaluation.metrics import apply_temperature

    faces = toy.split("test").images
    plain = EmotionClassifier(onnx_fp32.path).predict_proba(faces)
    res = export(checkpoint, data=toy, out=tmp_path / "t.onnx", temperature=2.0)
    clf = EmotionClassifier(res.path)
    assert res.temperature == 2.0 and float(clf.metadata["temperature"]) == 2.0 and res.max_abs_diff < 1e-4
    got = clf.predict_proba(faces)
    assert np.abs(got - apply_temperature(plain, 2.0)).max() < 1e-4 and (got.argmax(1) == plain.argmax(1)).all()
    assert got.max(1).mean() < plain.max(1).mean()  # softer
    assert float(EmotionClassifier(onnx_fp32.path).metadata["temperature"]) == 1.0


def test_auto_temperature_is_fitted_on_the_validation_split_and_kept_by_int8(checkpoint, toy, tmp_path):
    from ferkit.core.checkpoint import load_checkpoint
    from ferkit.core.predict import resize_faces
    from ferkit.evaluation.metrics import fit_temperature

    ckpt = load_checkpoint(checkpoint)
    val = toy.split("val")
    probs = predict_proba(ckpt.build_model(), resize_faces(val.images, 48), ckpt.mean, ckpt.std)
    res = export(checkpoint, int8=True, data=toy, out=tmp_path / "a.int8.onnx", calibration_images=64,
                 temperature="auto")
    assert res.temperature == pytest.approx(fit_temperature(probs, val.labels)) and res.temperature != 1.0
    assert res.val_ece_torch is not None and res.val_ece_export is not None
    clf = EmotionClassifier(res.path)
    assert clf.metadata["precision"] == "int8" and float(clf.metadata["temperature"]) == pytest.approx(res.temperature)
    assert np.allclose(clf.predict_proba(val.images).sum(1), 1, atol=1e-5)


@pytest.mark.parametrize("value", ["0", "-1", "warm", "inf"])
def test_a_bad_temperature_is_a_clear_error(checkpoint, value, tmp_path):
    r = subprocess.run([sys.executable, "-m", "ferkit", "export", str(checkpoint), "--temperature", value, "--out",
                        str(tmp_path / "m.onnx")], capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"error: argument --temperature: expected a number > 0 or auto, not '{value}'" in r.stderr


def test_auto_temperature_without_data_is_a_clear_error(checkpoint, tmp_path):
    with pytest.raises(ValueError, match="validation split"):
        export(checkpoint, out=tmp_path / "x.onnx", temperature="auto")
    for bad in (0.0, -2.0, float("nan"), float("inf"), "warm"):
        with pytest.raises(ValueError, match="temperature must be"):
            export(checkpoint, out=tmp_path / "x.onnx", temperature=bad)


def test_int8_without_data_is_a_clear_error(checkpoint, tmp_path):
    with pytest.raises(ValueError, match="Training images"):
        export(checkpoint, int8=True, out=tmp_path / "x.onnx")


def test_tflite_export_matches_pytorch(checkpoint, toy, tmp_path):
    """Runs where the optional extra is installed (pip install 'ferkit[tflite]')."""
    pytest.importorskip("litert_torch")
    res = export(checkpoint, format="tflite", data=toy, out=tmp_path / "m.tflite")
    assert res.max_abs_diff < 1e-4 and res.val_acc_export == pytest.approx(res.val_acc_torch, abs=1e-9)
    assert json.loads((tmp_path / "m.tflite.json").read_text())["classes"][3] == "Happy"


def test_tflite_without_the_extra_is_a_clear_error(checkpoint, tmp_path):
    if importlib.util.find_spec("litert_torch") is not None:
        pytest.skip("litert-torch is installed here")
    r = subprocess.run([sys.executable, "-m", "ferkit", "export", str(checkpoint), "--format", "tflite", "--out",
                        str(tmp_path / "m.tflite")], capture_output=True, text=True)
    assert r.returncode == 2 and "pip install 'ferkit[tflite]'" in r.stderr and "Traceback" not in r.stderr


def test_classifier_rejects_foreign_models_and_bad_shapes(onnx_fp32, tmp_path):
    import onnx

    m = onnx.load(str(onnx_fp32.path))
    del m.metadata_props[:]
    onnx.save(m, str(tmp_path / "foreign.onnx"))
    with pytest.raises(ValueError, match="not a ferkit ONNX model"):
        EmotionClassifier(tmp_path / "foreign.onnx")
    with pytest.raises(FileNotFoundError):
        EmotionClassifier(tmp_path / "missing.onnx")
    clf = EmotionClassifier(onnx_fp32.path)
    with pytest.raises(ValueError, match="48, 48"):
        clf.predict_proba(np.zeros((2, 64, 64), np.uint8))
    assert clf.predict_proba(np.zeros((0, 48, 48), np.uint8)).shape == (0, 7)


def test_a_checkpoint_recovered_from_an_exported_file_computes_what_the_file_does(checkpoint, toy, onnx_fp32, tmp_path):
    """tools/checkpoint_from_onnx.py: the weights of an fp32 or int8 export back in a trainable checkpoint."""
    tool = _tool("checkpoint_from_onnx")
    int8 = export(checkpoint, int8=True, data=toy, out=tmp_path / "m.int8.onnx", calibration_images=64).path
    faces, train = toy.split("test").images, toy.split("train").images
    for path, tolerance in ((onnx_fp32.path, 1e-4), (int8, 0.1)):
        ckpt = tool.recover(path, train)
        ckpt.save(tmp_path / "recovered.pt")
        model, loaded = model_from_checkpoint(tmp_path / "recovered.pt")
        got = predict_proba(model, faces, loaded["mean"], loaded["std"])
        want = EmotionClassifier(path).predict_proba(faces)
        assert np.abs(got - want).max() < tolerance and (got.argmax(1) == want.argmax(1)).mean() > 0.9
        assert loaded.model == "resnet_s" and loaded.config["epochs"] == 2


def test_a_checkpoint_is_recovered_at_the_files_input_size_from_data_of_any_kind(checkpoint, toy, tmp_path,
                                                                                 monkeypatch):
    """tools/checkpoint_from_onnx.py on a model exported for 64x64 faces: the checkpoint's input size is the file's,
    its BatchNorms measured on Training faces read (and resized) at it; the training split is found by its role, so
    data with train/val/test splits (image folders) serves as FER2013's Training does."""
    from ferkit.core.predict import resize_faces
    from ferkit.export.onnx import export_onnx

    tool = _tool("checkpoint_from_onnx")
    path = export_onnx(Checkpoint(**{**Checkpoint.load(checkpoint).__dict__, "input_size": 64}), tmp_path / "m64.onnx")
    read = []
    monkeypatch.setattr(tool, "load_dataset", lambda data, **kw: read.append(kw) or toy)  # splits train, val, test
    monkeypatch.setattr(sys, "argv", ["checkpoint_from_onnx.py", str(path), str(tmp_path / "r.pt"), "--data", "x/"])
    tool.main()
    assert read[0]["size"] == read[0]["cropper"].size == 64
    recovered = Checkpoint.load(tmp_path / "r.pt")
    faces = resize_faces(toy.split("test").images, 64)
    got = predict_proba(recovered.build_model(), faces, recovered.mean, recovered.std)
    assert recovered.input_size == 64 and np.abs(got - EmotionClassifier(path).predict_proba(faces)).max() < 1e-4


def test_a_soup_averages_the_weights_and_measures_each_batchnorm_on_the_faces(checkpoint, toy):
    """tools/soup_checkpoints.py: floating tensors averaged, BatchNorm statistics those of the faces, the soup
    scored on the validation split as training scores an epoch."""
    import torch

    tool = _tool("soup_checkpoints")
    a = Checkpoint.load(checkpoint)
    b = Checkpoint(**{**a.__dict__, "state_dict": {k: v + 0.01 if v.is_floating_point() else v
                                                   for k, v in a.state_dict.items()}})
    soup = tool.average([a, b])
    name = next(k for k, v in a.state_dict.items() if v.ndim == 4)  # the first convolution's weight
    assert torch.allclose(soup.state_dict[name], a.state_dict[name] + 0.005, atol=1e-6)
    faces = toy.split("train").images
    measured = tool.measure_batchnorms(soup, faces, batch=len(faces))
    net = soup.build_model()
    conv = next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d))
    seen = []
    conv.register_forward_hook(lambda module, inputs, out: seen.append(out))
    with torch.no_grad():
        net(to_input(faces, soup.mean, soup.std))
    bn = next(k for k in a.state_dict if k.endswith("running_mean")).removesuffix("running_mean")  # the conv's
    assert torch.allclose(measured.state_dict[bn + "running_mean"], seen[0].mean((0, 2, 3)), atol=1e-5)
    assert torch.allclose(measured.state_dict[bn + "running_var"], seen[0].var((0, 2, 3)), rtol=1e-4)
    val = toy.split("val")
    assert tool.validation_accuracy(a, val) == pytest.approx(a.val_acc, abs=0.5 / len(val))  # as training scored it
    other = Checkpoint(**{**a.__dict__, "classes": a.classes[::-1]})
    with pytest.raises(SystemExit, match="cannot be averaged: classes"):
        tool.average([a, other])


def test_a_soup_of_incompatible_members_names_what_differs(checkpoint):
    """tools/soup_checkpoints.py: members that differ only in normalisation (a run restarted with --init keeps its
    checkpoint's) are refused with the setting and both values, not with their equal network and classes."""
    tool = _tool("soup_checkpoints")
    a = Checkpoint.load(checkpoint)
    other = Checkpoint(**{**a.__dict__, "mean": a.mean + 0.01})
    with pytest.raises(SystemExit) as refused:
        tool.check_compatible([a, other], ["runs/a", "runs/b"])
    message = str(refused.value)
    assert message.startswith("runs/a and runs/b cannot be averaged: mean ")
    assert f"{a.mean:.6g} against {a.mean + 0.01:.6g}" in message and "classes" not in message.split("(")[0]
    tool.check_compatible([a, Checkpoint(**a.__dict__)])  # the same settings: no complaint


def test_a_weighted_soup_weighs_its_members_and_a_greedy_soup_keeps_only_members_that_help(checkpoint, toy,
                                                                                          monkeypatch):
    """tools/soup_checkpoints.py --weights and --greedy: weights normalised; the greedy soup starts from the best
    member alone, keeps a member that makes the soup better on the validation split, drops one that makes it worse."""
    import torch

    tool = _tool("soup_checkpoints")
    a = Checkpoint.load(checkpoint)
    b = Checkpoint(**{**a.__dict__, "state_dict": {k: v + 0.01 if v.is_floating_point() else v
                                                   for k, v in a.state_dict.items()}})
    name = next(k for k, v in a.state_dict.items() if v.ndim == 4)
    weighted = tool.average([a, b], [3, 1])
    assert torch.allclose(weighted.state_dict[name], a.state_dict[name] + 0.0025, atol=1e-6)
    for bad in ([1], [1, -1], [0, 0]):
        with pytest.raises(SystemExit, match="weight per member"):
            tool.average([a, b], bad)
    # scored by how near the first convolution comes to a target between a and b: the soup of a and b (+0.005) is
    # nearer than either, a third member far off (+1) would spoil it
    far = Checkpoint(**{**a.__dict__, "state_dict": {k: v + 1 if v.is_floating_point() else v
                                                     for k, v in a.state_dict.items()}})
    target = a.state_dict[name].mean().item() + 0.004
    monkeypatch.setattr(tool, "validation_accuracy",
                        lambda ckpt, split: -abs(ckpt.state_dict[name].mean().item() - target))
    lines = []
    chosen, result = tool.greedy_soup([far, b, a], toy.split("train").images, toy.split("val"), log=lines.append)
    assert chosen == [2, 1]
    assert torch.allclose(result.state_dict[name], a.state_dict[name] + 0.005, atol=1e-6)
    assert result.val_acc == pytest.approx(-0.001, abs=1e-5)
    assert [line.split()[0] for line in lines] == ["start:", "keep", "drop"] and "member 3 alone" in lines[0]
    assert far.val_acc == a.val_acc  # the members themselves are not changed


def test_exported_models_merge_into_one_file_that_averages_them(onnx_fp32, checkpoint, toy, tmp_path):
    """`ferkit export A.onnx,B.onnx --out pair.onnx`: one graph computing the members' mean, TTA included, with
    metadata naming the members; an int8 member keeps its precision (and the saturation check sees it)."""
    from ferkit.core import runtime
    from ferkit.inference import load_classifier

    int8 = export(checkpoint, int8=True, data=toy, out=tmp_path / "m.int8.onnx", calibration_images=64,
                  temperature=0.8).path
    members = f"{onnx_fp32.path},{int8}"
    res = export(members, data=toy, out=tmp_path / "pair.onnx")
    merged, reference = EmotionClassifier(res.path), load_classifier(members)
    faces = toy.split("test").images
    for tta in ("none", "flip", "tencrop"):
        assert np.abs(merged.predict_proba(faces, tta=tta) - reference.predict_proba(faces, tta=tta)).max() < 1e-5
    assert res.max_abs_diff < 1e-5 and res.val_acc_export == res.val_acc_torch and res.val_agreement == 1.0
    meta = merged.metadata
    assert meta["model"] == "resnet_s+resnet_s" and meta["precision"] == "fp32+int8"
    assert meta["weight_bits"] == INT8_WEIGHT_BITS and json.loads(meta["classes"]) == list(reference.classes)
    listed = json.loads(meta["members"])
    assert [m["file"] for m in listed] == ["best.onnx", "m.int8.onnx"] and listed[1]["temperature"] == "0.8"
    assert runtime._needs_unfused_int8(merged.session) is False  # 7-bit weights: fused kernels are exact


def test_the_cli_merges_models_and_says_so(onnx_fp32, tmp_path, capsys):
    from ferkit.cli import run

    assert run(["export", f"{onnx_fp32.path},{onnx_fp32.path}", "--out", str(tmp_path / "pair.onnx")]) == 0
    out = capsys.readouterr().out
    assert f"wrote {tmp_path / 'pair.onnx'}" in out and "max |members - merged file| probability difference 0.00e+00" in out


def test_an_ensemble_export_refuses_what_it_cannot_merge(onnx_fp32, checkpoint, tmp_path):
    from ferkit.errors import ConfigError, FerkitError

    pair = f"{onnx_fp32.path},{onnx_fp32.path}"
    with pytest.raises(ConfigError, match="needs --out"):
        export(pair)
    with pytest.raises(ConfigError, match="apply to one checkpoint"):
        export(pair, int8=True, out=tmp_path / "x.onnx")
    with pytest.raises(ConfigError, match="export each checkpoint first"):
        export(f"{checkpoint},{onnx_fp32.path}", out=tmp_path / "x.onnx")
    with pytest.raises(FerkitError, match="cannot be averaged"):  # other classes
        export(f"{onnx_fp32.path},ferplus", out=tmp_path / "x.onnx")

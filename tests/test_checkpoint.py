"""The typed checkpoint: its on-disk dict (compatible both ways with files written before it), resume
state, the shipped model, and the data set it rebuilds for evaluation and export."""

import inspect
import os
import stat

import numpy as np
import pytest
import torch

from ferkit.core import checkpoint as checkpoint_module
from ferkit.core.checkpoint import RESUME_KEYS, Checkpoint, CheckpointError, load_checkpoint, save_half
from ferkit.core.detect import FaceCropper
from ferkit.core.predict import predict_proba
from ferkit.data.dataset import SPLIT_SETTINGS, load_dataset
from ferkit.data.synthetic import synthetic_dataset
from ferkit.training import Trainer, TrainConfig, train

FAST = dict(model="resnet_s", data="synthetic", epochs=2, batch_size=32)
# The keys the trainer wrote before the Checkpoint type (code as of 2026-12-03 14:15), per file.
OLD_BEST = {"format", "model", "classes", "input_size", "mean", "std", "config", "state_dict", "epoch", "stage",
            "val_acc"}
ABSENT = {"ema_state_dict", "partial", "cuda_rng"}  # from this run's last.pt: no ema, not mid-epoch, not on CUDA
OLD_LAST = OLD_BEST - {"val_acc"} | set(RESUME_KEYS) - ABSENT


@pytest.fixture(scope="module")
def toy():
    return synthetic_dataset(per_class=(16, 6, 6), seed=1)


@pytest.fixture(scope="module")
def run(tmp_path_factory, toy):
    return train(dataset=toy, project=str(tmp_path_factory.mktemp("runs")), progress=False, **FAST).run_dir


def test_files_are_plain_dicts_with_every_key_older_code_reads(run):
    for name, old_keys in (("best.pt", OLD_BEST), ("last.pt", OLD_LAST)):
        d = torch.load(run / name, weights_only=True)
        assert type(d) is dict and old_keys <= set(d), old_keys - set(d)
        assert set(d) - old_keys == {"channels"} and d["channels"] == 1 and d["input_size"] == 48


def test_round_trip_keeps_every_field(run, tmp_path):
    ckpt = load_checkpoint(run / "last.pt")
    assert isinstance(ckpt, Checkpoint) and ckpt.model == "resnet_s" and ckpt.epoch == 2 and ckpt.stage == "done"
    assert set(ckpt.resume) == set(RESUME_KEYS) - ABSENT and ckpt.config["model"] == "resnet_s"
    ckpt.save(tmp_path / "copy.pt")
    again = Checkpoint.load(tmp_path / "copy.pt")
    assert again.to_dict().keys() == ckpt.to_dict().keys()
    assert again.resume["history"] == ckpt.resume["history"] and again.mean == ckpt.mean
    assert all(torch.equal(again.state_dict[k], v) for k, v in ckpt.state_dict.items())
    assert ckpt["mean"] == ckpt.mean and ckpt.get("val_acc") is None and "optimizer" in ckpt  # dict access


def test_inference_only_drops_the_resume_state(run):
    ckpt = load_checkpoint(run / "last.pt")
    slim = ckpt.inference_only()
    assert slim.resume == {} and ckpt.resume and not set(RESUME_KEYS) & set(slim.to_dict())


def test_a_checkpoint_written_before_the_type_loads_and_resumes(run, toy, tmp_path):
    """last.pt/best.pt exactly as the earlier trainer wrote them (no ``channels``) load, build their
    model (scoring its recorded accuracy) and resume with the saved weights, optimizer and history."""
    old = tmp_path / "old"
    old.mkdir()
    for name in ("config.json", "metrics.csv"):
        (old / name).write_bytes((run / name).read_bytes())
    for name in ("best.pt", "last.pt"):
        d = torch.load(run / name, weights_only=True)
        d.pop("channels")
        torch.save(d, old / name)
    best = load_checkpoint(old / "best.pt")
    assert best.channels == 1 and best.input_size == 48 and best.val_acc is not None
    probs = predict_proba(best.build_model(), toy.split("val").images, best.mean, best.std)
    assert float((probs.argmax(1) == toy.split("val").labels).mean()) == pytest.approx(best.val_acc)
    last = load_checkpoint(run / "last.pt")
    trainer = Trainer.resume(old, dataset=toy, progress=False, finetune_hard=1)  # the finished run, extended
    assert (trainer.epoch, trainer.stage, trainer.history) == (2, "main", last.resume["history"])
    momentum = [v["momentum_buffer"] for v in trainer.optimizer.state_dict()["state"].values()]
    saved = [v["momentum_buffer"] for v in last.resume["optimizer"]["state"].values()]
    assert len(momentum) == len(saved) > 0 and all(torch.equal(a, b) for a, b in zip(momentum, saved))
    assert all(torch.equal(v, last.state_dict[k]) for k, v in trainer.model.state_dict().items())


def test_shipped_model_loads():
    from importlib import resources

    ckpt = load_checkpoint(resources.files("ferkit") / "weights" / "resnet_s_fer2013.pt")
    assert (ckpt.model, ckpt.input_size, ckpt.channels, ckpt.epoch) == ("resnet_s", 48, 1, 29)
    assert ckpt.resume == {} and ckpt.labels == "fer2013" and len(ckpt.classes) == 7
    model = ckpt.build_model()
    assert next(model.parameters()).dtype == torch.float32 and not model.training


def test_half_copy_is_a_checkpoint_without_resume_state(run, tmp_path):
    half = load_checkpoint(save_half(run / "last.pt", tmp_path / "half.pt"))
    assert half.stored_as == "float16" and half.resume == {}
    assert {v.dtype for v in half.state_dict.values() if v.is_floating_point()} == {torch.float16}


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_checkpoints_get_the_permissions_of_new_files(tmp_path, umask):
    """Written through a private temporary file (mode 0600), a checkpoint ends with 0666 less the umask, as a file
    that open() creates."""
    before = os.umask(umask)
    try:
        Checkpoint("resnet_s", ["a"], {}).save(tmp_path / "x.pt")
    finally:
        os.umask(before)
    assert stat.S_IMODE((tmp_path / "x.pt").stat().st_mode) == 0o666 & ~umask


def test_bad_files_are_still_checkpoint_errors(tmp_path):
    torch.save({"format": "ferkit-checkpoint-1", "model": "resnet_s", "classes": ["a"]}, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match="no state_dict in it"):
        Checkpoint.load(tmp_path / "x.pt")


def test_dataset_is_rebuilt_as_the_run_split_it(monkeypatch, toy, tmp_path):
    calls = []
    monkeypatch.setattr(checkpoint_module, "load_dataset", lambda data, **kw: calls.append((data, kw)) or toy)
    data = tmp_path / "faces"
    ckpt = Checkpoint("resnet_s", list(toy.classes), {}, config={"data": str(data), "labels": "ferplus",
                                                                 "val_fraction": 0.25, "seed": 3,
                                                                 "split_by": "subject", "model": "resnet_s"})
    assert ckpt.dataset() is None and not calls  # the run's data is gone
    assert ckpt.dataset(toy) is toy and not calls
    data.mkdir()
    assert ckpt.dataset() is toy
    path, kw = calls[-1]
    cropper = kw.pop("cropper")  # photos are cropped as the run cropped them, at its input size
    assert isinstance(cropper, FaceCropper) and cropper.size == kw["size"] == ckpt.input_size == 48
    assert (path, kw) == (str(data), dict(labels="ferplus", ferplus=None, val_fraction=0.25, seed=3, size=48,
                                          split_by="subject", skip_bad_rows=False, progress=False))
    ckpt.dataset("other.csv", labels="fer2013", skip_bad_rows=True)
    assert calls[-1][0] == "other.csv" and calls[-1][1]["labels"] == "fer2013" and calls[-1][1]["skip_bad_rows"]
    bare = Checkpoint("resnet_s", list(toy.classes), {})
    bare.dataset("x.csv")
    kw = calls[-1][1]
    kw.pop("cropper")
    assert kw == dict(labels="fer2013", ferplus=None, skip_bad_rows=False, progress=False, size=48)  # load_dataset's defaults
    defaults = inspect.signature(load_dataset).parameters  # ... which are TrainConfig's
    run_defaults = TrainConfig(model="resnet_s", data="x")
    for name in SPLIT_SETTINGS:
        value = getattr(run_defaults, name)
        assert defaults[name].default == (tuple(value) if isinstance(value, list) else value), name


def test_input_size_comes_from_the_checkpoint(tmp_path):
    """A checkpoint's input size reaches the ONNX export, the classifier (read from the model's input)
    and the recogniser's crops: the shipped weights exported for 40x40 faces."""
    from importlib import resources

    from ferkit.core.classifier import EmotionClassifier
    from ferkit.export.onnx import export_onnx
    from ferkit.inference import Recognizer

    ckpt = load_checkpoint(resources.files("ferkit") / "weights" / "resnet_s_fer2013.pt")
    ckpt.input_size = 40
    clf = EmotionClassifier(export_onnx(ckpt, tmp_path / "m40.onnx"))
    assert clf.input_size == 40 and EmotionClassifier().input_size == 48
    assert "(N, 1, 40, 40)" in clf.metadata["input"]
    faces = np.random.default_rng(0).integers(0, 256, (8, 40, 40), dtype=np.uint8)
    ref = predict_proba(ckpt.build_model(), faces, ckpt.mean, ckpt.std)
    assert np.abs(clf.predict_proba(faces) - ref).max() < 1e-4
    with pytest.raises(ValueError, match=r"\(N, 40, 40\)"):
        clf.predict_proba(np.zeros((1, 48, 48), np.uint8))
    face = Recognizer(model=clf.path, detector="haar").predict(np.full((90, 70), 128, np.uint8), detect=False)[0]
    assert face.box == (0, 0, 70, 90) and sum(face.probs.values()) == pytest.approx(1, abs=1e-5)

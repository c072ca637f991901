"""Transfer learning (issue 17 part 3): --pretrained backbone weights from a local timm state dict, --init from a
ferkit checkpoint, --freeze-epochs, --backbone-lr-scale, and models whose input size and channels differ from
FER2013's 48x48 grey, through training, evaluation, ONNX export and the Recognizer. Tests that need timm skip
without it (``pip install 'ferkit[transfer]'``)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from ferkit.core.checkpoint import CheckpointError, load_checkpoint
from ferkit.core.classifier import EmotionClassifier
from ferkit.core.predict import fit_input, predict_proba, resize_faces
from ferkit.data.synthetic import synthetic_dataset
from ferkit.errors import ConfigError, MissingExtraError
from ferkit.models import create_model, list_models
from ferkit.training import TrainConfig, Trainer, train
from ferkit.training.optim import Schedule, build_optimizer
from ferkit.training.warmstart import head_names, init_from_checkpoint, load_pretrained, read_state_dict

needs_timm = pytest.mark.skipif(importlib.util.find_spec("timm") is None, reason="needs timm: pip install 'ferkit[transfer]'")
SHIPPED = Path(__file__).resolve().parents[1] / "src" / "ferkit" / "weights" / "resnet_s_fer2013.pt"
FAST = dict(data="synthetic", epochs=2, batch_size=16, threads=1, optimizer="adamw", lr=3e-3)


@pytest.fixture(scope="module")
def toy():
    return synthetic_dataset(per_class=(8, 3, 3), seed=3)


@pytest.fixture(scope="module")
def imagenet_file(tmp_path_factory):
    """A small timm model's ImageNet-shaped state dict (1000 classes, RGB), saved as a .pth file: a stand-in for
    real ImageNet weights."""
    from ferkit.models.transfer import import_timm

    timm = import_timm()  # (with PyPI's torchvision beside the CPU PyTorch, a plain `import timm` fails)
    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("pretrained") / "mobilenetv3_small_100.pth"
    torch.save(timm.create_model("mobilenetv3_small_100", num_classes=1000).state_dict(), path)
    return path


# ----- --pretrained ------------------------------------------------------------------------------------------------
@needs_timm
@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
@pytest.mark.parametrize("channels", [1, 3])
def test_pretrained_loads_the_backbone_and_replaces_the_head(imagenet_file, tmp_path, suffix, channels):
    state = torch.load(imagenet_file, weights_only=True)
    path = imagenet_file
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        path = tmp_path / "weights.safetensors"
        save_file(state, str(path))
    torch.manual_seed(0)
    model = create_model("timm_mobilenetv3_small_100", num_classes=5, in_chans=channels)
    fresh_head = model.classifier.weight.detach().clone()
    report = load_pretrained(model, path)
    own = model.state_dict()
    assert head_names(model) == ["classifier"]
    for key, value in own.items():
        if key.startswith("classifier."):
            continue
        expected = state[key].sum(1, keepdim=True) if key == "conv_stem.weight" and channels == 1 else state[key]
        assert torch.equal(value, expected), key
    assert model.classifier.weight.shape == (5, 1024) and torch.equal(model.classifier.weight, fresh_head)
    assert report.new == ["classifier.bias", "classifier.weight"]
    assert sorted(report.unused) == ["classifier.bias", "classifier.weight"]
    assert any("3 input channels adapted to 1" in n for n in report.notes) == (channels == 1)


@needs_timm
def test_summed_first_layer_on_grey_equals_rgb_weights_on_repeated_grey(imagenet_file):
    grey, rgb = (create_model("timm_mobilenetv3_small_100", 7, c) for c in (1, 3))
    for m in (grey, rgb):
        load_pretrained(m, imagenet_file)
    rgb.classifier.load_state_dict(grey.classifier.state_dict())
    x = torch.rand(2, 1, 64, 64)
    torch.testing.assert_close(grey.eval()(x), rgb.eval()(x.expand(-1, 3, -1, -1)), atol=1e-4, rtol=1e-4)


@needs_timm
def test_pretrained_file_of_another_architecture_is_refused(tmp_path):
    path = tmp_path / "resnet_s.pth"
    torch.save(create_model("resnet_s").state_dict(), path)
    with pytest.raises(ConfigError, match="is it a state dict of this architecture"):
        load_pretrained(create_model("timm_mobilenetv3_small_100", 7, 1), path)


def test_read_state_dict_unwraps_and_refuses(tmp_path):
    state = {"a.weight": torch.ones(2, 2)}
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "nested.pth")
    assert list(read_state_dict(tmp_path / "nested.pth")) == ["a.weight"]
    (tmp_path / "junk.bin").write_bytes(b"not weights")
    with pytest.raises(CheckpointError, match="junk.bin"):
        read_state_dict(tmp_path / "junk.bin")
    with pytest.raises(ConfigError, match="--init"):
        read_state_dict(SHIPPED)
    with pytest.raises(ConfigError, match="no such weights file"):
        read_state_dict(tmp_path / "missing.pth")


@needs_timm
def test_train_with_pretrained_freeze_and_export(imagenet_file, toy, tmp_path):
    run = train(dataset=toy, project=str(tmp_path), progress=False, model="timm_mobilenetv3_small_100",
                pretrained=str(imagenet_file), input_size=64, freeze_epochs=1, **FAST)
    ckpt = load_checkpoint(run.run_dir / "best.pt")
    assert (ckpt.input_size, ckpt.channels) == (64, 1)
    file_state = torch.load(imagenet_file, weights_only=True)
    first = torch.load(run.run_dir / "last.pt", weights_only=True)["state_dict"]["conv_stem.weight"]
    assert not torch.equal(first, file_state["conv_stem.weight"].sum(1, keepdim=True))  # unfrozen in epoch 2
    from ferkit.export import export

    result = export(run.run_dir / "best.pt", data=toy, out=tmp_path / "m.onnx")
    assert result.max_abs_diff < 1e-4
    assert EmotionClassifier(result.path).input_size == 64


# ----- --freeze-epochs and --backbone-lr-scale (any model: resnet_s here, no timm needed) ---------------------------
def test_frozen_epochs_train_only_the_head(toy, tmp_path):
    cfg = TrainConfig(model="resnet_s", project=str(tmp_path), freeze_epochs=1, **FAST)
    t = Trainer(cfg, dataset=toy, progress=False)
    heads = head_names(t.model)
    before = {k: v.clone() for k, v in t.model.state_dict().items()}
    t.train_epoch(t.train_split)
    after = t.model.state_dict()
    backbone = [k for k in before if not k.startswith(heads[0] + ".")]
    assert all(torch.equal(before[k], after[k]) for k in backbone)  # weights and BatchNorm statistics
    assert all(p.grad is None for n, p in t.model.named_parameters() if not n.startswith(heads[0] + "."))
    assert not torch.equal(before[f"{heads[0]}.weight"], after[f"{heads[0]}.weight"])
    t.epoch = 1
    t.train_epoch(t.train_split)
    assert not torch.equal(before["features.0.0.weight"], t.model.state_dict()["features.0.0.weight"])


def test_backbone_lr_scale_gives_the_backbone_its_own_rate():
    model = create_model("resnet_s")
    for schedule in ("cosine", "onecycle"):
        cfg = TrainConfig(model="resnet_s", data="x", lr=0.01, backbone_lr_scale=0.1, schedule=schedule, epochs=3)
        opt = build_optimizer(model, cfg)
        sched = Schedule(opt, cfg, 4)
        head = {id(p) for n, p in model.named_parameters() if n.startswith(head_names(model)[0] + ".")}
        groups = [(g["lr"], {id(p) for p in g["params"]}) for g in opt.param_groups]
        assert [len(ids & head) == len(ids) for _, ids in groups if ids] == [False, False, True, True]
        for _ in range(5):
            opt.step()
            sched.step_batch()
        lrs = [g["lr"] for g in opt.param_groups]
        assert lrs[0] == pytest.approx(lrs[2] * 0.1) and lrs[1] == pytest.approx(lrs[3] * 0.1)
    plain = build_optimizer(model, TrainConfig(model="resnet_s", data="x"))
    assert len(plain.param_groups) == 2


# ----- --init ------------------------------------------------------------------------------------------------------
def test_init_keeps_shared_class_rows_and_replaces_the_rest():
    old = load_checkpoint(SHIPPED)
    torch.manual_seed(0)
    model = create_model("resnet_s", num_classes=3)
    fresh = model.state_dict()["head.3.weight"].clone()
    report = init_from_checkpoint(model, old, ["happy", "Sadness", "Contempt"])
    state, ref = model.state_dict(), {k: v.float() for k, v in old.state_dict.items()}
    assert all(torch.equal(state[k], ref[k]) for k in state if not k.startswith("head.3."))
    assert torch.equal(state["head.3.weight"][:2], ref["head.3.weight"][[3, 4]])  # Happy, Sad
    assert torch.equal(state["head.3.weight"][2], fresh[2])  # Contempt: new
    assert any("2 of 3 classes (happy, Sadness)" in n for n in report.notes)
    assert "head.3.weight" in report.loaded and not any(k.startswith("head.3.") for k in report.unused)


def test_init_fine_tunes_the_shipped_model_on_an_image_folder(tmp_path):
    from PIL import Image

    from ferkit.cli import run

    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("test", 4)):
        for name in ("happy", "sad", "neutral"):
            folder = tmp_path / "faces" / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (48, 48), dtype=np.uint8)).save(folder / f"{i}.png")
    assert run(["train", "--model", "resnet_s", "--data", str(tmp_path / "faces"), "--init", str(SHIPPED),
                 "--epochs", "1", "--batch-size", "8", "--threads", "1", "--project", str(tmp_path / "runs"),
                 "--name", "ft", "--val-fraction", "0.25"]) == 0
    ckpt = load_checkpoint(tmp_path / "runs" / "ft" / "best.pt")
    shipped = load_checkpoint(SHIPPED)
    assert ckpt.classes == shipped.classes  # folder names map onto FER2013's seven classes
    assert (ckpt.mean, ckpt.std, ckpt.input_size) == (shipped.mean, shipped.std, 48)


def test_init_of_another_model_is_refused(toy, tmp_path):
    with pytest.raises(ConfigError, match="pass --model resnet_s"):
        Trainer(TrainConfig(model="resnet_m", project=str(tmp_path), init=str(SHIPPED), **FAST), dataset=toy,
                progress=False)


# ----- input size and channels from the checkpoint ------------------------------------------------------------------
def test_input_size_and_channels_reach_checkpoint_export_evaluation_and_recognizer(toy, tmp_path):
    from ferkit.evaluation import evaluate
    from ferkit.export import export
    from ferkit.inference import Recognizer

    run = train(dataset=toy, project=str(tmp_path), progress=False, model="resnet_s", input_size=64, channels=3,
                **FAST)
    ckpt = load_checkpoint(run.run_dir / "best.pt")
    assert (ckpt.input_size, ckpt.channels) == (64, 3)
    assert next(m for m in ckpt.build_model().modules() if isinstance(m, torch.nn.Conv2d)).in_channels == 3
    result = export(run.run_dir / "best.pt", data=toy, out=tmp_path / "m.onnx")
    assert result.max_abs_diff < 1e-4 and result.val_acc_torch == result.val_acc_export
    faces = resize_faces(toy.split("test").images, 64)
    onnx = EmotionClassifier(result.path)
    assert onnx.input_size == 64
    torch_probs = predict_proba(ckpt.build_model(), faces, ckpt.mean, ckpt.std, channels=3)
    np.testing.assert_allclose(onnx.predict_proba(faces), torch_probs, atol=1e-4)
    model, test = ckpt.build_model(), toy.split("test").images
    for tta in ("none", "tencrop"):  # evaluation feeds the 48 px test faces to the model at its 64 px, in colour
        res = evaluate(run.run_dir / "best.pt", data=toy, split="test", tta=tta, out=tmp_path / f"eval-{tta}")
        at_64 = predict_proba(model, test, ckpt.mean, ckpt.std, tta=tta, input_size=64, channels=3)
        at_48 = predict_proba(model, test, ckpt.mean, ckpt.std, tta=tta, channels=3)
        assert np.abs(res.probs - at_64).max() < 1e-5 and np.abs(at_64 - at_48).max() > 1e-3, tta
        assert res.metrics["accuracy"] == pytest.approx(float((at_64.argmax(1) == res.labels).mean()))
    face = Recognizer(model=result.path).predict(np.repeat(faces[0][..., None], 3, 2), detect=False)[0]
    np.testing.assert_allclose(list(face.probs.values()), onnx.predict_proba(faces[:1])[0], atol=1e-5)


def test_fit_input_resizes_and_repeats():
    x = torch.rand(2, 1, 48, 48)
    y = fit_input(x, 96, 3)
    assert y.shape == (2, 3, 96, 96) and torch.equal(y[:, 0], y[:, 2])
    assert fit_input(x, 48, 1).shape == x.shape and torch.equal(fit_input(x, 48, 1), x)
    assert resize_faces(np.zeros((3, 48, 48), np.uint8), 96).shape == (3, 96, 96)


# ----- settings and the optional extra ------------------------------------------------------------------------------
@pytest.mark.parametrize("settings, message", [
    (dict(init="a.pt", pretrained="b.pth"), "exclude each other"),
    (dict(freeze_epochs=2, epochs=2), "freeze_epochs"),
    (dict(backbone_lr_scale=0), "backbone_lr_scale"),
    (dict(channels=2), "channels must be 1"),
    (dict(input_size=4), "input_size"),
])
def test_bad_transfer_settings(settings, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(model="resnet_s", data="x", **settings)


def test_timm_models_without_timm_say_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "timm" else real(name, *a))
    assert not [m for m in list_models() if m.startswith("timm_")]
    assert "timm_resnet18" in list_models(include_unavailable=True)
    with pytest.raises(MissingExtraError, match=r"ferkit\[transfer\]"):
        create_model("timm_resnet18")


@needs_timm
def test_seed004_effnetb2_follows_the_seed():
    model = create_model("seed004_effnetb2", num_classes=7, in_chans=3)
    head = model.head
    assert [type(m).__name__ for m in head] == ["Conv2d", "AdaptiveAvgPool2d", "Flatten", "Linear", "ReLU", "Dropout",
                                                 "Linear"]
    assert head[0].out_channels == 128 and head[0].kernel_size == (3, 3) and head[5].p == 0.3
    assert model.eval()(torch.zeros(1, 3, 96, 96)).shape == (1, 7)
    assert head_names(model) == ["head"]

"""The seed systems' networks: parameter counts as their seeds print them, Keras numerics, the per-layer summary,
ONNX export."""

import pytest
import torch
from torch import nn

from ferkit.cli import run
from ferkit.core.checkpoint import Checkpoint
from ferkit.data.labels import FER2013_CLASSES
from ferkit.models import count_parameters, create_model, list_models, model_aliases, model_entry
from ferkit.models.keras_layers import FlattenNHWC, kernel_l2_penalty, kernel_l2_terms
from ferkit.models.seeds import KerasAugment
from ferkit.models.table import layer_rows, summary_table

# (Total params, Trainable params) as each seed's model.summary() prints them (seed 003 has no BatchNorm: both equal).
# Seed 004 prints no summary, so its models have no published figure to meet.
SEED_COUNTS = {
    "seed000_cnn": (5_810_183, 5_805_191),  # 000_67c2778e649086f2.txt
    "seed001_cnn": (1_049_159, 1_048_583),  # 001_882f868cd8a65383.txt
    "seed002_vgg": (5_102_791, 5_098_951),  # 002_b56987ac3e3db84b.txt
    "seed003_cnn": (2_345_607, 2_345_607),  # 003_ae0cc8e88f9fd851.txt
}
SEED_MODELS = [*SEED_COUNTS, "seed004_model2", "seed004_model3", "seed004_model4"]  # built here from the seeds' code


def keras_count(model: nn.Module) -> int:
    """Keras' total: parameters plus BatchNorm's moving mean and variance (PyTorch keeps those as buffers)."""
    stats = sum(b.numel() for k, b in model.named_buffers() if k.endswith(("running_mean", "running_var")))
    return count_parameters(model) + stats


@pytest.mark.parametrize("name,counts", SEED_COUNTS.items())
def test_parameter_counts_equal_the_seeds_summaries(name, counts):
    model = create_model(name)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert (keras_count(model), trainable) == counts
    table = summary_table(name)
    assert f"Total params: {counts[0]:,}" in table and f"Trainable params: {counts[1]:,}" in table


@pytest.mark.parametrize("old,new", [("blog_cnn6", "seed000_cnn"), ("clemson_cnn2", "seed001_cnn"),
                                     ("bestactor_vgg", "seed002_vgg"), ("webcam_cnn", "seed003_cnn")])
def test_old_names_build_the_seed_networks(old, new):
    assert old not in list_models() and model_entry(old).name == new and model_aliases()[old] == new
    assert keras_count(create_model(old)) == SEED_COUNTS[new][0]


def test_seed001_layers_follow_its_keras_summary():
    """Output shapes (Keras prints NHWC: (None, 46, 46, 32) is (1, 32, 46, 46) here) and parameters per layer."""
    rows = [r for r in layer_rows("seed001_cnn") if r["type"] not in ("ReLU", "Dropout")]
    keras = [("Conv2d", [1, 32, 46, 46], 320), ("BatchNorm2d", [1, 32, 46, 46], 128),
             ("MaxPool2d", [1, 32, 22, 22], 0), ("Conv2d", [1, 64, 22, 22], 18496),
             ("BatchNorm2d", [1, 64, 22, 22], 256), ("Conv2d", [1, 64, 22, 22], 36928),
             ("BatchNorm2d", [1, 64, 22, 22], 256), ("MaxPool2d", [1, 64, 11, 11], 0),
             ("FlattenNHWC", [1, 7744], 0), ("Linear", [1, 128], 991360), ("BatchNorm1d", [1, 128], 512),
             ("Linear", [1, 7], 903)]
    assert [(r["type"], r["output"], r["params"] + r["non_trainable"]) for r in rows] == keras


def test_models_summary_command(capsys):
    assert run(["models", "--summary", "seed000_cnn"]) == 0
    out = capsys.readouterr().out
    assert "Total params: 5,810,183" in out and "Trainable params: 5,805,191" in out
    assert "(1, 512, 1, 1)" in out and "FlattenNHWC" in out
    assert run(["models", "--summary", "seed004_model2", "--input-size", "64", "--channels", "3"]) == 0
    assert "(input 3x64x64" in capsys.readouterr().out


@pytest.mark.parametrize("name", SEED_MODELS)
def test_keras_numerics(name):
    """BatchNorm as Keras (eps 1e-3, momentum 0.99), zero biases at the start (Keras' default)."""
    model = create_model(name)
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert all(m.eps == 1e-3 and m.momentum == 0.01 for m in norms)
    assert all(m.eps == 1e-3 for m in model.modules() if isinstance(m, nn.GroupNorm))
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert all(not m.bias.detach().any() for m in layers)


def test_flatten_is_channels_last_as_keras():
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).view(2, 3, 4, 5)  # N, C, H, W
    out = FlattenNHWC()(x)
    c, h, w = 2, 1, 3
    assert out[1, h * 5 * 3 + w * 3 + c] == x[1, c, h, w]


def test_seed000_l2_penalty_is_keras_kernel_regularizer():
    """l2(0.01) on the three 512-filter kernels: the loss gets 0.01 * sum(w**2) of each, the gradient 0.02 * w."""
    model = create_model("seed000_cnn")
    terms = kernel_l2_terms(model)
    assert [(tuple(w.shape), c) for w, c in terms] == [((512, 128, 3, 3), 0.01), ((512, 512, 3, 3), 0.01),
                                                       ((512, 512, 3, 3), 0.01)]
    penalty = kernel_l2_penalty(terms)
    assert torch.isclose(penalty, sum(0.01 * (w.detach() ** 2).sum() for w, _ in terms))
    penalty.backward()
    assert all(torch.allclose(w.grad, 0.02 * w.detach()) for w, _ in terms)
    assert kernel_l2_terms(create_model("seed001_cnn")) == [] and kernel_l2_penalty([]) == 0.0


def test_in_model_augmentation_only_in_train_mode():
    torch.manual_seed(0)
    aug, x = KerasAugment(), torch.rand(8, 3, 32, 32)
    assert aug.eval()(x) is x
    y = aug.train()(x)
    assert y.shape == x.shape and not torch.allclose(y, x)
    model = create_model("seed004_model4").eval()
    faces = torch.rand(2, 1, 48, 48)
    with torch.no_grad():
        assert torch.equal(model(faces), model(faces))  # eval: no augmentation, no dropout


@pytest.mark.parametrize("name", ["seed000_cnn", "seed001_cnn", "seed002_vgg", "seed003_cnn", "seed004_model2"])
def test_seed_networks_export_to_onnx(tmp_path, name):
    from ferkit.export import export

    torch.manual_seed(0)
    model = create_model(name).eval()
    ckpt = Checkpoint(name, list(FER2013_CLASSES), model.state_dict(), mean=0.5, std=0.25)
    ckpt.save(tmp_path / "best.pt")
    res = export(tmp_path / "best.pt")
    assert res.path.exists() and res.max_abs_diff < 1e-4


def test_in_model_augmentation_exports_as_the_identity(tmp_path):
    """Models 3 and 4 take minutes to export here (10 GMACs a face); model 4's augmentation layer is what they add."""
    import numpy as np
    import onnxruntime as ort

    torch.manual_seed(0)
    model = nn.Sequential(KerasAugment(), nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()
    x = torch.rand(2, 1, 48, 48)
    torch.onnx.export(model, (x,), str(tmp_path / "aug.onnx"), dynamo=True).save(str(tmp_path / "aug.onnx"))
    out = ort.InferenceSession(str(tmp_path / "aug.onnx")).run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        assert np.abs(out - model(x).numpy()).max() < 1e-5

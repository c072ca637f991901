"""``ferkit import-keras``: Keras HDF5 files read with h5py into ferkit networks, checked against probabilities
that real Keras gave (tests/fixtures, written by ``tools/check_keras_import.py --make-fixtures`` in .venv-keras:
TensorFlow 2.15, random BatchNorm statistics); bad files and architectures are one-line errors."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("h5py")

from ferkit.cli import main  # noqa: E402
from ferkit.core.checkpoint import load_checkpoint  # noqa: E402
from ferkit.core.runtime import ModelError  # noqa: E402
from ferkit.data.dataset import FERDataset, Split  # noqa: E402
from ferkit.errors import ConfigError  # noqa: E402
from ferkit.export.keras_import import import_keras  # noqa: E402
from ferkit.models import count_parameters, create_model, registry  # noqa: E402
from ferkit.models.keras_layers import KERAS_BN_EPS, KERAS_BN_MOMENTUM  # noqa: E402
from ferkit.models.mini_xception import SamePool  # noqa: E402

from pathlib import Path  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"
SEQ, FN = FIXTURES / "keras_tiny_seq.h5", FIXTURES / "keras_tiny_fn.h5"
CLASSES = ["Happy", "Sad", "Neutral"]


class FlattenChannelsLast(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 2, 3, 1).flatten(1)


def tiny_seq(num_classes: int = 3, in_chans: int = 1, flatten: type[nn.Module] = nn.Flatten) -> nn.Module:
    """tools/keras_seed_models.py's tiny_sequential in PyTorch (BatchNorm with PyTorch's epsilon, 1e-5)."""
    return nn.Sequential(nn.Conv2d(in_chans, 4, 3), nn.ReLU(), nn.BatchNorm2d(4), nn.MaxPool2d(2), flatten(),
                         nn.BatchNorm1d(100), nn.Linear(100, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, num_classes))


class TinyFn(nn.Module):
    """tools/keras_seed_models.py's tiny_functional, modules in the Keras model's layer order."""

    def __init__(self, num_classes: int = 3, in_chans: int = 1) -> None:
        super().__init__()
        self.conv, self.bn, self.act = nn.Conv2d(in_chans, 4, 3, bias=False), nn.BatchNorm2d(4, eps=1e-3), nn.ReLU()
        self.dw, self.pw = nn.Conv2d(4, 4, 3, padding=1, groups=4, bias=False), nn.Conv2d(4, 8, 1, bias=False)
        self.bn_sep = nn.BatchNorm2d(8, eps=1e-3)
        self.res, self.res_bn = nn.Conv2d(4, 8, 1, stride=2, bias=False), nn.BatchNorm2d(8, eps=1e-3)
        self.pool, self.head = SamePool(), nn.Conv2d(8, num_classes, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn(self.conv(x)))
        return self.head(self.pool(self.bn_sep(self.pw(self.dw(x)))) + self.res_bn(self.res(x))).mean((2, 3))


@pytest.fixture(scope="module")
def tiny_networks():
    """The two twins in the registry for one test (at 12x12, where no other network is tried)."""
    builders = {"test_tiny_seq": tiny_seq, "test_tiny_fn": TinyFn,
                "test_tiny_seq_nhwc": lambda num_classes=3, in_chans=1: tiny_seq(num_classes, in_chans,
                                                                                 FlattenChannelsLast)}
    for name, build in builders.items():
        registry.register_model(name, "test twin of a Keras fixture", input_size=12)(build)
    yield
    for name in builders:
        registry._REGISTRY.pop(name)


def expect(path: Path) -> Path:
    return path.with_suffix(".npz")


@pytest.fixture(scope="module")
def seq_import(tiny_networks, tmp_path_factory):
    """The full-model fixture imported once (each import exports ONNX, some seconds)."""
    return import_keras(SEQ, out=tmp_path_factory.mktemp("seq"), expect=expect(SEQ), classes=CLASSES)


def test_full_model_matches_keras(seq_import):
    res, out = seq_import, seq_import.checkpoint.parent
    assert res.model == "test_tiny_seq" and res.keras_params == 1291 and res.faces == 16
    assert res.max_diff < 1e-5 and res.max_diff_onnx < 1e-5 and res.ok
    assert (out / "best.pt").is_file() and (out / "best.onnx").is_file() and (out / "import.json").is_file()


def test_channels_last_flatten_gets_the_rows_unpermuted(seq_import, tmp_path):
    a = seq_import
    b = import_keras(SEQ, out=tmp_path / "b", expect=expect(SEQ), classes=CLASSES, model="test_tiny_seq_nhwc")
    assert a.max_diff < 1e-5 and b.max_diff < 1e-5
    wa, wb = (load_checkpoint(r.checkpoint).state_dict["6.weight"] for r in (a, b))
    assert not torch.equal(wa, wb)  # the same Keras kernel, rows in each network's own flatten order


def test_weights_with_json_beside_or_given(tiny_networks, tmp_path):
    res = import_keras(FN, out=tmp_path / "beside", expect=expect(FN), classes=CLASSES)  # keras_tiny_fn.json beside
    assert res.model == "test_tiny_fn" and res.max_diff < 1e-5 and res.max_diff_onnx < 1e-5
    alone = tmp_path / "weights.h5"
    shutil.copy(FN, alone)
    with pytest.raises(ModelError, match=r"weights\.h5: holds weights only .*--json"):
        import_keras(alone, out=tmp_path / "x", classes=CLASSES)
    res = import_keras(alone, json_path=FN.with_suffix(".json"), out=tmp_path / "given", expect=expect(FN),
                       classes=CLASSES)
    assert res.max_diff < 1e-5


def test_a_colour_model_imports_and_is_checked_on_grey_faces(tiny_networks, tmp_path):
    """A Keras model of RGB input: ferkit's network gets the grey faces repeated to 3 channels, its ONNX file grey
    (N, 1, H, W) faces. The fixture with its first kernel spread over 3 channels (a third each) computes on grey
    faces what the fixture does, so Keras' probabilities for the fixture are this model's. Colour faces in the
    --expect file cannot be checked so: refused."""
    import h5py

    rgb = tmp_path / "rgb.h5"
    shutil.copy(SEQ, rgb)
    with h5py.File(rgb, "r+") as f:
        f.attrs["model_config"] = f.attrs["model_config"].replace("[null, 12, 12, 1]", "[null, 12, 12, 3]")
        kernel = "model_weights/conv2d/conv2d/kernel:0"
        grey = f[kernel][()]
        del f[kernel]
        f[kernel] = np.repeat(grey, 3, axis=2) / 3
    res = import_keras(rgb, out=tmp_path / "out", expect=expect(SEQ), classes=CLASSES)
    assert load_checkpoint(res.checkpoint).channels == 3 and res.max_diff < 1e-5 and res.max_diff_onnx < 1e-5
    npz = np.load(expect(SEQ))
    np.savez(tmp_path / "grey3.npz", faces=np.repeat(npz["faces"][..., None], 3, -1), probs=npz["probs"])
    assert import_keras(rgb, out=tmp_path / "g", expect=tmp_path / "grey3.npz", classes=CLASSES).max_diff_onnx < 1e-5
    np.savez(tmp_path / "colour.npz", faces=np.stack([npz["faces"]] * 2 + [255 - npz["faces"]], -1), probs=npz["probs"])
    with pytest.raises(ConfigError, match=r"colour\.npz: colour faces; ferkit's networks see grey faces"):
        import_keras(rgb, out=tmp_path / "c", expect=tmp_path / "colour.npz", classes=CLASSES)


def test_a_dead_channel_with_zero_moving_variance_imports(tiny_networks, tmp_path):
    import h5py

    dead = tmp_path / "dead.h5"
    shutil.copy(FN, dead)
    with h5py.File(dead, "r+") as f:
        f["batch_normalization_2/batch_normalization_2/moving_variance:0"][0] = 0.0  # a ReLU channel that never fired
    res = import_keras(dead, json_path=FN.with_suffix(".json"), out=tmp_path / "out", classes=CLASSES)
    assert load_checkpoint(res.checkpoint).state_dict["bn.running_var"][0] == 0.0  # epsilons equal: copied as is


def test_the_checkpoint_loads_safely_evaluates_and_exports(seq_import, tmp_path):
    from ferkit.evaluation import evaluate
    from ferkit.export import export

    res = seq_import
    raw = torch.load(res.checkpoint, weights_only=True)
    assert raw["model"] == "test_tiny_seq" and raw["input_size"] == 12 and raw["classes"] == CLASSES
    ckpt = load_checkpoint(res.checkpoint)
    npz = np.load(expect(SEQ))
    faces, labels = npz["faces"], npz["probs"].argmax(1)  # Keras' own answers as labels: accuracy 1
    split = Split("test", faces, labels, np.arange(len(faces)))
    data = FERDataset(tuple(CLASSES), {"test": split}, {"train": "test", "val": "test", "test": "test"}, "keras")
    report = evaluate(res.checkpoint, data=data, split="test", out=tmp_path / "eval", progress=False)
    assert report.metrics["accuracy"] == 1.0
    assert ckpt.model == "test_tiny_seq" and ckpt.mean == 0.0 and ckpt.std == 1.0
    exported = export(res.checkpoint, out=tmp_path / "again.onnx")
    assert exported.max_abs_diff < 1e-5


def test_an_architecture_no_network_has_is_one_line(tiny_networks, tmp_path):
    (tmp_path / "tanh.json").write_text(FN.with_suffix(".json").read_text().replace('"relu"', '"tanh"'))
    with pytest.raises(ModelError, match=r"keras_tiny_fn\.h5: matches no ferkit network \(input 12x12x1, 8 weighted "
                                         r"layers, 435 parameters\); closest: test_tiny_fn \(activations differ: "
                                         r"Keras \['tanh'\], the network \['relu'\]\); name one with --model") as err:
        import_keras(FN, json_path=tmp_path / "tanh.json", out=tmp_path, classes=CLASSES)
    assert "\n" not in str(err.value)
    with pytest.raises(ModelError, match=r"keras_tiny_seq\.h5: is not a resnet_s: Keras layer conv2d"):
        import_keras(SEQ, out=tmp_path, classes=CLASSES, model="resnet_s")
    with pytest.raises(ModelError, match=r"is not a webcam_cnn: webcam_cnn does not run on its 12x12x1 input"):
        import_keras(SEQ, out=tmp_path, classes=CLASSES, model="webcam_cnn")


def test_an_unconvertible_layer_is_named(tmp_path):
    text = FN.with_suffix(".json").read_text().replace('"GlobalAveragePooling2D"', '"GlobalSumPooling2D"')
    (tmp_path / "odd.json").write_text(text)
    with pytest.raises(ModelError, match=r"cannot be converted: layer 'global_average_pooling2d' is a "
                                         r"GlobalSumPooling2D, which ferkit does not convert"):
        import_keras(FN, json_path=tmp_path / "odd.json", out=tmp_path)


@pytest.mark.parametrize("content", [b"", b"not an HDF5 file at all", "truncated"])
def test_a_corrupt_file_is_one_line_from_the_command(content, tmp_path, capsys):
    bad = tmp_path / "model.h5"
    bad.write_bytes(SEQ.read_bytes()[:4000] if content == "truncated" else content)
    with pytest.raises(SystemExit) as exit_:
        main(["import-keras", str(bad), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1
    assert err.startswith(f"ferkit: error: {bad}: not a readable Keras HDF5 file (")


def test_the_command_prints_the_check(tiny_networks, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["import-keras", str(SEQ), "--out", str(tmp_path), "--expect", str(expect(SEQ)), "--classes",
              ",".join(CLASSES)])
    out = capsys.readouterr().out
    assert exit_.value.code == 0
    assert "test_tiny_seq (1,291 Keras parameters); input (pixels / 255 - 0) / 1, classes Happy, Sad, Neutral" in out
    assert "max |p_keras - p_ferkit| on 16 faces" in out and "NOT" not in out


def test_expect_that_does_not_fit_is_refused(tiny_networks, tmp_path):
    np.savez(tmp_path / "e.npz", faces=np.zeros((4, 48, 48), np.uint8), probs=np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"e\.npz: faces \(4, 48, 48\) and probs \(4, 3\) do not fit"):
        import_keras(SEQ, out=tmp_path, expect=tmp_path / "e.npz", classes=CLASSES)


def test_mini_xception_has_the_keras_parameter_count():
    model = create_model("mini_xception")
    stats = sum(b.numel() for n, b in model.named_buffers() if n.endswith(("running_mean", "running_var")))
    assert count_parameters(model) + stats == 58_423  # fer's emotion_model.hdf5 (Keras counts moving statistics)
    norms = {(m.eps, m.momentum) for m in model.modules() if isinstance(m, nn.BatchNorm2d)}
    assert norms == {(KERAS_BN_EPS, KERAS_BN_MOMENTUM)}  # Keras' BatchNormalization, as the other seed networks
    assert model.eval()(torch.zeros(2, 1, 64, 64)).shape == (2, 7)


def test_help_says_what_it_does(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["import-keras", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert exit_.value.code == 0 and "usage: ferkit import-keras" in text
    assert "save_weights('w.h5') with the architecture of model.to_json()" in text and "--keras-python" in text


def test_probabilities_that_differ_make_the_exit_code_1(tiny_networks, tmp_path, capsys):
    npz = np.load(expect(SEQ))
    np.savez(tmp_path / "wrong.npz", faces=npz["faces"], probs=npz["probs"][:, ::-1])  # classes reversed
    with pytest.raises(SystemExit) as exit_:
        main(["import-keras", str(SEQ), "--out", str(tmp_path / "out"), "--expect", str(tmp_path / "wrong.npz"),
              "--classes", ",".join(CLASSES)])
    assert exit_.value.code == 1 and "over 0.0001: NOT the Keras model" in capsys.readouterr().out

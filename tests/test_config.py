"""TrainConfig as the one definition of the training settings: the generated `ferkit train` options, to_argv,
strict keys, what --resume may change; and the errors and deprecated flag spellings of the command line."""

import json
import re
from dataclasses import MISSING, fields

import pytest

import ferkit
from ferkit.cli import build_parser, main
from ferkit.data.augment import AugmentConfig
from ferkit.errors import ConfigError, DivergedError, FerkitError, MissingExtraError, optional_import
from ferkit.training import config as config_module
from ferkit.training.config import RESUMABLE, TrainConfig, config_from_options

SHIPPED = "src/ferkit/weights/resnet_s_fer2013.pt"


def parse_train(argv):
    return config_from_options(build_parser({"train"}).parse_args(["train", *argv]))


def one_line(text):
    return re.sub(r"\s+", " ", text)


def command_help(capsys, command):
    with pytest.raises(SystemExit):
        build_parser({command}).parse_args([command, "--help"])
    return one_line(capsys.readouterr().out)


def test_train_help_shows_every_field_with_its_help_and_default(capsys):
    text = command_help(capsys, "train")
    for f in [*fields(TrainConfig), *fields(AugmentConfig)]:
        if f.name == "augment":
            continue
        help_text = one_line(f.metadata["help"].replace("%%", "%"))
        assert f"--{f.name.replace('_', '-')} " in text and help_text in text, f.name
        if f.metadata.get("default_help"):
            assert f"{help_text} (default: {f.metadata['default_help']})" in text, f.name
        elif f.default not in (MISSING, None) and not isinstance(f.default, bool):
            assert f"{help_text} (default: {f.default})" in text, f.name
    assert "--no-augment" in text and "--resume RUN" in text


@pytest.mark.parametrize("cfg", [
    TrainConfig(model="resnet_s", data="fer2013.csv"),
    TrainConfig(model="resnet_m", data="faces/", name="run1", project="elsewhere", labels="ferplus-soft",
                ferplus="votes.csv", epochs=7, batch_size=128, optimizer="adamw", lr=3e-4, momentum=0.8,
                weight_decay=0.05, schedule="onecycle", warmup_epochs=1.5, gamma=0.9, plateau_patience=5,
                label_smoothing=0.1, mixup=0.2, ema=0.999, teacher=["a/best.pt", "b/best.pt"], distill=0.3,
                teacher_tta="tencrop", class_weights="sqrt", patience=4, finetune_hard=2, seed=3, device="cpu",
                threads=2, limit=500, skip_bad_rows=True, val_fraction=0.2, tensorboard=True, dropout=0.0,
                sync_bn=True, amp=True),
    TrainConfig(model="resnet_s", data="x.csv", augment=AugmentConfig.none()),
    TrainConfig(model="resnet_s", data="x.csv", augment=AugmentConfig(flip=0.0, rotate=15.0, crop=40)),
    TrainConfig(model="resnet_s", data="x.csv", augment=AugmentConfig(0, 0, 0, 0, 0, 0, crop=40)),
])
def test_to_argv_round_trips_through_the_train_parser(cfg):
    assert parse_train(cfg.to_argv()) == cfg


def test_teachers_may_be_comma_separated_as_weights_are():
    assert TrainConfig(model="m", data="d", teacher=["flagship,default", "x.onnx"]).teacher == [
        "flagship", "default", "x.onnx"]
    assert parse_train(["--model", "m", "--data", "d", "--teacher", "flagship,default"]).teacher == ["flagship", "default"]


def test_to_argv_lists_only_what_differs_from_the_defaults():
    cfg = TrainConfig(model="resnet_s", data="d.csv", epochs=5, augment=AugmentConfig(crop=40), device="cpu")
    assert cfg.to_argv() == ["--model", "resnet_s", "--data", "d.csv", "--epochs", "5", "--device", "cpu",
                             "--crop", "40"]
    assert cfg.to_argv(exclude={"device"}) == ["--model", "resnet_s", "--data", "d.csv", "--epochs", "5",
                                               "--crop", "40"]
    assert TrainConfig(model="m", data="d", augment=AugmentConfig.none()).to_argv()[-1] == "--no-augment"


def test_no_augment_keeps_the_augmentation_flags_given_with_it():
    assert parse_train(["--model", "m", "--data", "d", "--no-augment", "--crop", "40"]).augment == \
        AugmentConfig(0, 0, 0, 0, 0, 0, crop=40)


def test_a_typo_in_a_setting_is_a_clear_error():
    with pytest.raises(ConfigError, match=r"unknown setting\(s\): 'lr_rate' \(did you mean 'lr'\?\)"):
        TrainConfig.from_dict({"model": "resnet_s", "data": "x", "lr_rate": 0.1})
    with pytest.raises(ConfigError, match=r"'epoch' \(did you mean 'epochs'\?\)"):
        ferkit.train(model="resnet_s", data="x", epoch=3)
    with pytest.raises(ConfigError, match=r"unknown augmentation setting\(s\): 'flop'"):
        TrainConfig.from_dict({"model": "resnet_s", "data": "x", "augment": {"flop": 0.5}})
    with pytest.raises(ConfigError, match="missing setting"):
        TrainConfig.from_dict({"model": "resnet_s"})


def test_an_old_checkpoint_config_still_loads():
    torch = pytest.importorskip("torch")
    saved = torch.load(SHIPPED, map_location="cpu", weights_only=True)["config"]
    assert "ema" not in saved and "crop" not in saved["augment"]  # older than those settings: they take defaults
    cfg = TrainConfig.from_dict(saved)
    assert cfg.model == saved["model"] and cfg.ema == 0.0 and cfg.augment.crop == 0


def test_retired_keys_are_dropped_and_only_those(monkeypatch):
    old = {"model": "resnet_s", "data": "x", "old_knob": 1}
    with pytest.raises(ConfigError, match="old_knob"):
        TrainConfig.from_dict(old)
    monkeypatch.setattr(config_module, "RETIRED_KEYS", frozenset({"old_knob"}))
    assert TrainConfig.from_dict(old) == TrainConfig(model="resnet_s", data="x")


def test_resume_takes_only_the_settings_that_may_change(tmp_path, capsys):
    with pytest.raises(ConfigError, match=r"--lr cannot change \(only --epochs, --patience, --finetune-hard"):
        ferkit.train(resume=tmp_path / "run", lr=0.1)
    with pytest.raises(SystemExit) as exc:
        main(["train", "--resume", str(tmp_path / "run"), "--lr", "0.1", "--flip", "0"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("ferkit: error: --resume continues a run with its own settings: --lr, --flip cannot change")
    assert len(err.splitlines()) == 1
    assert set(RESUMABLE) == {"epochs", "patience", "finetune_hard", "device", "threads", "save_minutes", "teacher"}


def test_cli_resume_takes_the_settings_that_may_change(tmp_path, monkeypatch):
    from ferkit.cli import run
    from ferkit.data.synthetic import synthetic_dataset
    from ferkit.training.trainer import Trainer

    monkeypatch.setenv("FERKIT_CACHE_DIR", str(tmp_path / "cache"))
    data = tmp_path / "toy.csv"
    with open(data, "w") as f:
        f.write("emotion,pixels,Usage\n")
        toy = synthetic_dataset(per_class=(8, 4, 4), seed=0)
        for split, usage in (("train", "Training"), ("val", "PublicTest"), ("test", "PrivateTest")):
            s = toy.split(split)
            f.writelines(f"{y},{' '.join(map(str, im.ravel()))},{usage}\n" for im, y in zip(s.images, s.labels))
    save_last = Trainer.save_last

    def killed(self):  # as if the process ended right after saving its first epoch
        save_last(self)
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "save_last", killed)
    common = ["--threads", "1", "--quiet"]
    with pytest.raises(KeyboardInterrupt):
        run(["train", "--model", "resnet_s", "--data", str(data), "--epochs", "1", "--batch-size", "16",
             "--schedule", "plateau", "--project", str(tmp_path), "--name", "r", *common])
    monkeypatch.setattr(Trainer, "save_last", save_last)
    assert run(["train", "--resume", str(tmp_path / "r"), "--epochs", "2", "--patience", "3", *common]) == 0
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    assert (saved["epochs"], saved["patience"], saved["schedule"]) == (2, 3, "plateau")
    assert [row.split(",")[0] for row in (tmp_path / "r" / "metrics.csv").read_text().splitlines()] == \
        ["epoch", "1", "2"]


def test_resumed_epochs_only_where_the_schedule_allows():
    cosine = TrainConfig(model="resnet_s", data="x", epochs=10)
    with pytest.raises(ConfigError, match="--epochs cannot change on --resume with --schedule cosine"):
        cosine.resumed({"epochs": 20})
    assert cosine.resumed({"patience": 3, "device": "cpu"}).patience == 3
    plateau = TrainConfig(model="resnet_s", data="x", epochs=10, schedule="plateau")
    assert plateau.resumed({"epochs": 20}).epochs == 20


def test_config_errors_are_ferkit_errors_and_value_errors():
    with pytest.raises(ConfigError, match="schedule must be one of") as exc:
        TrainConfig(model="resnet_s", data="x", schedule="warp")
    assert isinstance(exc.value, FerkitError) and isinstance(exc.value, ValueError)


def test_a_diverging_run_is_a_ferkit_error(tmp_path):
    from ferkit.data.synthetic import synthetic_dataset

    toy = synthetic_dataset(per_class=(8, 4, 4), seed=0)
    with pytest.raises(DivergedError, match="loss became nan at epoch 1; lower --lr") as exc:
        ferkit.train(model="resnet_s", data="synthetic", dataset=toy, project=str(tmp_path), lr=1e30, epochs=1,
                     batch_size=16, threads=1, progress=False)
    assert isinstance(exc.value, FerkitError) and isinstance(exc.value, FloatingPointError)


def test_optional_import_names_the_extra():
    message = r"Parquet output needs the optional extra: pip install 'ferkit\[parquet\]'"
    with pytest.raises(MissingExtraError, match=message) as exc:
        optional_import("ferkit_no_such_module", "parquet", "Parquet output")
    assert isinstance(exc.value, ImportError) and isinstance(exc.value, FerkitError)


def test_main_reports_ferkit_errors_in_one_line_and_lets_bugs_through(monkeypatch, capsys):
    def fail(error):
        def run(argv):
            raise error
        return run

    monkeypatch.setattr("ferkit.cli.run", fail(ConfigError("--x: bad")))
    with pytest.raises(SystemExit) as exc:
        main(["models"])
    assert exc.value.code == 2 and capsys.readouterr().err == "ferkit: error: --x: bad\n"
    for bug in (RuntimeError("CUDA error: device-side assert"), ValueError("a bug"), ImportError("a bug")):
        monkeypatch.setattr("ferkit.cli.run", fail(bug))
        with pytest.raises(type(bug)):
            main(["models"])


@pytest.mark.parametrize("argv, dest, value, old, new", [
    (["predict", "a.jpg", "--model", "m.onnx"], "weights", "m.onnx", "--model", "--weights"),
    (["video", "v.mp4", "--model", "m.onnx"], "weights", "m.onnx", "--model", "--weights"),
    (["predict", "a.jpg", "--batch", "8"], "batch_size", 8, "--batch", "--batch-size"),
    (["predict", "a.jpg", "--workers", "3"], "ray_workers", 3, "--workers", "--ray-workers"),
    (["serve", "--workers", "2"], "concurrency", 2, "--workers", "--concurrency"),
])
def test_old_flag_spellings_still_work_with_a_warning(capsys, argv, dest, value, old, new):
    args = build_parser({argv[0]}).parse_args(argv)
    assert getattr(args, dest) == value
    assert capsys.readouterr().err == f"ferkit: warning: {old} is deprecated; use {new}\n"
    args = build_parser({argv[0]}).parse_args([new if a == old else a for a in argv])
    assert getattr(args, dest) == value and capsys.readouterr().err == ""


@pytest.mark.parametrize("command", ["predict", "video", "webcam", "serve"])
def test_help_names_the_deprecated_spellings(capsys, command):
    text = command_help(capsys, command)
    assert "--weights NAME|ONNX[,...], --model NAME|ONNX[,...]" in text and "(--model: deprecated alias" in text


@pytest.mark.parametrize("omp, expected", [("1", 1), (" 1 ", 1), ("0", None), ("two", None), ("", None)])
def test_threads_default_to_omp_num_threads_else_every_core(monkeypatch, omp, expected):
    """Without --threads, training (PyTorch) and inference (ONNX Runtime) take $OMP_NUM_THREADS, the usual way
    to share a machine's cores between jobs; a value that is not a positive whole number means every core."""
    import os

    import torch

    from ferkit.core.device import setup_device
    from ferkit.core.runtime import cpu_session
    from ferkit.core.shipped import default_model_path

    cores = len(os.sched_getaffinity(0))
    expected = expected or cores
    monkeypatch.setenv("OMP_NUM_THREADS", omp)
    before = torch.get_num_threads()
    try:
        setup_device("cpu")
        assert torch.get_num_threads() == expected
        setup_device("cpu", threads=3)  # --threads wins
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
    assert cpu_session(default_model_path()).get_session_options().intra_op_num_threads == expected
    assert cpu_session(default_model_path(), threads=3).get_session_options().intra_op_num_threads == 3

"""Seed recipes (`ferkit train --recipe`, `ferkit recipes`), Keras-style optimizers and schedules, class-imbalance
options (frequency encoding, logit adjustment, log-prior bias), and a short training run of every recipe."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from ferkit.cli import build_parser, run
from ferkit.data.augment import AugmentConfig
from ferkit.data.synthetic import synthetic_dataset
from ferkit.errors import ConfigError
from ferkit.training import Trainer, TrainConfig, load_checkpoint, train
from ferkit.training.config import config_from_options
from ferkit.training.imbalance import by_frequency, class_prior, init_prior_bias, logit_offsets
from ferkit.training.optim import Schedule, build_optimizer
from ferkit.training.recipes import RECIPES, merged, recipe

SEED_FILES = {"seed000": "000_67c2778e649086f2.txt", "seed001": "001_882f868cd8a65383.txt",
              "seed002": "002_b56987ac3e3db84b.txt", "seed003": "003_ae0cc8e88f9fd851.txt",
              "seed004": "004_b5c6eb849b78af82.txt"}


def parsed_config(*argv: str) -> TrainConfig:
    """The TrainConfig that `ferkit train ARGV` trains with (as cli.run builds it)."""
    args = build_parser({"train"}).parse_args(["train", *argv])
    from ferkit.training.config import given_settings

    return config_from_options(args, merged(args.recipe, given_settings(args)) if args.recipe else None)


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_values_are_applied(name):
    r = recipe(name)
    cfg = parsed_config("--recipe", name, "--data", "d.csv", *(["--init", "x.pt"] if r.needs_init else []))
    for key, value in r.settings.items():
        assert getattr(cfg, key) == value, key
    assert r.source.split("_")[0] == name[4:7] and r.follows


def test_the_seeds_numbers():
    """Spot checks against the seeds' code (quoted in each recipe's `follows`)."""
    c = recipe("seed000").config(data="d")
    assert (c.model, c.optimizer, c.lr, c.batch_size, c.epochs, c.patience) == ("seed000_cnn", "adam", 1e-4, 64, 30, 5)
    assert (c.augment.shift, c.augment.zoom, c.augment.flip, c.augment.rotate) == (0.1, 0.2, 0.5, 0.0)
    c = recipe("seed000-sgd").config(data="d")
    assert (c.optimizer, c.momentum, c.lr, c.weight_decay) == ("sgd", 0.0, 1e-3, 0.0)
    c = recipe("seed001").config(data="d")
    assert (c.model, c.batch_size, c.epochs, c.lr, c.augment) == ("seed001_cnn", 100, 50, 1e-3, AugmentConfig.none())
    c = recipe("seed002").config(data="d")
    assert (c.schedule, c.plateau_monitor, c.plateau_factor, c.plateau_patience, c.patience, c.epochs) == \
        ("plateau", "val_loss", 0.9, 5, 10, 100)
    c = recipe("seed003").config(data="d")
    assert (c.schedule, c.lr, c.gamma, c.decay_steps, c.epochs) == ("exponential", 1e-4, 0.96, 100_000, 30)
    c = recipe("seed004").config(data="d")
    assert (c.model, c.input_size, c.channels, c.label_encoding, c.batch_size) == ("seed004_model4", 96, 3, "frequency", 128)


def test_flags_override_one_field_each():
    cfg = parsed_config("--recipe", "seed001", "--data", "d.csv", "--epochs", "2", "--flip", "0.3", "--lr", "0.01")
    assert (cfg.epochs, cfg.lr, cfg.batch_size, cfg.model) == (2, 0.01, 100, "seed001_cnn")
    assert cfg.augment == replace(AugmentConfig.none(), flip=0.3)  # seed001 has none: only the flip given is on
    cfg = parsed_config("--recipe", "seed000", "--data", "d.csv", "--zoom", "0.05", "--model", "resnet_s")
    assert (cfg.model, cfg.augment.zoom, cfg.augment.shift, cfg.patience) == ("resnet_s", 0.05, 0.1, 5)
    assert parsed_config("--recipe", "seed000", "--data", "d", "--no-augment").augment == AugmentConfig.none()
    assert train.__doc__ and "recipe" in train.__doc__


def test_recipe_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown recipe 'seed9'; choose from: seed000"):
        merged("seed9", {})
    with pytest.raises(ConfigError, match="recipe seed000-finetune continues a run: give --init CKPT"):
        merged("seed000-finetune", {})
    with pytest.raises(ConfigError, match="--recipe cannot be given with it"):
        run(["train", "--resume", str(tmp_path), "--recipe", "seed001"])


def test_recipes_command(capsys):
    assert run(["recipes"]) == 0
    out = capsys.readouterr().out
    for name, r in RECIPES.items():
        assert f"{name}  ({r.source})" in out
    assert "--model seed000_cnn --optimizer adam --lr 0.0001" in out
    assert "seed: lr_schedule = ExponentialDecay(initial_learning_rate, decay_steps=100000, decay_rate=0.96)" in out
    assert set(SEED_FILES.values()) <= {r.source for r in RECIPES.values()}


# ----- optimizers and schedules ---------------------------------------------------------------------------------
def _cfg(**kw) -> TrainConfig:
    return TrainConfig(model="seed001_cnn", data="d", **kw)


def test_plain_sgd_has_no_momentum():
    model = nn.Linear(3, 2)
    opt = build_optimizer(model, recipe("seed000-sgd").config(data="d"))
    assert all(g["momentum"] == 0 and g["nesterov"] is False for g in opt.param_groups)
    w0 = model.weight.detach().clone()
    for _ in range(2):  # with momentum, the second step would carry the first
        opt.zero_grad()
        model(torch.ones(1, 3)).sum().backward()
        opt.step()
    assert torch.allclose(model.weight, w0 - 2 * 1e-3 * torch.ones(2, 3))
    classical = build_optimizer(model, _cfg(optimizer="sgd", no_nesterov=True))
    assert classical.param_groups[0]["momentum"] == 0.9 and classical.param_groups[0]["nesterov"] is False
    assert build_optimizer(model, _cfg(optimizer="sgd")).param_groups[0]["nesterov"] is True


def test_plateau_on_val_loss_cuts_the_rate_as_keras():
    """Keras' ReduceLROnPlateau(monitor='val_loss', factor=0.9, patience=5): cut at the 5th epoch without a val loss
    lower by over 1e-4; never below min_lr."""
    model = nn.Linear(3, 2)
    cfg = _cfg(optimizer="adam", lr=1e-3, schedule="plateau", plateau_monitor="val_loss", plateau_factor=0.9,
               plateau_patience=5, min_lr=8.5e-4)
    opt = build_optimizer(model, cfg)
    sched = Schedule(opt, cfg, steps_per_epoch=10)
    lrs = []
    for loss in [1.0, 0.9, 0.89995, 0.9, 0.95, 0.9, 0.91, 0.92, 0.93, 0.94, 0.95, 0.96, 0.97, 0.98]:
        sched.step_epoch(val_acc=0.5, val_loss=loss)  # the accuracy is ignored
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs[5] == pytest.approx(1e-3)  # 4 epochs without improvement (0.89995 is within min_delta)
    assert lrs[6] == pytest.approx(0.9e-3)  # the 5th: cut by the factor
    assert lrs[11] == pytest.approx(8.5e-4)  # 5 more: 0.81e-3 is below min_lr, which holds
    acc_cfg = replace(cfg, plateau_monitor="val_acc")
    sched = Schedule(build_optimizer(model, acc_cfg), acc_cfg, 10)
    assert sched.sched.mode == "max"


def test_warm_up_within_the_run_and_a_one_cycle_of_three_steps_or_more():
    """--warmup-epochs is in [0, epochs] (one-cycle's rise: a longer one was torch's error after the data loaded);
    a one-cycle schedule of fewer than 3 optimizer steps is a clear error."""
    for bad in (-0.5, 2.5):
        with pytest.raises(ConfigError, match=f"warmup_epochs must be in \\[0, epochs\\], not {bad} of 2"):
            _cfg(schedule="onecycle", epochs=2, warmup_epochs=bad)
    model = nn.Linear(3, 2)
    cfg = _cfg(schedule="onecycle", epochs=2, warmup_epochs=2)
    sched = Schedule(build_optimizer(model, cfg), cfg, steps_per_epoch=2)
    assert sched.sched.total_steps == 4
    cfg = _cfg(schedule="onecycle", epochs=2)
    with pytest.raises(ConfigError, match=r"--schedule onecycle needs 3 or more optimizer steps, not 2 \(2 epoch"):
        Schedule(build_optimizer(model, cfg), cfg, steps_per_epoch=1)


def test_exponential_decay_per_step():
    """Keras' ExponentialDecay(1e-4, decay_steps=100, decay_rate=0.96): lr = 1e-4 * 0.96 ** (step / 100)."""
    model = nn.Linear(3, 2)
    cfg = _cfg(optimizer="adam", lr=1e-4, schedule="exponential", gamma=0.96, decay_steps=100)
    opt = build_optimizer(model, cfg)
    sched = Schedule(opt, cfg, steps_per_epoch=7)
    for step in range(1, 251):
        opt.step()
        sched.step_batch()
        if step in (1, 50, 250):
            assert opt.param_groups[0]["lr"] == pytest.approx(1e-4 * 0.96 ** (step / 100), rel=1e-9)
    sched.step_epoch(0.5, 1.0)  # nothing per epoch
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-4 * 0.96 ** 2.5, rel=1e-9)


# ----- class imbalance --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def skewed():
    """Synthetic faces with unequal class counts in Training, ordered like FER2013's: Happy most, Disgust least."""
    data = synthetic_dataset(per_class=(8, 2, 2), seed=3)
    tr = data.split("train")
    keep = np.concatenate([np.flatnonzero(tr.labels == c)[:n] for c, n in enumerate([5, 1, 4, 8, 3, 6, 2])])
    return replace(data, splits={**data.splits, "train": tr.subset(np.sort(keep))})


def test_frequency_encoding_renames_classes_only(skewed):
    freq = by_frequency(skewed)
    counts = np.bincount(freq.split("train").labels, minlength=7)
    assert list(counts) == [1, 2, 3, 4, 5, 6, 8]
    assert freq.classes == ("Disgust", "Neutral", "Sad", "Fear", "Angry", "Surprise", "Happy")
    for name in ("train", "val"):
        old, new = skewed.split(name), freq.split(name)
        assert [skewed.classes[y] for y in old.labels] == [freq.classes[y] for y in new.labels]
        assert np.array_equal(old.images, new.images)


def test_frequency_encoded_checkpoint_names_its_classes(tmp_path, skewed):
    r = train(dataset=skewed, data="synthetic", model="seed001_cnn", label_encoding="frequency", epochs=1,
              batch_size=8, project=str(tmp_path), progress=False, threads=1)
    ckpt = load_checkpoint(r.run_dir / "best.pt")
    assert ckpt.classes == list(by_frequency(skewed).classes) and ckpt.classes != list(skewed.classes)


def test_a_frequency_encoded_checkpoint_is_scored_on_labels_in_its_class_order(tmp_path, skewed):
    """Export's validation accuracy, ECE and fitted temperature compare its predictions with labels renumbered in
    the checkpoint's class order (Checkpoint.dataset), as training scored it: the accuracy is its recorded val_acc."""
    from ferkit.export import export

    data = synthetic_dataset(per_class=(8, 2, 2), seed=3)
    # Training counts 8, 1, 2 ... 6 give every class a new id (Angry, the commonest, the last); validation counts
    # 2, 1, 2, 1, 2, 1, 0 differ between each class and the one whose id it takes: even a model that predicts one
    # class scores otherwise on labels in the data's order
    picked = {name: np.concatenate([np.flatnonzero(data.split(name).labels == c)[:n] for c, n in enumerate(counts)])
              for name, counts in (("train", [8, 1, 2, 3, 4, 5, 6]), ("val", [2, 1, 2, 1, 2, 1, 0]))}
    data = replace(data, splits={**data.splits, **{k: data.split(k).subset(np.sort(v)) for k, v in picked.items()}})
    r = train(dataset=data, data="synthetic", model="seed001_cnn", label_encoding="frequency", epochs=3,
              batch_size=8, project=str(tmp_path), progress=False, threads=1)
    ckpt = load_checkpoint(r.run_dir / "best.pt")
    assert ckpt.classes == ["Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral", "Angry"]
    assert ckpt.dataset(data).classes == tuple(ckpt.classes)
    res = export(r.run_dir, data=data, out=tmp_path / "m.onnx", temperature="auto")
    assert res.val_acc_torch == pytest.approx(ckpt.val_acc, abs=1e-9)
    assert res.val_acc_export == pytest.approx(ckpt.val_acc, abs=1e-9)


def test_logit_adjustment_and_prior_bias(tmp_path, skewed):
    labels = skewed.split("train").labels
    prior = class_prior(labels, 7)
    assert torch.allclose(prior, torch.tensor(np.bincount(labels, minlength=7) / len(labels), dtype=torch.float32))
    assert torch.allclose(logit_offsets(prior, 1.5), 1.5 * prior.log())
    trainer = Trainer(TrainConfig(model="seed003_cnn", data="synthetic", logit_adjust=1.0, prior_bias=True,
                                  project=str(tmp_path), threads=1), dataset=skewed, progress=False)
    assert torch.allclose(trainer.logit_offsets, prior.log())
    assert torch.allclose(trainer.model[-1].bias, prior.log())
    out = trainer.model.eval()(torch.zeros(1, 1, 48, 48))  # zero input: ReLU features 0, the bias alone
    assert torch.allclose(out.softmax(1)[0], prior, atol=1e-6)
    with pytest.raises(ConfigError, match="--prior-bias needs a model whose last layer is a linear layer"):
        init_prior_bias(nn.Sequential(nn.Conv2d(1, 7, 3)), prior)


def test_trainer_adds_the_kernel_l2_penalty(tmp_path, skewed):
    """seed000_cnn: with the learning rate 0, the logged training loss is the cross-entropy plus 0.01 * sum(w**2)."""
    trainer = Trainer(recipe("seed000-sgd").config(data="synthetic", lr=0.0, batch_size=len(skewed.split("train")),
                                                  dropout=0.0, project=str(tmp_path), threads=1, epochs=1),
                      dataset=skewed, progress=False)
    penalty = float(sum(0.01 * (w.detach() ** 2).sum() for w, _ in trainer.l2_terms))
    stats = trainer.train_epoch(trainer.train_split)
    assert len(trainer.l2_terms) == 3 and penalty > 1
    assert stats["train_loss"] == pytest.approx(penalty + np.log(7), abs=1.0)  # CE of a fresh net is near log 7


# ----- every recipe trains (tiny, 1 epoch) --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny():
    return synthetic_dataset(per_class=(2, 1, 1), seed=4)


@pytest.mark.parametrize("name", RECIPES)
def test_every_recipe_trains(tmp_path, tiny, name):
    extra = {}
    if recipe(name).needs_init:  # continues a run: start from a tiny run of the same network
        first = train(dataset=tiny, data="synthetic", model=recipe(name).settings["model"], epochs=1, batch_size=7,
                      project=str(tmp_path), name="first", progress=False, threads=1)
        extra["init"] = str(first.run_dir / "best.pt")
    if name == "seed004":  # model 4 costs 10 GMACs a 48x48 face (43 at 96x96): model 2 here, the rest as the recipe
        extra.update(model="seed004_model2", input_size=48)
    r = train(recipe=name, dataset=tiny, data="synthetic", epochs=1, batch_size=7, project=str(tmp_path),
              name=name, progress=False, threads=1, **extra)
    assert r.epochs_run == 1 and (r.run_dir / "best.pt").exists()
    saved = load_checkpoint(r.run_dir / "last.pt").config
    assert saved["model"] == extra.get("model", recipe(name).settings["model"])
    assert {k: saved[k] for k in ("optimizer", "lr", "schedule")} == {k: recipe(name).config(**extra, data="d").to_dict()[k]
                                                                     for k in ("optimizer", "lr", "schedule")}


def test_a_label_permutation_changes_nothing_but_the_output_order():
    """Why frequency encoding cannot help a softmax classifier: train two copies, one with its classes renumbered and
    its output rows permuted alike; after SGD steps (dropout and BatchNorm included) their outputs are the same,
    permuted, up to float rounding. Renumbered without permuting the rows (a different random start of the output
    layer, which is what ferkit's --label-encoding frequency amounts to), they differ."""
    from ferkit.models import create_model

    order = torch.tensor([1, 6, 4, 2, 0, 5, 3])  # new id i is old class order[i]
    new_id = torch.empty(7, dtype=torch.long)
    new_id[order] = torch.arange(7)
    torch.manual_seed(0)
    a = create_model("seed001_cnn")
    b, c = create_model("seed001_cnn"), create_model("seed001_cnn")
    b.load_state_dict(a.state_dict())
    c.load_state_dict(a.state_dict())
    with torch.no_grad():
        b[-1].weight.copy_(a[-1].weight[order])
        b[-1].bias.copy_(a[-1].bias[order])
    x, y = torch.randn(16, 1, 48, 48), torch.randint(0, 7, (16,))
    for model, labels in ((a, y), (b, new_id[y]), (c, new_id[y])):
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        torch.manual_seed(1)  # the same dropout masks
        for _ in range(3):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), labels).backward()
            opt.step()
    with torch.no_grad():
        pa, pb, pc = (m.eval()(x).softmax(1) for m in (a, b, c))
    assert (pa[:, order] - pb).abs().max() < 1e-4
    assert (pa[:, order] - pc).abs().max() > 1e-2

"""Every knob of a training run, saved as ``config.json`` in the run folder.

:class:`TrainConfig` is the one definition of the training settings: each field carries its help text (its flag is
``--field-name``), the ``ferkit train`` options are generated from the fields (:func:`add_train_options`), and
:meth:`TrainConfig.to_argv` gives the command that reproduces a run. Imports neither PyTorch nor NumPy-heavy training
code, so the command line starts fast.
"""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Collection, Mapping
from dataclasses import MISSING, Field, asdict, dataclass, field, fields, replace
from typing import Any

from ..core.shipped import model_list
from ..data.augment import TTA_MODES, AugmentConfig, check_tta
from ..data.dataset import LABEL_SETS, SPLIT_BY, SPLIT_SETTINGS, check_fractions
from ..data.classnames import parse_class_map
from ..data.kdef import parse_angles
from ..data.photos import FACE_MODES
from ..errors import ConfigError

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("cosine", "onecycle", "plateau", "exponential", "none")
CLASS_WEIGHTS = ("none", "balanced", "sqrt")
RESUMABLE = ("epochs", "patience", "finetune_hard", "device", "threads", "save_minutes", "teacher")
"""The settings ``--resume`` may change; every other one is the run's own. ``teacher`` only names the same teachers'
files elsewhere (an online run checks their SHA-256s against its ``teachers.json``), e.g. after a shipped name that
a run started with came to stand for another file."""
MACHINE = ("device", "threads")
"""Settings of the machine, not of the run: ``ferkit train --resume`` takes them from its own flags (defaults: the
auto device, $OMP_NUM_THREADS or all cores), not from the run it continues."""
RETIRED_KEYS: frozenset[str] = frozenset()
"""Keys an old ``config.json`` may hold that are no longer settings, dropped when it is read. None so far: every
field since the first release is still a field (old configs only lack newer fields, which take their defaults)."""
SCHEDULES_OVER_EPOCHS = ("cosine", "onecycle")  # laid out over ``epochs`` when the run starts
PLATEAU_MONITORS = ("val_acc", "val_loss")
LABEL_ENCODINGS = ("index", "frequency")


def _opt(default: Any = MISSING, help: str = "", *, metavar: str | None = None, choices: tuple[str, ...] | None = None,
         default_help: str | None = None, factory: Any = MISSING) -> Any:
    """A field with its command-line help; ``default_help`` says what a ``None`` default means."""
    meta = {"help": help, "metavar": metavar, "choices": choices, "default_help": default_help}
    if factory is not MISSING:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    model: str = _opt(help="registry name (see `ferkit models`)")
    data: str = _opt(help="fer2013.csv (.csv.gz, .tar.gz; Kaggle's icml_face_data.csv and train.csv too), an image "
                          "folder with train/ and test/ (or of class folders), or KDEF", metavar="PATH")
    name: str | None = _opt(None, "run folder name, refused if taken",
                            default_help="the model name, numbered if taken")
    project: str = _opt("runs", "folder holding the runs")
    labels: str = _opt("fer2013", "fer2013 (7 classes), ferplus (FER+ majority, 8 classes) or ferplus-soft "
                                  "(vote distributions)", choices=LABEL_SETS)
    ferplus: str | None = _opt(None, "fer2013new.csv with FER+ votes", metavar="CSV", default_help="beside --data")
    epochs: int = _opt(30, "epochs of the main run")
    batch_size: int = _opt(64, "images per optimizer step (under torchrun: the global batch)")
    optimizer: str = _opt("sgd", "sgd is SGD with Nesterov momentum (classical with --no-nesterov, plain with "
                                 "--momentum 0)", choices=OPTIMIZERS)
    lr: float | None = _opt(None, "peak learning rate", default_help="0.01 for sgd, 0.001 for adam/adamw")
    momentum: float = _opt(0.9, "SGD momentum; 0 = plain SGD (Keras' SGD(lr))")
    no_nesterov: bool = _opt(False, "SGD: classical momentum instead of Nesterov's")
    weight_decay: float = _opt(5e-4, "L2 weight decay")
    schedule: str = _opt("cosine", "learning-rate schedule", choices=SCHEDULES)
    warmup_epochs: float = _opt(0.0, "linear warm-up before cosine; onecycle: its rising phase (0: 30%% of the run); "
                                     "the other schedules have none")
    gamma: float = _opt(0.95, "decay per epoch for --schedule exponential")
    plateau_patience: int = _opt(3, "--schedule plateau cuts the rate after N epochs without improvement (Keras' "
                                    "patience)", metavar="N")
    plateau_monitor: str = _opt("val_acc", "what --schedule plateau watches (Keras' ReduceLROnPlateau: val_loss)",
                                choices=PLATEAU_MONITORS)
    plateau_factor: float = _opt(0.5, "--schedule plateau multiplies the rate by this", metavar="F")
    min_lr: float = _opt(0.0, "--schedule plateau never cuts the rate below this")
    decay_steps: int = _opt(0, "--schedule exponential: the rate is multiplied by --gamma every N optimizer steps, "
                               "smoothly at every step (Keras' ExponentialDecay); 0 = by --gamma once per epoch",
                            metavar="N")
    label_smoothing: float = _opt(0.0, "label smoothing of the targets")
    mixup: float = _opt(0.0, "mixup Beta(alpha, alpha); 0 = off", metavar="ALPHA")
    ema: float = _opt(0.0, "moving average of the weights, updated every step with this decay (e.g. 0.999), "
                           "warmed up as min(decay, (1+n)/(10+n)) after n steps; validation and best.pt use the "
                           "average; 0 = off", metavar="DECAY")
    teacher: list[str] = _opt(help="knowledge distillation: train towards these models' averaged probabilities on "
                                   "Training: checkpoints, exported ONNX files or shipped models' names (space- or "
                                   "comma-separated); or, alone, "
                                   "an earlier run's teacher_probs.npy, its teachers' probabilities on the same "
                                   "Training images (checked), reused instead of predicted again",
                              metavar="MODEL", factory=list)
    distill: float = _opt(0.5, "with --teacher: weight of the teachers' probabilities in the targets, the rest the "
                               "labels", metavar="W")
    teacher_tta: str = _opt("flip", "with --teacher: test-time augmentation of the teachers' predictions (not "
                                    "used with a saved teacher_probs.npy: its run's config.json says how it was "
                                    "predicted)", choices=TTA_MODES)
    teacher_online: bool = _opt(False, "with --teacher: the teachers score every augmented (and mixed) batch as "
                                       "the student sees it, instead of once on the un-augmented images "
                                       "(consistent distillation; a teacher forward pass per step)")
    augment: AugmentConfig = field(default_factory=AugmentConfig)  # flat flags: --flip ... --crop, --no-augment
    class_weights: str = _opt("none", "loss weights against class imbalance (Disgust is 1.5%% of FER2013)",
                              choices=CLASS_WEIGHTS)
    label_encoding: str = _opt("index", "class ids: index (the data's order) or frequency (seed 004's 'frequency "
                                        "encoding': ids by Training frequency, the commonest last; a relabelling "
                                        "that changes nothing for a softmax model beyond its random start)",
                               choices=LABEL_ENCODINGS)
    logit_adjust: float = _opt(0.0, "logit-adjusted loss against class imbalance (Menon et al. 2021): the loss sees "
                                    "logits + TAU * log(Training class prior), predictions the plain logits; 1 is "
                                    "the paper's choice; 0 = off", metavar="TAU")
    prior_bias: bool = _opt(False, "start the output layer's bias at the log Training class prior")
    patience: int = _opt(0, "early stopping after N epochs without a better val accuracy; 0 = off", metavar="N")
    finetune_hard: int = _opt(0, "then fine-tune on Training mistakes plus as many replayed images, at lr/10",
                              metavar="EPOCHS")
    seed: int = _opt(0, "seed of the initial weights, the batch order, the augmentation and the held-out "
                        "shares of data without a val or test split")
    device: str = _opt("auto", "auto (CUDA when present), cpu, cuda, cuda:1 ...")
    threads: int | None = _opt(None, "CPU threads", default_help="$OMP_NUM_THREADS if set, else all cores")
    save_minutes: float = _opt(15.0, "also write last.pt inside an epoch once N minutes have passed since the last "
                                     "write, so a kill loses at most that much (--resume continues mid-epoch, "
                                     "exactly); 0 = at epoch ends only", metavar="N")
    limit: int | None = _opt(None, "at most N images per split, for quick experiments", metavar="N",
                             default_help="all")
    skip_bad_rows: bool = _opt(False, "skip and count bad rows/files instead of stopping")
    val_fraction: float = _opt(0.1, "data without a val split (image folders without val/, train.csv, KDEF, class "
                                    "folders): share held out for validation")
    test_fraction: float = _opt(0.1, "data without a test split (train.csv, KDEF, a folder of class folders): share "
                                     "held out for the test report")
    split_by: str = _opt("auto", "how held-out shares are drawn: image (stratified by class) or subject (no person in "
                                 "two splits: KDEF's actors); auto: subject where the data names subjects",
                         choices=SPLIT_BY)
    classes: list[str] = _opt(help="map class-folder names: FOLDER=CLASS (joy=happy; misc=skip leaves a folder out); "
                                   "angry/anger, disgust(ed), fear(ful)/afraid, happy/happiness, sad(ness), "
                                   "surprise(d), neutral and contempt are known in any case", metavar="FOLDER=CLASS",
                              factory=list)
    angles: list[str] = _opt(help="KDEF camera angles: S (straight), HL HR (half left/right), FL FR (full "
                                  "left/right), or all (default: S)", metavar="CODE", factory=lambda: ["S"])
    faces: str = _opt("auto", "image files are face crops (cropped) or photos (detect) whose largest face is found, "
                              "eye-aligned and cropped to the input size (48x48, or ferkit train's --input-size) as "
                              "at inference (BlazeFace; crops cached; photos without a face reported and left out); "
                              "auto: a photo is an image whose shorter side is at least 5x the input size (240 px at "
                              "48)",
                      choices=FACE_MODES)
    tensorboard: bool = _opt(False, "also log metrics to <run>/tensorboard (pip install 'ferkit[tensorboard]')")
    dropout: float | None = _opt(None, "rate of every Dropout layer", default_help="the model's own")
    sync_bn: bool = _opt(False, "under torchrun on CUDA: BatchNorm statistics over the whole global batch")
    amp: bool = _opt(False, "bf16 autocast in the training step: on CUDA, or a CPU with bf16 instructions "
                            "(AVX512-BF16, AMX); refused on other CPUs, where it is 5-18x slower")
    input_size: int | None = _opt(None, "side of the square input the model sees: faces are resized to it (e.g. 96 "
                                        "for ImageNet backbones); image files and photos' faces are read at it "
                                        "(FER2013's CSV stays 48, --crop counts pixels of the face as read)",
                                   metavar="PX", default_help="the model's own, e.g. 48; --init: the checkpoint's")
    channels: int | None = _opt(None, "input channels: 1 (grey) or 3 (the grey face repeated, for RGB backbones "
                                      "as published; 1 with --pretrained sums the RGB first layer, the same result "
                                      "at a third of its cost)", default_help="the model's own; --init: the "
                                      "checkpoint's")
    init: str | None = _opt(None, "start from this ferkit checkpoint's weights (a new optimizer and schedule); "
                                  "layers whose shape differs (the head, for other classes) start fresh, and the "
                                  "head keeps the rows of the classes both share", metavar="CKPT")
    pretrained: str | None = _opt(None, "backbone weights from a local timm/torchvision state dict (.pth, .bin, "
                                        ".safetensors) for a timm_* model; its classifier is replaced for these "
                                        "classes (nothing is downloaded)", metavar="PATH")
    freeze_epochs: int = _opt(0, "train only the head for the first N epochs (the backbone and its BatchNorm "
                                 "statistics frozen), then everything", metavar="N")
    backbone_lr_scale: float = _opt(1.0, "the backbone's learning rate is --lr times this (discriminative rates; "
                                         "the head gets --lr)", metavar="S")

    def __post_init__(self) -> None:
        if isinstance(self.augment, Mapping):
            self.augment = _augment_from_dict(self.augment)
        checks = [("optimizer", OPTIMIZERS), ("schedule", SCHEDULES), ("class_weights", CLASS_WEIGHTS),
                  ("labels", LABEL_SETS), ("plateau_monitor", PLATEAU_MONITORS), ("label_encoding", LABEL_ENCODINGS)]
        for name, allowed in checks:
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {allowed}, not {getattr(self, name)!r}")
        if self.epochs < 1 or self.batch_size < 2:
            raise ConfigError("epochs must be >= 1 and batch_size >= 2")
        if not 0 <= self.warmup_epochs <= self.epochs:
            raise ConfigError(f"warmup_epochs must be in [0, epochs], not {self.warmup_epochs} of {self.epochs}")
        if self.dropout is not None and not 0 <= self.dropout < 1:
            raise ConfigError("dropout must be in [0, 1)")
        if not 0 < self.distill <= 1:
            raise ConfigError("distill (the teacher's weight in the targets) must be in (0, 1]")
        self.teacher = [str(m) for t in self.teacher for m in model_list(t)]  # "flagship,default" as --weights takes it
        if len(self.teacher) > 1 and any(t.endswith(".npy") for t in self.teacher):
            raise ConfigError("a saved teacher_probs.npy is the only --teacher: it holds its run's teachers' average")
        check_tta(self.teacher_tta, "teacher_tta")
        if self.teacher_online and (not self.teacher or self.teacher[0].endswith(".npy")):
            raise ConfigError("teacher_online needs teacher models (checkpoints, ONNX files or shipped names), "
                              "not a saved teacher_probs.npy: they score each augmented batch")
        if not 0 <= self.ema < 1:
            raise ConfigError("ema (the decay per step) must be in [0, 1); 0 turns it off")
        if min(self.momentum, self.min_lr, self.decay_steps, self.plateau_patience) < 0 or not 0 < self.plateau_factor < 1:
            raise ConfigError("momentum, min_lr, decay_steps and plateau_patience must be >= 0, plateau_factor in (0, 1)")
        for name, allowed in (("split_by", SPLIT_BY), ("faces", FACE_MODES)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {allowed}, not {getattr(self, name)!r}")
        check_fractions(self.val_fraction, self.test_fraction)
        parse_class_map(self.classes)
        parse_angles(self.angles)
        if self.input_size is not None and self.input_size < 8:
            raise ConfigError(f"input_size must be at least 8 pixels, not {self.input_size}")
        if self.channels not in (None, 1, 3):
            raise ConfigError(f"channels must be 1 (grey) or 3 (grey repeated as RGB), not {self.channels}")
        if self.init and self.pretrained:
            raise ConfigError("--init (a ferkit checkpoint) and --pretrained (backbone weights) exclude each other")
        if not 0 <= self.freeze_epochs < self.epochs:
            raise ConfigError(f"freeze_epochs must be in [0, epochs), not {self.freeze_epochs} of {self.epochs}")
        if not self.backbone_lr_scale > 0:
            raise ConfigError("backbone_lr_scale must be > 0 (use --freeze-epochs to hold the backbone still)")

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else (0.01 if self.optimizer == "sgd" else 1e-3)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TrainConfig":
        """The config of ``d`` (a ``config.json``, a checkpoint's ``config``, keyword overrides); an unknown key is a
        ConfigError naming it (keys in :data:`RETIRED_KEYS` are dropped), a missing one takes its default."""
        _check_keys(d, {f.name for f in fields(cls)} | RETIRED_KEYS, "setting")
        missing = [f.name for f in fields(cls) if _required(f) and f.name not in d]
        if missing:
            raise ConfigError(f"missing setting(s): {', '.join(missing)}")
        return cls(**{k: v for k, v in d.items() if k not in RETIRED_KEYS})

    def to_argv(self, exclude: Collection[str] = ()) -> list[str]:
        """The ``ferkit train`` arguments that rebuild this config: ``--model`` and ``--data``, then every setting
        that differs from its default, except those named in ``exclude`` (e.g. ``("project", "device")``)."""
        argv = []
        for f in _option_fields(TrainConfig):
            value = getattr(self, f.name)
            if f.name in exclude or (not _required(f) and value == _default(f)):
                continue
            argv += _flag_and_values(f, value)
        aug, base = self.augment, AugmentConfig()
        if "augment" in exclude or aug == base:
            return argv
        if aug == AugmentConfig.none():
            return [*argv, "--no-augment"]
        for f in fields(AugmentConfig):
            if getattr(aug, f.name) != getattr(base, f.name):
                argv += _flag_and_values(f, getattr(aug, f.name))
        return argv

    def resumed(self, changes: Mapping[str, Any]) -> "TrainConfig":
        """This (saved) config with ``changes`` for its resumed run; ``epochs`` may change only where the schedule
        is not laid out over the original epochs. (The command line allows only :data:`RESUMABLE` changes.)"""
        new = TrainConfig.from_dict({**self.to_dict(), **changes})
        if new.teacher != self.teacher and not self.teacher_online:
            raise ConfigError("--teacher can change on --resume only for a --teacher-online run (which checks that "
                              "the files are the same teachers'); this run reuses the teacher probabilities it saved")
        if new.epochs != self.epochs and self.schedule in SCHEDULES_OVER_EPOCHS:
            raise ConfigError(f"--epochs cannot change on --resume with --schedule {self.schedule}: the schedule was "
                              f"laid out over the run's {self.epochs} epochs (plateau, exponential and none can)")
        return new


def check_resume_changes(changes: Collection[str]) -> None:
    """A ConfigError naming every setting in ``changes`` that ``--resume`` cannot change (see :data:`RESUMABLE`)."""
    refused = [k for k in changes if k not in RESUMABLE]
    if refused:
        allowed = ", ".join(map(flag_of, RESUMABLE))
        raise ConfigError(f"--resume continues a run with its own settings: {', '.join(map(flag_of, refused))} "
                          f"cannot change (only {allowed} can)")


# ----- the `ferkit train` options ------------------------------------------------------------------------------------
def add_train_options(p: argparse.ArgumentParser) -> None:
    """One option per field of :class:`TrainConfig` (the augmentation's as ``--flip`` ... ``--crop`` and
    ``--no-augment``), with its help and default. Options left out are absent from the parsed namespace (defaults
    are the dataclass's, applied by :func:`config_from_options`), so ``--resume`` can tell what was given."""
    for f in _option_fields(TrainConfig):
        _add_option(p, f, _default(f))
    aug = p.add_argument_group("augmentation")
    aug.add_argument("--no-augment", action="store_true", default=argparse.SUPPRESS,
                     help="turn every augmentation off (the augmentation flags given with it still apply)")
    for f in fields(AugmentConfig):
        _add_option(aug, f, _default(f))


DATA_HELP = {"seed": "seed of the held-out shares of data without a val or test split (as ferkit train --seed)"}
"""Help texts of :func:`add_data_options` where the setting does less than in ``ferkit train``."""


def add_data_options(p: argparse.ArgumentParser) -> None:
    """The options of the settings that decide how data is read and split (``SPLIT_SETTINGS``), as ``ferkit train``
    has them, for commands that read a data set on their own (``ferkit data-report``)."""
    for f in fields(TrainConfig):
        if f.name in SPLIT_SETTINGS:
            _add_option(p, f, _default(f), DATA_HELP.get(f.name))


def machine_defaults() -> dict[str, Any]:
    """The defaults of the :data:`MACHINE` settings."""
    return {f.name: _default(f) for f in fields(TrainConfig) if f.name in MACHINE}


def given_settings(ns: argparse.Namespace) -> dict[str, Any]:
    """The TrainConfig settings given on the command line, by field name (augmentation flags by their own)."""
    names = {f.name for f in _option_fields(TrainConfig)} | {f.name for f in fields(AugmentConfig)} | {"no_augment"}
    return {k: v for k, v in vars(ns).items() if k in names}


def config_from_options(ns: argparse.Namespace, base_settings: Mapping[str, Any] | None = None) -> TrainConfig:
    """The TrainConfig of parsed ``ferkit train`` options; for everything not given, ``base_settings`` (a recipe's)
    and then the defaults. Each option given overrides one setting (an augmentation flag, one knob)."""
    settings = dict(base_settings or {})
    given = {**{k: v for k, v in settings.items() if k != "augment"}, **given_settings(ns)}
    aug_names = {f.name for f in fields(AugmentConfig)}
    base = AugmentConfig.none() if given.pop("no_augment", False) else settings.get("augment", AugmentConfig())
    augment = replace(base, **{k: given.pop(k) for k in list(given) if k in aug_names})
    return TrainConfig.from_dict({**given, "augment": augment})


def _add_option(p: Any, f: Field, default: Any, help: str | None = None) -> None:
    meta = f.metadata
    kind = _kind(f)
    shown = default is not MISSING and default is not None and not isinstance(default, (bool, list))
    extra = meta.get("default_help") or (str(default) if shown else "")
    help_text = (help or meta["help"]) + (f" (default: {extra})" if extra else "")
    kw: dict[str, Any] = {"help": help_text, "default": argparse.SUPPRESS, "dest": f.name}
    if kind is bool:
        if default is not False:
            raise TypeError(f"{f.name}: a flag's default must be False")
        p.add_argument(flag_of(f.name), action="store_true", **kw)
        return
    kw.update(type=kind, metavar=meta.get("metavar"), choices=meta.get("choices"))
    if kind is list:
        kw.update(type=str, nargs="+")
    p.add_argument(flag_of(f.name), **kw)


def _option_fields(cls: type) -> list[Field]:
    return [f for f in fields(cls) if f.name != "augment"]


def _kind(f: Field) -> type:
    """The value type of a field, from its annotation (a string under ``from __future__ import annotations``)."""
    name = str(f.type).replace(" | None", "")
    return {"str": str, "int": int, "float": float, "bool": bool, "list[str]": list}[name]


def _required(f: Field) -> bool:
    return f.default is MISSING and f.default_factory is MISSING


def _default(f: Field) -> Any:
    return f.default_factory() if f.default_factory is not MISSING else f.default


def flag_of(name: str) -> str:
    """The ``ferkit train`` flag of a setting (a field of TrainConfig or AugmentConfig, or ``no_augment``)."""
    return "--" + name.replace("_", "-")


def _flag_and_values(f: Field, value: Any) -> list[str]:
    if value is True:
        return [flag_of(f.name)]
    return [flag_of(f.name), *map(str, value if isinstance(value, list) else [value])]


def _augment_from_dict(d: Mapping[str, Any]) -> AugmentConfig:
    _check_keys(d, {f.name for f in fields(AugmentConfig)}, "augmentation setting")
    return AugmentConfig(**d)


def _check_keys(d: Collection[str], known: Collection[str], what: str) -> None:
    """A ConfigError naming each key of ``d`` not in ``known``, with the nearest known one where there is one."""
    unknown = [k for k in d if k not in known]
    if unknown:
        hints = [repr(k) + "".join(f" (did you mean {m!r}?)" for m in _nearest(k, known)) for k in unknown]
        raise ConfigError(f"unknown {what}(s): {', '.join(hints)}; known: {', '.join(sorted(known))}")


def _nearest(key: str, known: Collection[str]) -> list[str]:
    """The one known key that ``key`` extends or abbreviates (``lr_rate``, ``epoch``), else the closest spelling."""
    prefixes = [k for k in known if key.startswith(k) or k.startswith(key)]
    return prefixes if len(prefixes) == 1 else difflib.get_close_matches(key, known, 1, 0.75)

"""Every knob of a training run, saved as ``config.json`` in the run folder."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..data.augment import AugmentConfig
from ..core.predict import TTA_MODES

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("cosine", "onecycle", "plateau", "exponential", "none")
CLASS_WEIGHTS = ("none", "balanced", "sqrt")


@dataclass
class TrainConfig:
    model: str
    data: str
    name: str | None = None  # run folder name under ``project``; default: the model name, numbered
    project: str = "runs"
    labels: str = "fer2013"  # fer2013 | ferplus | ferplus-soft
    ferplus: str | None = None
    epochs: int = 30
    batch_size: int = 64
    optimizer: str = "sgd"
    lr: float | None = None  # default: 0.01 for SGD, 0.001 for Adam/AdamW
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    warmup_epochs: float = 0.0
    gamma: float = 0.95  # exponential decay per epoch
    plateau_patience: int = 3
    label_smoothing: float = 0.0
    mixup: float = 0.0  # Beta(alpha, alpha); 0 = off
    ema: float = 0.0  # decay per step of an exponential moving average of the weights; 0 = off
    teacher: list[str] = field(default_factory=list)  # checkpoints whose averaged probabilities are distilled
    distill: float = 0.5  # with a teacher: weight of its probabilities in the targets (the rest: the labels)
    teacher_tta: str = "flip"  # test-time augmentation of the teacher's predictions on Training
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    class_weights: str = "none"
    patience: int = 0  # early stopping: epochs without a better validation accuracy; 0 = off
    finetune_hard: int = 0  # epochs of hard-example fine-tuning on Training mistakes after the main run
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    limit: int | None = None  # at most this many images per split (quick experiments, tests)
    skip_bad_rows: bool = False
    val_fraction: float = 0.1  # image folders without val/: share of train held out for validation
    tensorboard: bool = False  # also log every epoch's metrics to <run>/tensorboard (needs ferkit[tensorboard])
    dropout: float | None = None  # every Dropout layer's rate; None keeps the model's own
    sync_bn: bool = False  # under torchrun on CUDA: BatchNorm statistics over the global batch
    amp: bool = False  # CUDA only: bf16 autocast in the training step (no bf16 hardware on common CPUs: far slower)

    def __post_init__(self) -> None:
        if isinstance(self.augment, dict):
            self.augment = AugmentConfig(**self.augment)
        checks = [("optimizer", OPTIMIZERS), ("schedule", SCHEDULES), ("class_weights", CLASS_WEIGHTS)]
        for name, allowed in checks:
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, not {getattr(self, name)!r}")
        if self.epochs < 1 or self.batch_size < 2:
            raise ValueError("epochs must be >= 1 and batch_size >= 2")
        if self.dropout is not None and not 0 <= self.dropout < 1:
            raise ValueError("dropout must be in [0, 1)")
        if not 0 < self.distill <= 1:
            raise ValueError("distill (the teacher's weight in the targets) must be in (0, 1]")
        if self.teacher_tta not in TTA_MODES:
            raise ValueError(f"teacher_tta must be one of {TTA_MODES}, not {self.teacher_tta!r}")
        if not 0 <= self.ema < 1:
            raise ValueError("ema (the decay per step) must be in [0, 1); 0 turns it off")

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else (0.01 if self.optimizer == "sgd" else 1e-3)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

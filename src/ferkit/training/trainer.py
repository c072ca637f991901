"""The training loop: in-memory batches, whole-batch augmentation, per-epoch validation,
atomic ``best``/``last`` checkpoints and exact resume; data-parallel under ``torchrun``.

Under ``torchrun --nproc-per-node N`` every process draws the same shuffled global batch of
``batch_size`` images (a new order every epoch), augments it the same way, and trains on its own
1/N slice; DistributedDataParallel averages the gradients, so a step equals a single-process step
on the whole batch (exactly for models without BatchNorm; with BatchNorm each process normalises its
slice unless ``sync_bn``, CUDA only). Metrics are summed over processes; only rank 0 shows progress
and writes logs and checkpoints, which are plain single-process state dicts.

With ``ema`` an exponential moving average of the weights (and BatchNorm statistics) follows every
optimizer step; validation scores it and ``best.pt`` holds it, while ``last.pt`` keeps both for resume.
With ``teacher`` checkpoints (knowledge distillation), the Training targets mix the labels with the
teachers' averaged class probabilities, computed once on the un-augmented Training images; with
``teacher_online`` the teachers score every augmented (and mixed) batch as the student sees it instead
(:class:`OnlineTeachers`: consistent distillation, Beyer et al. 2022).
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel
from tqdm import tqdm

from ..data.augment import augment_batch, mixup
from ..data.dataset import FERDataset, Split, load_dataset, split_settings
from ..core.checkpoint import Checkpoint, load_checkpoint
from ..core.cpuinfo import has_bf16, usable_cores
from ..core.detect import FaceCropper
from ..core.device import resolve_device, setup_device
from ..core.predict import ensemble_proba, fit_input, load_member, onnx_proba, predict_proba, to_input, views_proba
from ..core.runtime import file_sha256
from ..errors import ConfigError, DivergedError, optional_import
from ..models.keras_layers import kernel_l2_penalty, kernel_l2_terms
from ..models.registry import count_parameters, create_model, model_entry
from . import distributed
from .config import TrainConfig, check_resume_changes
from .distributed import DistInfo
from .imbalance import by_frequency, class_prior, init_prior_bias, logit_offsets
from .optim import Schedule, build_optimizer
from .warmstart import init_from_checkpoint, load_pretrained, set_backbone_frozen

TEACHER_PROBS = "teacher_probs.npy"  # in the run folder: the teachers' mean probabilities on the Training images
TEACHER_IDS = "teacher_ids.npy"  # beside it: the ids of those images, which a run reusing the probabilities checks
TEACHER_FILES = "teachers.json"  # online teachers' files and SHA-256s, which a resumed run checks
METRIC_FIELDS = ["epoch", "stage", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "images_per_s", "epoch_s"]


@dataclass
class TrainResult:
    run_dir: Path
    best_epoch: int
    best_val_acc: float
    epochs_run: int
    stopped_early: bool


def next_run_dir(project: str | Path, name: str | None, model: str) -> Path:
    """``project/name``, refused (ValueError) if taken; without a name, ``project/model``, or
    ``project/model2``, ``model3``... if taken."""
    project = Path(project)
    if name is not None:
        if (project / name).exists():
            raise ConfigError(f"run folder {project / name} already exists: choose another --name, or continue it "
                             f"with --resume {project / name}")
        return project / name
    candidate, i = project / model, 2
    while candidate.exists():
        candidate, i = project / f"{model}{i}", i + 1
    return candidate


def class_weight_vector(labels: np.ndarray, num_classes: int, mode: str) -> torch.Tensor | None:
    if mode == "none":
        return None
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64).clip(min=1)
    w = counts.sum() / (num_classes * counts)
    if mode == "sqrt":
        w = np.sqrt(w)
    return torch.tensor(w / (w * counts).sum() * counts.sum(), dtype=torch.float32)


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    logp = F.log_softmax(logits, dim=1)
    if weight is not None:
        logp = logp * weight
    return -(target * logp).sum(1).mean()


def targets_for(split: Split, index: torch.Tensor, num_classes: int, smoothing: float) -> torch.Tensor:
    if split.soft is not None:
        t = torch.from_numpy(split.soft[index.numpy()])
    else:
        t = F.one_hot(torch.from_numpy(split.labels[index.numpy()]), num_classes).float()
    return t * (1 - smoothing) + smoothing / num_classes if smoothing else t


def ema_with_warmup(decay: float) -> Callable[..., None]:
    """The weight average's update with the decay warmed up as timm's ModelEma does: ``min(decay, (1 + n) / (10 + n))``
    after ``n`` updates, so the average forgets its first, untrained weights within a few hundred steps (with a
    fixed 0.9995 they still weigh 41% after 1,800 steps, and the average predicts one class for epochs)."""

    @torch.no_grad()
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], n_averaged: torch.Tensor) -> None:
        n = float(n_averaged)
        d = min(decay, (1 + n) / (10 + n))
        if torch.is_floating_point(averaged[0]):
            torch._foreach_lerp_(averaged, current, 1 - d)
        else:  # BatchNorm's step counters
            for a, c in zip(averaged, current, strict=True):
                a.copy_(c)

    return update


class Trainer:
    """Runs one :class:`TrainConfig`; ``Trainer(cfg).fit()`` or ``Trainer.resume(run_dir).fit()``."""

    def __init__(self, cfg: TrainConfig, run_dir: Path | None = None, dataset: FERDataset | None = None,
                 progress: bool = True, resumed_from: Checkpoint | None = None) -> None:
        self.cfg = cfg
        self.dist = DistInfo.from_env()
        self.progress = progress and self.dist.is_main
        if cfg.tensorboard:
            optional_import("tensorboard", "tensorboard", "--tensorboard")
        self.device = self._setup_device()
        if cfg.amp and self.device.type == "cpu" and not has_bf16():
            raise ConfigError("--amp (bf16 autocast) needs CUDA or a CPU with bf16 instructions (AVX512-BF16 or AMX): "
                              "on this one, without them, it is 5-18x slower")
        if cfg.freeze_epochs and self.dist.enabled:
            raise ConfigError("--freeze-epochs does not run under torchrun (DistributedDataParallel needs every "
                              "parameter's gradient from the start)")
        self._own_group = self.dist.enabled and not torch.distributed.is_initialized()
        distributed.init(self.dist, self.device.type)
        init = load_checkpoint(cfg.init) if cfg.init and resumed_from is None else None
        self.input_size, self.channels = self._input_shape(resumed_from or init)
        if dataset is None:
            if not self.dist.is_main:
                distributed.barrier(self.dist)  # rank 0 reads (and caches) the data set first
            dataset = load_dataset(cfg.data, labels=cfg.labels, ferplus=cfg.ferplus, skip_bad_rows=cfg.skip_bad_rows,
                                   progress=self.progress, size=self.input_size, cropper=FaceCropper(self.input_size),
                                   **split_settings(cfg.to_dict()))  # photos cropped at the model's input size
            if self.dist.is_main:
                distributed.barrier(self.dist)
            if self.progress:
                for note in filter(None, (dataset.skipped_note, dataset.no_face_note)):
                    tqdm.write(f"{cfg.data}: {note}")
        self.data = by_frequency(dataset) if cfg.label_encoding == "frequency" else dataset
        if cfg.limit:
            self.data = self.data.subsample(cfg.limit, seed=cfg.seed)
        self.train_split, self.val_split = self.data.split("train"), self.data.split("val")
        self.num_classes = self.data.num_classes
        self.teacher_probs: np.ndarray | None = None
        self.online_teachers: OnlineTeachers | None = None
        if cfg.teacher_online:
            self.online_teachers = OnlineTeachers(cfg.teacher, list(self.data.classes), cfg.teacher_tta, self.device)
            if resumed_from is not None:
                self.online_teachers.check_unchanged(run_dir / TEACHER_FILES)
            if self.progress:
                tqdm.write(f"distilling from {len(cfg.teacher)} teacher(s) online (tta={cfg.teacher_tta}, weight "
                           f"{cfg.distill}): they score every augmented batch")
        elif cfg.teacher:
            self.train_split = self._distilled(self.train_split, run_dir if resumed_from is not None else None)
        torch.manual_seed(cfg.seed)
        self.model = create_model(cfg.model, num_classes=self.num_classes, in_chans=self.channels)
        if resumed_from is None:
            self._warm_start(init)
        self.model = self.model.to(self.device)
        prior = class_prior(self.train_split.labels, self.num_classes)
        if cfg.prior_bias:
            init_prior_bias(self.model, prior)
        self.logit_offsets = logit_offsets(prior, cfg.logit_adjust).to(self.device) if cfg.logit_adjust else None
        self.l2_terms = kernel_l2_terms(self.model)  # Keras kernel_regularizer=l2(c): c * sum(w**2) in the loss
        if cfg.dropout is not None:
            for m in self.model.modules():
                if isinstance(m, nn.Dropout):
                    m.p = cfg.dropout
        self.model = self.model.to(memory_format=torch.channels_last)
        if self.dist.enabled and cfg.sync_bn:
            self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self.net: nn.Module = self.model  # what the training step calls: the model, or DDP around it
        if self.dist.enabled:
            self.net = DistributedDataParallel(self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.ema = self._new_ema()
        self.steps_per_epoch = max(1, len(self.train_split) // cfg.batch_size)
        self.optimizer = build_optimizer(self.model, cfg)
        self.schedule = Schedule(self.optimizer, cfg, self.steps_per_epoch)
        self.generator = torch.Generator().manual_seed(cfg.seed)
        imgs = self.train_split.images
        self.mean, self.std = float(imgs.mean() / 255.0), float(imgs.std() / 255.0)
        warm = resumed_from if resumed_from is not None else init
        if warm is not None:  # a warm start keeps the normalisation its weights were trained with
            self.mean, self.std = warm.mean, warm.std
        self.weight = class_weight_vector(self.train_split.labels, self.num_classes, cfg.class_weights)
        if self.weight is not None:
            self.weight = self.weight.to(self.device)
        self.train_images = torch.from_numpy(imgs).to(self.device)
        self.epoch = 0
        self.stage = "main"
        self.best_acc, self.best_epoch, self.bad_epochs = -1.0, 0, 0
        self.history: list[dict[str, Any]] = []
        self._partial: dict[str, Any] | None = None  # an epoch cut short by a mid-epoch last.pt, to finish on resume
        self._last_save = time.monotonic()
        self._tb: Any = None
        if run_dir is None and self.dist.is_main:
            run_dir = next_run_dir(cfg.project, cfg.name, cfg.model)
        self.run_dir: Path = distributed.broadcast_object(run_dir, self.dist)
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
            if self.online_teachers is not None:  # checked above on resume: the same SHA-256s, perhaps other paths
                (self.run_dir / TEACHER_FILES).write_text(json.dumps(self.online_teachers.files, indent=2))
            if self.teacher_probs is not None:
                for name, array in ((TEACHER_PROBS, self.teacher_probs), (TEACHER_IDS, self.train_split.ids)):
                    if not (self.run_dir / name).exists():  # the ids: also for runs from before they were saved
                        np.save(self.run_dir / name, array)

    def _distilled(self, split: Split, resumed_dir: Path | None) -> Split:
        """``split`` with soft targets: (1 - distill) x its labels + distill x the teachers' mean probabilities,
        computed once and kept in the run folder, from which a resumed run reads them (the same targets, even if
        a teacher file, or the model a shipped name stands for, changed in between)."""
        cfg = self.cfg
        saved_probs = cfg.teacher[0].endswith(".npy")  # --teacher RUN/teacher_probs.npy (a single teacher: config)
        cached = resumed_dir / TEACHER_PROBS if resumed_dir is not None else None
        if cached is not None and cached.exists():
            probs, ids_path = np.load(cached), cached.with_name(TEACHER_IDS)
            ids = np.load(ids_path) if ids_path.exists() else split.ids  # runs from before the ids were saved
            if probs.shape != (len(split), self.num_classes) or not np.array_equal(ids, split.ids):
                raise ConfigError(f"{cached} ({probs.shape} probabilities of the images {TEACHER_IDS} names) is not for "
                                  f"this run's {len(split)} Training images of {self.num_classes} classes: the run's "
                                  f"data changed; delete both files to recompute the teachers' predictions")
        elif saved_probs:
            probs = _reused_teacher_probs(Path(cfg.teacher[0]), split, self.num_classes)
        else:
            teachers = [load_member(t, self.device) for t in cfg.teacher]
            for path, (_, ckpt) in zip(cfg.teacher, teachers):
                if ckpt.classes != list(self.data.classes):
                    raise ConfigError(f"teacher {path}: classes {ckpt.classes} are not the data's {list(self.data.classes)}")
            probs = ensemble_proba(teachers, split.images, tta=cfg.teacher_tta, device=self.device,
                                   progress=self.progress).astype(np.float32)
        self.teacher_probs = probs  # saved in the run folder once it is known (__init__), if not there yet
        labels = split.soft if split.soft is not None else np.eye(self.num_classes, dtype=np.float32)[split.labels]
        soft = (1 - cfg.distill) * labels + cfg.distill * probs
        if self.progress:
            agree = float((probs.argmax(1) == split.labels).mean())
            source = (f"the saved teacher probabilities {cfg.teacher[0]} (" if saved_probs
                      else f"{len(cfg.teacher)} teacher(s) (tta={cfg.teacher_tta}, ")
            tqdm.write(f"distilling {source}weight {cfg.distill}): "
                       f"they agree with {agree:.1%} of the Training labels")
        return replace(split, soft=soft.astype(np.float32))

    def _setup_device(self) -> torch.device:
        cfg, d = self.cfg, self.dist
        if not d.enabled:
            return setup_device(cfg.device, cfg.threads)
        if cfg.batch_size % d.world_size:
            raise ConfigError(f"--batch-size {cfg.batch_size} (the global batch) must be divisible by the "
                             f"{d.world_size} processes")
        if resolve_device(cfg.device).type == "cuda":
            device = setup_device(f"cuda:{d.local_rank}")
            torch.cuda.set_device(device)
            return device
        if cfg.sync_bn:
            raise ConfigError("--sync-bn needs CUDA (PyTorch's SyncBatchNorm does not run on the CPU)")
        return setup_device(cfg.device, cfg.threads or max(1, usable_cores() // d.local_world_size))

    def _input_shape(self, ckpt: Checkpoint | None) -> tuple[int, int]:
        """The model's input side and channels: the config's, else the checkpoint's (resumed, or --init), else the
        registered model's own."""
        own = ckpt if ckpt is not None else model_entry(self.cfg.model)
        return self.cfg.input_size or own.input_size, self.cfg.channels or own.channels

    def _warm_start(self, init: Checkpoint | None) -> None:
        """Load --init's or --pretrained's weights into the new model, and say what was loaded."""
        cfg = self.cfg
        if init is not None and init.model != cfg.model:
            raise ConfigError(f"--init {cfg.init} holds a {init.model}, not a {cfg.model}: pass --model {init.model}")
        if init is not None:
            report = init_from_checkpoint(self.model, init, self.data.classes)
        elif cfg.pretrained:
            report = load_pretrained(self.model, cfg.pretrained)
        else:
            return
        if self.progress:
            tqdm.write(report.summary())

    def _fit(self, x: torch.Tensor) -> torch.Tensor:
        """An augmented batch as the model takes it: scaled by its input size over the data's side (a --crop
        keeps its share), the grey channel repeated for 3-channel models."""
        side = round(x.shape[-1] * self.input_size / self.train_images.shape[-1])
        return fit_input(x, side, self.channels)

    def _new_ema(self) -> AveragedModel | None:
        if not self.cfg.ema:
            return None
        return AveragedModel(self.model, multi_avg_fn=ema_with_warmup(self.cfg.ema), use_buffers=True)

    @property
    def eval_model(self) -> nn.Module:
        """What validation scores and ``best.pt`` holds: the weight average with ``ema``, else the model."""
        return self.ema.module if self.ema is not None else self.model

    # ----- checkpoints -----------------------------------------------------------------------
    def _checkpoint(self, module: nn.Module, **fields: Any) -> Checkpoint:
        """``module``'s weights (on the CPU) with what describes the run, and ``fields``."""
        return Checkpoint(self.cfg.model, list(self.data.classes), self._state_dict_cpu(module), mean=self.mean,
                          std=self.std, input_size=self.input_size, channels=self.channels,
                          config=self.cfg.to_dict(), epoch=self.epoch, stage=self.stage, **fields)

    @staticmethod
    def _state_dict_cpu(module: nn.Module) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}

    def save_best(self, val_acc: float) -> None:
        if not self.dist.is_main:
            return
        self._checkpoint(self.eval_model, val_acc=val_acc).save(self.run_dir / "best.pt")

    def save_last(self, partial: dict[str, Any] | None = None) -> None:
        """Write last.pt: everything an exact resume needs; ``partial``: the epoch under way (its batch order, the
        next step, its sums so far), when written mid-epoch."""
        self._last_save = time.monotonic()
        if not self.dist.is_main:
            return
        ema = {"ema_state_dict": self._state_dict_cpu(self.ema)} if self.ema is not None else {}
        resume = {**ema, "optimizer": self.optimizer.state_dict(), "scheduler": self.schedule.state_dict(),
                  "generator": self.generator.get_state(), **rng_states(self.device), "best_acc": self.best_acc,
                  "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs, "history": self.history,
                  **({"partial": partial} if partial is not None else {})}
        self._checkpoint(self.model, resume=resume).save(self.run_dir / "last.pt")

    def _save_due(self) -> bool:
        minutes = self.cfg.save_minutes
        return minutes > 0 and time.monotonic() - self._last_save >= 60 * minutes

    @classmethod
    def resume(cls, run: str | Path, progress: bool = True, dataset: FERDataset | None = None, **overrides: Any) -> "Trainer":
        """Continue a run from its ``last.pt`` exactly where it left off: after its last epoch, or mid-epoch; a
        finished run in the stage that ``overrides`` extend (:func:`_continued_stage`)."""
        run = Path(run)
        run_dir = run.parent if run.suffix == ".pt" else run
        ckpt = load_checkpoint(run_dir / "last.pt")
        cfg = TrainConfig.from_dict(ckpt.config).resumed(overrides)
        stage = _continued_stage(ckpt, cfg, run_dir)
        trainer = cls(cfg, run_dir=run_dir, dataset=dataset, progress=progress, resumed_from=ckpt)
        trainer.model.load_state_dict(ckpt.state_dict)
        state = ckpt.resume
        if trainer.ema is not None:
            if "ema_state_dict" not in state:
                raise ConfigError(f"{run_dir}: the run has no weight average to resume; leave ema off")
            trainer.ema.load_state_dict(state["ema_state_dict"])
        trainer.optimizer.load_state_dict(state["optimizer"])
        if stage == "hard":
            trainer.schedule = trainer._constant_schedule()
        trainer.schedule.load_state_dict(state["scheduler"])
        trainer.generator.set_state(state["generator"])
        restore_rng_states(state, trainer.device)
        trainer.epoch, trainer.stage = ckpt.epoch, stage
        trainer.best_acc, trainer.best_epoch, trainer.bad_epochs = state["best_acc"], state["best_epoch"], state["bad_epochs"]
        trainer.history = state["history"]
        trainer._partial = state.get("partial")
        trainer._rewrite_metrics()
        return trainer

    # ----- metrics -----------------------------------------------------------------------------
    def _rewrite_metrics(self) -> None:
        if not self.dist.is_main:
            return
        with open(self.run_dir / "metrics.csv", "w", newline="") as f:
            w = csv.DictWriter(f, METRIC_FIELDS)
            w.writeheader()
            w.writerows(self.history)

    def _tensorboard_writer(self) -> Any:
        """A SummaryWriter on ``<run>/tensorboard``; on resume, events from the resumed epoch on are purged."""
        if self._tb is None:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=self.epoch)
        return self._tb

    def _log_epoch(self, row: dict[str, Any]) -> None:
        self.history.append(row)
        if not self.dist.is_main:
            return
        if self.cfg.tensorboard:
            tb = self._tensorboard_writer()
            for key in ("lr", "train_loss", "train_acc", "val_loss", "val_acc", "images_per_s"):
                tb.add_scalar(key.replace("_", "/", 1) if key != "lr" else "lr", row[key], row["epoch"])
            tb.flush()
        path = self.run_dir / "metrics.csv"
        new = not path.exists() or path.stat().st_size == 0
        with open(path, "a", newline="") as f:
            w = csv.DictWriter(f, METRIC_FIELDS)
            if new:
                w.writeheader()
            w.writerow(row)

    # ----- loop --------------------------------------------------------------------------------
    def validate(self) -> tuple[float, float]:
        """Accuracy and loss on the validation split (each process scores a slice; sums are combined)."""
        model = self.eval_model
        distributed.broadcast_buffers(model, self.dist)  # every process evaluates rank 0's model
        part = slice(self.dist.rank, None, self.dist.world_size)
        labels = self.val_split.labels[part]
        probs = predict_proba(model, self.val_split.images[part], self.mean, self.std, device=self.device,
                              input_size=self.input_size, channels=self.channels)
        correct = float((probs.argmax(1) == labels).sum())
        loss_sum = float(-np.log(probs[np.arange(len(labels)), labels].clip(1e-12)).sum())
        correct, loss_sum, n = distributed.all_reduce_sum([correct, loss_sum, float(len(labels))], self.dist, self.device)
        return correct / n, loss_sum / n

    def train_epoch(self, split: Split, index_pool: np.ndarray | None = None, desc: str = "") -> dict[str, float]:
        cfg = self.cfg
        self.model.train()
        if cfg.freeze_epochs:  # the head alone for the first epochs: the backbone's weights and statistics held
            set_backbone_frozen(self.model, self.stage == "main" and self.epoch < cfg.freeze_epochs)
        partial, self._partial = self._partial, None
        if partial is not None:  # resumed mid-epoch: the same batch order, from the next step, with the sums so far
            # (rank 0's sums under torchrun: the weights resume exactly, the cut epoch's train loss/acc nearly)
            order, first, before, lr = partial["order"], partial["step"], partial["elapsed"], partial["lr"]
            loss_sum, correct, seen = partial["sums"]
        else:
            pool = torch.from_numpy(index_pool) if index_pool is not None else None
            order = torch.randperm(len(pool) if pool is not None else len(split), generator=self.generator)
            if pool is not None:
                order = pool[order]
            first, before, lr = 0, 0.0, self.optimizer.param_groups[0]["lr"]  # the rate the epoch starts at
            loss_sum = correct = seen = 0.0
        steps = max(1, len(order) // cfg.batch_size)
        images = self.train_images if split is self.train_split else torch.from_numpy(split.images).to(self.device)
        lo, hi = self.dist.rank * cfg.batch_size // self.dist.world_size, (self.dist.rank + 1) * cfg.batch_size // self.dist.world_size
        start = time.perf_counter()
        bar = tqdm(range(first, steps), desc=desc, unit="batch", leave=False, disable=not self.progress,
                   mininterval=1.0, initial=first, total=steps)
        for step in bar:
            idx = order[step * cfg.batch_size:(step + 1) * cfg.batch_size]
            x = to_input(images[idx.to(self.device)], self.mean, self.std, self.device)
            x = self._fit(augment_batch(x, cfg.augment, self.generator))
            online = self.online_teachers is not None  # then the teachers' share is mixed in below, then smoothed
            t = targets_for(split, idx, self.num_classes, 0.0 if online else cfg.label_smoothing).to(self.device)
            if cfg.mixup > 0:
                x, t = mixup(x, t, cfg.mixup, self.generator)
            if self.dist.enabled:  # every process built the same global batch; this one trains on its slice
                x, t = x[lo:hi], t[lo:hi]
            if online:
                pixels = (x[:, :1].float() * self.std + self.mean) * 255.0  # the grey faces as the student sees them
                t = (1 - cfg.distill) * t + cfg.distill * self.online_teachers(pixels)
                if cfg.label_smoothing:
                    t = t * (1 - cfg.label_smoothing) + cfg.label_smoothing / self.num_classes
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=cfg.amp):
                logits = self.net(x.contiguous(memory_format=torch.channels_last))
            adjusted = logits.float() + self.logit_offsets if self.logit_offsets is not None else logits.float()
            loss = soft_cross_entropy(adjusted, t, self.weight) + kernel_l2_penalty(self.l2_terms)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.schedule.step_batch()
            if self.ema is not None:
                self.ema.update_parameters(self.model)
            if not math.isfinite(loss.item()):
                raise DivergedError(f"loss became {loss.item()} at epoch {self.epoch + 1}; lower --lr")
            b = len(t)
            loss_sum += loss.item() * b
            correct += (logits.argmax(1) == t.argmax(1)).sum().item()
            seen += b
            if step % 10 == 0:
                elapsed = before + time.perf_counter() - start
                bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}", img_s=f"{seen / elapsed:.0f}")
            if step + 1 < steps and self._save_due():
                self.save_last(partial={"order": order, "step": step + 1, "sums": [loss_sum, correct, seen],
                                        "elapsed": before + time.perf_counter() - start, "lr": lr})
        elapsed = before + time.perf_counter() - start
        loss_sum, correct, seen = distributed.all_reduce_sum([loss_sum, correct, seen], self.dist, self.device)
        return {"lr": lr, "train_loss": loss_sum / seen, "train_acc": correct / seen, "images_per_s": seen / elapsed,
                "epoch_s": elapsed}

    def _run_stage_epoch(self, pool: np.ndarray | None, total: int) -> tuple[float, float]:
        stats = self.train_epoch(self.train_split, pool, desc=f"{self.stage} epoch {self.epoch + 1}/{total}")
        val_acc, val_loss = self.validate()
        self.epoch += 1
        row = {"epoch": self.epoch, "stage": self.stage, **stats, "val_loss": val_loss, "val_acc": val_acc}
        self._log_epoch({k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()})
        improved = val_acc > self.best_acc
        if improved:
            self.best_acc, self.best_epoch, self.bad_epochs = val_acc, self.epoch, 0
            self.save_best(val_acc)
        else:
            self.bad_epochs += 1
        if self.progress:
            eta = (total - self.epoch) * float(np.mean([r["epoch_s"] for r in self.history[-3:]]))
            tqdm.write(f"{self.stage} epoch {self.epoch}/{total}: loss {stats['train_loss']:.4f} acc {stats['train_acc']:.4f}"
                       f" | val loss {val_loss:.4f} acc {val_acc:.4f}{' *' if improved else ''}"
                       f" | {stats['images_per_s']:.0f} img/s, {stats['epoch_s']:.0f} s, ETA {eta / 60:.1f} min")
        return val_acc, val_loss

    def fit(self) -> TrainResult:
        cfg = self.cfg
        if self.progress and self.epoch == 0:
            tqdm.write(f"training {cfg.model} ({count_parameters(self.model) / 1e6:.2f}M parameters) on {self.device}: "
                       f"{len(self.train_split)} train / {len(self.val_split)} val images -> {self.run_dir}")
        stopped = False
        while self.stage == "main" and self.epoch < cfg.epochs and not _patience_spent(cfg, self.bad_epochs):
            val_acc, val_loss = self._run_stage_epoch(None, cfg.epochs)
            self.schedule.step_epoch(val_acc, val_loss)
            if _patience_spent(cfg, self.bad_epochs):
                stopped = True
                if self.progress:
                    tqdm.write(f"early stop: no better validation accuracy for {cfg.patience} epochs")
                break
            self.save_last()
        if cfg.finetune_hard and self.stage == "main":
            self._start_hard_finetune()
        if self.stage == "hard":
            total = self._main_epochs + cfg.finetune_hard
            while self.epoch < total:
                pool = None if self._partial is not None else self._hard_pool()  # a cut epoch keeps its own
                self._run_stage_epoch(pool, total)
                self.save_last()
        self.stage = "done"
        self.save_last()
        if self._tb is not None:
            self._tb.close()
        if self._own_group:
            distributed.shutdown()
        return TrainResult(self.run_dir, self.best_epoch, self.best_acc, self.epoch, stopped)

    # ----- hard-example fine-tuning (Best Actor project), on Training data only -------------------
    @property
    def _main_epochs(self) -> int:
        return _main_stage_epochs(self.history, self.epoch)

    def _start_hard_finetune(self) -> None:
        distributed.barrier(self.dist)  # rank 0 has written best.pt
        self.model.load_state_dict(load_checkpoint(self.run_dir / "best.pt").state_dict)
        self.ema = self._new_ema()  # a new average, from the best weights
        self.optimizer = build_optimizer(self.model, self.cfg, lr=self.cfg.learning_rate * 0.1)
        self.schedule = self._constant_schedule()
        self.stage = "hard"
        self.save_last()

    def _constant_schedule(self) -> Schedule:
        return Schedule(self.optimizer, TrainConfig.from_dict({**self.cfg.to_dict(), "schedule": "none"}), 1)

    def _hard_pool(self) -> np.ndarray:
        """Training images the current model gets wrong, plus as many random others as replay."""
        probs = predict_proba(self.model, self.train_split.images, self.mean, self.std, device=self.device,
                              input_size=self.input_size, channels=self.channels)
        wrong = np.flatnonzero(probs.argmax(1) != self.train_split.labels)
        right = np.setdiff1d(np.arange(len(self.train_split)), wrong)
        rng = np.random.default_rng(int(torch.randint(2**31 - 1, (1,), generator=self.generator)))
        replay = rng.choice(right, size=min(len(right), len(wrong)), replace=False)
        return np.concatenate([wrong, replay])


class OnlineTeachers:
    """Teachers that score each training batch as the student sees it (``teacher_online``): checkpoints (in eval
    mode on the training device) or ONNX models (ONNX Runtime on the CPU), their probabilities averaged over the
    members and the TTA views of each augmented face."""

    def __init__(self, members: list[str], classes: list[str], tta: str, device: torch.device) -> None:
        self.tta, self.members = tta, [load_member(m, device) for m in members]
        self.files: list[dict[str, str]] = []
        for name, (model, ckpt) in zip(members, self.members):
            if ckpt.classes != classes:
                raise ConfigError(f"teacher {name}: classes {ckpt.classes} are not the data's {classes}")
            path = Path(name) / "best.pt" if Path(name).is_dir() else Path(name)  # a checkpoint or run folder
            path = model.path if not isinstance(model, nn.Module) else path  # an ONNX file, or a shipped name's
            self.files.append({"teacher": name, "file": str(path.resolve()), "sha256": file_sha256(path)})

    def check_unchanged(self, record: Path) -> None:
        """Refuse to resume towards other teachers than the run started with (a shipped name's file, say)."""
        if not record.exists():
            return
        before = [f["sha256"] for f in json.loads(record.read_text())]
        if before != [f["sha256"] for f in self.files]:
            raise ConfigError(f"the teachers' files are not those the run started with (SHA-256 {before} in {record}, "
                              f"{[f['sha256'] for f in self.files]} now); a resumed run must learn from the same "
                              "teachers: name their files with --teacher if they moved")

    @torch.no_grad()
    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        """Grey faces (N, 1, H, W) of 0..255 floats -> the teachers' mean probabilities (N, C), on their device."""
        probs = []
        for model, ckpt in self.members:
            if isinstance(model, nn.Module):
                x = fit_input((pixels / 255.0 - ckpt.mean) / ckpt.std, ckpt.input_size, ckpt.channels)
                probs.append(views_proba(model, x, self.tta))
            else:
                faces = pixels[:, 0].float().cpu().numpy()
                probs.append(torch.from_numpy(onnx_proba(model, faces, tta=self.tta)).to(pixels.device))
        return torch.stack(probs).mean(0)


def rng_states(device: torch.device) -> dict[str, torch.Tensor]:
    """The global random states a resumed run restores: the CPU's, and on CUDA the training GPU's (dropout's)."""
    gpu = {"cuda_rng": torch.cuda.get_rng_state(device)} if device.type == "cuda" else {}
    return {"torch_rng": torch.get_rng_state(), **gpu}


def restore_rng_states(states: dict[str, Any], device: torch.device) -> None:
    """Set the states :func:`rng_states` saved (from a file without the GPU's, the CPU's alone)."""
    torch.set_rng_state(states["torch_rng"])
    if device.type == "cuda" and "cuda_rng" in states:
        torch.cuda.set_rng_state(states["cuda_rng"], device)


def _main_stage_epochs(history: list[dict[str, Any]], epoch: int) -> int:
    """The epochs of a run's main stage, from its history (all ``epoch`` of them before hard fine-tuning)."""
    return int(next((r["epoch"] for r in reversed(history) if r["stage"] == "main"), epoch))


def _patience_spent(cfg: TrainConfig, bad_epochs: int) -> bool:
    """Whether early stopping ends the main stage after ``bad_epochs`` epochs without a better val accuracy."""
    return bool(cfg.patience) and bad_epochs >= cfg.patience


def _continued_stage(ckpt: Checkpoint, cfg: TrainConfig, run_dir: Path) -> str:
    """The stage that a run resumed from ``ckpt`` with ``cfg`` goes on in: its own; for a finished run, the one that
    ``cfg`` extends: main (epochs beyond those run, or patience left after an early stop; then hard fine-tuning if
    asked for) or, after hard fine-tuning, hard (more of its epochs). A ConfigError when it extends neither."""
    if ckpt.stage != "done":
        return ckpt.stage
    main = _main_stage_epochs(ckpt.resume["history"], ckpt.epoch)
    hard = ckpt.epoch - main
    if hard and cfg.finetune_hard > hard:
        return "hard"
    if not hard and (cfg.finetune_hard or (main < cfg.epochs and not _patience_spent(cfg, ckpt.resume["bad_epochs"]))):
        return "main"
    how = (f"more --finetune-hard epochs than its {hard}" if hard else "more --epochs (not under --schedule cosine or "
           "onecycle), a longer --patience after an early stop, or --finetune-hard")
    raise ConfigError(f"{run_dir}: the run is finished ({main} main epochs, {hard} of hard fine-tuning); resume it "
                      f"with {how}, or start a new run from its weights with --init {run_dir / 'best.pt'}")


def _reused_teacher_probs(path: Path, split: Split, num_classes: int) -> np.ndarray:
    """An earlier run's saved teacher probabilities (``--teacher RUN/teacher_probs.npy``), after checking that they
    are probabilities for ``num_classes`` classes and that the ids saved beside them are ``split``'s, in order."""
    ids_path = path.with_name(TEACHER_IDS)
    try:
        probs, ids = np.load(path, allow_pickle=False), np.load(ids_path, allow_pickle=False)
    except FileNotFoundError as exc:
        raise ConfigError(f"teacher {path}: {exc.filename} not found (runs save {TEACHER_PROBS} and {TEACHER_IDS} "
                          "side by side)") from None
    except ValueError as exc:
        raise ConfigError(f"teacher {path}: not a saved array ({exc})") from None
    if (probs.ndim != 2 or probs.shape[1] != num_classes or not np.issubdtype(probs.dtype, np.floating)
            or not np.isfinite(probs).all() or (probs < 0).any() or not np.allclose(probs.sum(1), 1, atol=1e-3)):
        raise ConfigError(f"teacher {path}: not probabilities of {num_classes} classes, one row per Training image")
    if ids.shape != (len(probs),) or not np.array_equal(ids, split.ids):
        raise ConfigError(f"teacher {path}: its run's Training images are not this run's ({len(probs)} against "
                          f"{len(split)}, or other rows): use the same --data, --labels, --limit and split settings")
    return probs.astype(np.float32)


def train(resume: str | Path | None = None, dataset: FERDataset | None = None, progress: bool = True,
          recipe: str | None = None, **config: Any) -> TrainResult:
    """Train a model (``ferkit.train(model="resnet_s", data="fer2013.csv", epochs=30, ...)``),
    or continue one with ``resume=RUN_DIR``. Keyword arguments are :class:`TrainConfig` fields (an unknown one is a
    ConfigError); a resumed run takes only those in :data:`~ferkit.training.config.RESUMABLE`. ``recipe`` starts
    from a seed recipe's settings (:mod:`~ferkit.training.recipes`), each keyword argument overriding one."""
    if resume is not None:
        check_resume_changes(config)
        return Trainer.resume(resume, progress=progress, dataset=dataset, **config).fit()
    if recipe is not None:
        from .recipes import merged

        config = merged(recipe, config)
    return Trainer(TrainConfig.from_dict(config), dataset=dataset, progress=progress).fit()

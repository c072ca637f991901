"""Optimizers and learning-rate schedules from a :class:`TrainConfig`, with Keras' semantics where the seed recipes
need them: plain SGD (momentum 0, no Nesterov), ``ReduceLROnPlateau`` on the validation loss (factor, patience,
``min_lr``, ``min_delta=1e-4``) and ``ExponentialDecay`` at every step."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from .config import TrainConfig
from .warmstart import split_parameters


def build_optimizer(model: nn.Module, cfg: TrainConfig, lr: float | None = None) -> torch.optim.Optimizer:
    """The optimizer of ``cfg`` at ``lr`` (default: the config's); with ``backbone_lr_scale`` the parameters outside
    the head get ``lr * backbone_lr_scale`` (groups: backbone decay, no decay, then the head's)."""
    lr = lr if lr is not None else cfg.learning_rate
    parts = [(list(model.parameters()), lr)]
    if cfg.backbone_lr_scale != 1:
        backbone, head = split_parameters(model)
        parts = [(backbone, lr * cfg.backbone_lr_scale), (head, lr)]
    groups = []
    for params, group_lr in parts:  # no weight decay on biases and norms
        groups += [{"params": [p for p in params if p.ndim > 1], "weight_decay": cfg.weight_decay, "lr": group_lr},
                   {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0, "lr": group_lr}]
    if cfg.optimizer == "sgd":
        nesterov = cfg.momentum > 0 and not cfg.no_nesterov
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, nesterov=nesterov)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=lr)
    return torch.optim.AdamW(groups, lr=lr)


class Schedule:
    """One wrapper over the torch schedulers: ``step_batch()`` after every optimizer step,
    ``step_epoch(val_acc, val_loss)`` after every epoch; each forwards to the scheduler that wants it."""

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int) -> None:
        total = cfg.epochs * steps_per_epoch
        warmup = int(cfg.warmup_epochs * steps_per_epoch)
        S = torch.optim.lr_scheduler
        self.per_batch = cfg.schedule in ("cosine", "onecycle", "none") or (cfg.schedule == "exponential"
                                                                             and cfg.decay_steps > 0)
        self.monitor = cfg.plateau_monitor
        if cfg.schedule == "cosine":
            main = S.CosineAnnealingLR(optimizer, T_max=max(1, total - warmup))
            self.sched = S.SequentialLR(optimizer, [S.LinearLR(optimizer, 0.01, 1.0, warmup), main], [warmup]) if warmup else main
        elif cfg.schedule == "onecycle":
            if total < 3:  # it rises over at least 2.5 steps, then falls
                raise ConfigError(f"--schedule onecycle needs 3 or more optimizer steps, not {total} ({cfg.epochs} "
                                  f"epoch(s) of {steps_per_epoch}): more --epochs, a smaller --batch-size, or another "
                                  "--schedule")
            self.sched = S.OneCycleLR(optimizer, max_lr=[g["lr"] for g in optimizer.param_groups], total_steps=total,
                                      pct_start=max(warmup / total if warmup else 0.3, 2.5 / total))
        elif cfg.schedule == "plateau":  # Keras cuts at the N-th epoch without improvement, PyTorch after the N-th
            self.sched = S.ReduceLROnPlateau(optimizer, mode="min" if self.monitor == "val_loss" else "max",
                                             factor=cfg.plateau_factor, patience=max(0, cfg.plateau_patience - 1),
                                             threshold=1e-4, threshold_mode="abs", min_lr=cfg.min_lr)
        elif cfg.schedule == "exponential" and cfg.decay_steps:
            gamma, steps = cfg.gamma, cfg.decay_steps
            self.sched = S.LambdaLR(optimizer, lambda step: gamma ** (step / steps))
        elif cfg.schedule == "exponential":
            self.sched = S.ExponentialLR(optimizer, gamma=cfg.gamma)
        else:
            self.sched = S.LambdaLR(optimizer, lambda _: 1.0)

    def step_batch(self) -> None:
        if self.per_batch:
            self.sched.step()

    def step_epoch(self, val_acc: float, val_loss: float) -> None:
        if isinstance(self.sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.sched.step(val_loss if self.monitor == "val_loss" else val_acc)
        elif not self.per_batch:
            self.sched.step()

    def state_dict(self) -> dict:
        return self.sched.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.sched.load_state_dict(state)

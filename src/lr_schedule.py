"""Learning-rate schedule: linear warmup, then multistep decay or cosine annealing, as one value per optimizer update.

The array is handed to the optimizer as a dynamic learning rate: update ``i`` (the optimizer's ``global_step``) uses
``lr[i]``. With gradient accumulation one update spans ``accumulate_step`` batches, so ``steps_per_epoch`` counts
updates, not batches.
"""
import math
from typing import Sequence

import numpy as np

from src.model_utils.config import Config


def regular_lr(step: int, base_lr: float, total_steps: int, steps_per_epoch: int, warmup_step: int,
               lr_type: str, lr_steps: Sequence[int], min_lr: float) -> float:
    """Learning rate of update ``step`` (0-based) without the warmup factor.

    multistep: ``base_lr`` divided by 10 once for every epoch boundary in ``lr_steps`` already reached
    (epoch ``e`` in ``lr_steps`` starts at update ``e * steps_per_epoch``).
    cosine: ``base_lr`` at the end of warmup, decreasing along half a cosine to ``min_lr`` at the last update.
    """
    if lr_type == "multistep":
        decays = sum(1 for epoch in lr_steps if step >= epoch * steps_per_epoch)
        return base_lr * 0.1 ** decays
    if lr_type == "cosine":
        span = max(total_steps - 1 - warmup_step, 1)
        progress = min(max(step - warmup_step, 0) / span, 1.0)
        return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"lr_type: expected 'multistep' or 'cosine', got '{lr_type}'")


def build_lr_schedule(base_lr: float, total_steps: int, steps_per_epoch: int, warmup_step: int,
                      warmup_ratio: float, lr_type: str, lr_steps: Sequence[int], min_lr: float) -> np.ndarray:
    """Per-update learning rates, float32 array of length ``total_steps``.

    During the first ``warmup_step`` updates the regular rate is multiplied by a factor growing linearly from
    ``warmup_ratio`` (update 0) towards 1 (update ``warmup_step``):
    ``warmup_ratio + (1 - warmup_ratio) * i / warmup_step``.
    """
    if total_steps <= 0:
        raise ValueError(f"lr schedule: total_steps must be > 0, got {total_steps}")
    if steps_per_epoch <= 0:
        raise ValueError(f"lr schedule: steps_per_epoch must be > 0, got {steps_per_epoch}")
    rates = np.empty(total_steps, dtype=np.float32)
    for step in range(total_steps):
        rate = regular_lr(step, base_lr, total_steps, steps_per_epoch, warmup_step, lr_type, lr_steps, min_lr)
        if step < warmup_step:
            rate *= warmup_ratio + (1.0 - warmup_ratio) * step / warmup_step
        rates[step] = rate
    return rates


def get_lr(cfg: Config, updates_per_epoch: int) -> np.ndarray:
    """The schedule of ``cfg`` (lr, min_lr, warmup_step, warmup_ratio, lr_type, lr_steps, epoch_size)."""
    return build_lr_schedule(
        base_lr=cfg.lr,
        total_steps=cfg.epoch_size * updates_per_epoch,
        steps_per_epoch=updates_per_epoch,
        warmup_step=cfg.warmup_step,
        warmup_ratio=cfg.warmup_ratio,
        lr_type=cfg.lr_type,
        lr_steps=cfg.lr_steps,
        min_lr=cfg.min_lr,
    )

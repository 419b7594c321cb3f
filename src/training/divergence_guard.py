"""The divergence guard: rejects steps whose loss is not finite or jumps far above its running mean, and rolls the
run back to its last checkpoint with a lower learning rate when such steps repeat.

A rejected step changes no weight, optimizer state or accumulated gradient (the bound is passed into the compiled
step, which skips the update); BatchNorm statistics in training mode, updated by the forward pass itself, are the
exception. After ``max_rejected`` rejected steps in a row the run rolls back: every parameter of the training cell
(weights, BatchNorm statistics, optimizer moments, loss scale) is restored to its value at the last checkpoint and
the learning rate is multiplied by ``lr_factor``; the data stream goes on where it is. The ``max_rollbacks + 1``-th
rollback stops the run with :class:`DivergenceError`.
"""
import math
from typing import Dict, Optional

import numpy as np
from mindspore import Tensor, nn

from src.callback import NonFiniteLossError
from src.model_utils.config import Config

SCHEDULE_PARAMETERS = ("learning_rate", "global_step")  # the lr schedule and its position are not rolled back


class DivergenceError(NonFiniteLossError):
    """Training diverged again after the allowed rollbacks."""


class DivergenceGuard:
    """Host-side bookkeeping of the guard (``cfg.divergence_guard``): :meth:`bound` is the highest acceptable total
    loss of the next step, :meth:`accept` and :meth:`reject` record what happened and say what to do next."""

    def __init__(self, guard_cfg: Config, rollbacks: int = 0) -> None:
        self.enabled = bool(guard_cfg.enabled)
        self.loss_jump = float(guard_cfg.loss_jump)
        self.momentum = float(guard_cfg.running_momentum)
        self.warmup_steps = int(guard_cfg.warmup_steps)
        self.max_rejected = int(guard_cfg.max_rejected)
        self.lr_factor = float(guard_cfg.lr_factor)
        self.max_rollbacks = int(guard_cfg.max_rollbacks)
        self.rollbacks = rollbacks
        self.running_mean: Optional[float] = None
        self.accepted = 0
        self.rejected_in_a_row = 0

    @property
    def lr_scale(self) -> float:
        """Factor of the scheduled learning rate after the rollbacks so far."""
        return self.lr_factor ** self.rollbacks

    def bound(self) -> float:
        """Highest total loss the next step may have: ``loss_jump`` x running mean once ``warmup_steps`` steps were
        accepted, else inf (the compiled step still rejects a non-finite loss)."""
        if not self.enabled or self.running_mean is None or self.accepted < self.warmup_steps:
            return math.inf
        return self.loss_jump * self.running_mean

    def accept(self, total_loss: float) -> None:
        """Record an accepted step's total loss."""
        self.accepted += 1
        self.rejected_in_a_row = 0
        self.running_mean = total_loss if self.running_mean is None else \
            self.momentum * self.running_mean + (1.0 - self.momentum) * total_loss

    def reject(self) -> str:
        """Record a rejected step: 'skip' (go on), 'rollback' (restore the last checkpoint, lower the lr) or 'stop'."""
        self.rejected_in_a_row += 1
        if self.rejected_in_a_row < self.max_rejected:
            return "skip"
        self.rejected_in_a_row = 0
        self.rollbacks += 1
        return "stop" if self.rollbacks > self.max_rollbacks else "rollback"


class ParameterSnapshot:
    """Host copy of a cell's parameters, to restore them after a rollback (the learning-rate schedule and the
    optimizer's step counter excepted)."""

    def __init__(self, cell: nn.Cell) -> None:
        self.values: Dict[str, np.ndarray] = {}
        self.take(cell)

    def take(self, cell: nn.Cell) -> None:
        """Copy every parameter's current value."""
        self.values = {parameter.name: parameter.asnumpy().copy() for parameter in cell.get_parameters()
                       if parameter.name not in SCHEDULE_PARAMETERS}

    def restore(self, cell: nn.Cell) -> None:
        """Write the copied values back into ``cell``."""
        for parameter in cell.get_parameters():
            if parameter.name in self.values:
                parameter.set_data(Tensor(self.values[parameter.name], parameter.dtype))


def scale_learning_rate(optimizer: nn.Optimizer, schedule: np.ndarray, scale: float) -> None:
    """Set the optimizer's per-update learning rates (its ``learning_rate`` parameter) to ``schedule * scale``."""
    parameter = next(parameter for parameter in optimizer.get_parameters()
                     if parameter.name == SCHEDULE_PARAMETERS[0])
    parameter.set_data(Tensor(np.asarray(schedule, np.float32) * np.float32(scale)))

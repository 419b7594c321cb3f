"""Training hooks: the log (model zoo format), loss averaging, per-step and per-epoch CSV files, checkpoints.

Log lines look like ``[2023-10-18T17:08:27.572] INFO: epoch: 1, step: 100, loss_rpn_cls: 0.052311, ...,
loss: 3.359563, lr: 0.004016, step_time: 512.3 ms`` (losses averaged over the last ``log_interval`` steps).
Checkpoints are written to a temporary name and renamed, so a crash never leaves a truncated ``.ckpt``; they also hold
the training state (``train_state.*``) and the config's ``coco_classes`` (``model.coco_classes``, a JSON list), which
weight loading ignores.
Only rank 0 writes files; the other ranks log warnings to the console.
"""
import csv
import json
import logging
import math
import os
import re
import sys
from datetime import datetime
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import mindspore as ms
import numpy as np
from mindspore import nn

from src.network_define import LOSS_NAMES

LOGGER_NAME = "ms_rcnn"
CHECKPOINT_PREFIX = "msrcnn"
PERIODIC_PATTERN = re.compile(rf"^{CHECKPOINT_PREFIX}-(\d+)_(\d+)\.ckpt$")
BEST_PATTERN = re.compile(rf"^{CHECKPOINT_PREFIX}-best-e(\d+)-segm([0-9.]+)\.ckpt$")
STEP_COLUMNS = ["epoch", "step", "global_step", *LOSS_NAMES, "loss", "lr", "loss_scale", "step_time_ms"]
EPOCH_COLUMNS = ["epoch", "global_step", *LOSS_NAMES, "loss", "bbox_mAP", "seg_mAP", "epoch_time_s"]
CHECKPOINT_STATE_KEYS = ("epoch", "step", "global_step", "rollbacks")
STATE_PREFIX = "train_state."
CLASSES_KEY = "model.coco_classes"


class NonFiniteLossError(RuntimeError):
    """A loss became inf or NaN; training stops and the last written checkpoint is the last good one."""


class IsoTimeFormatter(logging.Formatter):
    """``[2023-10-18T17:08:27.572] INFO: message``."""

    def __init__(self) -> None:
        super().__init__("[%(asctime)s] %(levelname)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: Optional[str] = None) -> str:
        return datetime.fromtimestamp(record.created).isoformat(timespec="milliseconds")


def setup_logger(log_file: Optional[Path], rank: int = 0) -> logging.Logger:
    """The project logger: INFO to stdout and ``log_file`` on rank 0, WARNING and above to stdout on other ranks."""
    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    logger.setLevel(logging.INFO)
    logger.propagate = False
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(IsoTimeFormatter())
    console.setLevel(logging.INFO if rank == 0 else logging.WARNING)
    logger.addHandler(console)
    if log_file is not None and rank == 0:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(log_file, encoding="utf-8")
        file_handler.setFormatter(IsoTimeFormatter())
        logger.addHandler(file_handler)
    return logger


def format_step_line(epoch: int, step: int, losses: Dict[str, float], lr: float, step_time_ms: float,
                     overflow_steps: int = 0) -> str:
    """One training log line: every loss component, then the total, lr and mean step time (ms)."""
    parts = [f"epoch: {epoch}", f"step: {step}"]
    parts += [f"{name}: {losses[name]:.6f}" for name in LOSS_NAMES]
    parts += [f"loss: {losses['loss']:.6f}", f"lr: {lr:.6f}", f"step_time: {step_time_ms:.1f} ms"]
    if overflow_steps:
        parts.append(f"overflow_steps: {overflow_steps}")
    return ", ".join(parts)


class LossAverager:
    """Running means of the six losses and their total over a logging interval and over the epoch."""

    def __init__(self) -> None:
        self.interval_sum = np.zeros(len(LOSS_NAMES) + 1)
        self.interval_count = 0
        self.epoch_sum = np.zeros(len(LOSS_NAMES) + 1)
        self.epoch_count = 0

    def add(self, losses: Sequence[float], total: float) -> None:
        """Add one step's six losses (LOSS_NAMES order) and total loss."""
        values = np.append(np.asarray(losses, dtype=np.float64), total)
        self.interval_sum += values
        self.interval_count += 1
        self.epoch_sum += values
        self.epoch_count += 1

    @staticmethod
    def _as_dict(sums: np.ndarray, count: int) -> Dict[str, float]:
        means = sums / max(count, 1)
        return {**{name: float(value) for name, value in zip(LOSS_NAMES, means)}, "loss": float(means[-1])}

    def pop_interval(self) -> Dict[str, float]:
        """Means since the previous call (or the epoch start); resets the interval."""
        means = self._as_dict(self.interval_sum, self.interval_count)
        self.interval_sum[:] = 0
        self.interval_count = 0
        return means

    def pop_epoch(self) -> Dict[str, float]:
        """Means over the epoch; resets everything."""
        means = self._as_dict(self.epoch_sum, self.epoch_count)
        self.__init__()
        return means


def check_finite(total: float, losses: Sequence[float], epoch: int, step: int, last_checkpoint: Optional[Path]) -> None:
    """Raise :class:`NonFiniteLossError` naming the non-finite losses, the step and the last good checkpoint."""
    if math.isfinite(total) and all(math.isfinite(value) for value in losses):
        return
    bad = [f"{name}={value}" for name, value in zip(LOSS_NAMES, losses) if not math.isfinite(value)]
    where = str(last_checkpoint) if last_checkpoint is not None else "none written yet"
    raise NonFiniteLossError(
        f"non-finite loss at epoch {epoch}, step {step}: loss={total} ({', '.join(bad) or 'sum overflowed'}). "
        f"Training stopped; last good checkpoint: {where}. Lower lr, lengthen warmup_step, set grad_clip "
        f"or dynamic_loss_scale, and check the data (python -m src.tools.check_dataset).")


class CsvLog:
    """Appends rows with fixed ``columns`` to ``path`` (header written when the file is new)."""

    def __init__(self, path: Path, columns: Sequence[str]) -> None:
        self.path = Path(path)
        self.columns = list(columns)
        if not self.path.exists():
            with open(self.path, "w", newline="", encoding="utf-8") as stream:
                csv.writer(stream).writerow(self.columns)

    def append(self, row: Dict[str, object]) -> None:
        """Write one row; missing columns are left empty, floats written with 6 significant decimals."""
        unknown = set(row) - set(self.columns)
        if unknown:
            raise KeyError(f"{self.path}: unknown columns {sorted(unknown)}; expected {self.columns}")
        values = [self._format(row.get(column, "")) for column in self.columns]
        with open(self.path, "a", newline="", encoding="utf-8") as stream:
            csv.writer(stream).writerow(values)

    @staticmethod
    def _format(value: object) -> object:
        return f"{value:.6g}" if isinstance(value, float) else value


def atomic_save_checkpoint(cell: nn.Cell, path: Path, state: Dict[str, int],
                           class_names: Sequence[str] = ()) -> Path:
    """Save every parameter of ``cell`` plus ``state`` (epoch, step, global_step, stored as ``train_state.<key>``) and
    ``class_names`` (when given, as a JSON list under ``model.coco_classes``) to ``path`` via a temporary file."""
    path = Path(path)
    temporary = path.with_name(f".tmp-{path.name}")
    extra: Dict[str, object] = {f"{STATE_PREFIX}{key}": int(value) for key, value in state.items()}
    if class_names:
        extra[CLASSES_KEY] = json.dumps([str(name) for name in class_names])
    ms.save_checkpoint(cell, str(temporary), append_dict=extra)
    os.replace(temporary, path)
    return path


def read_checkpoint_state(param_dict: Dict[str, ms.Parameter]) -> Dict[str, int]:
    """(epoch, step, global_step, rollbacks) stored by :func:`atomic_save_checkpoint`; zeros when absent (e.g.
    pretrained weights, or rollbacks in checkpoints written before they were counted)."""
    return {key: int(param_dict[f"{STATE_PREFIX}{key}"].asnumpy()) if f"{STATE_PREFIX}{key}" in param_dict else 0
            for key in CHECKPOINT_STATE_KEYS}


def read_checkpoint_classes(checkpoint_path: Path) -> Optional[List[str]]:
    """The ``coco_classes`` stored in a checkpoint by :func:`atomic_save_checkpoint`, or None when it has none (older
    checkpoints, pretrained weights). Only that entry is loaded. Raises ValueError naming the file when the entry is
    not a JSON list of strings."""
    try:
        entries = ms.load_checkpoint(str(checkpoint_path), choice_func=lambda name: name == CLASSES_KEY)
    except ValueError as error:
        if "empty after filter" in str(error):  # MindSpore's way of saying the entry is absent
            return None
        raise
    try:
        names = json.loads(str(entries[CLASSES_KEY]))
    except json.JSONDecodeError:
        names = None
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise ValueError(f"{checkpoint_path}: entry '{CLASSES_KEY}' should be a JSON list of class names, got "
                         f"{str(entries[CLASSES_KEY])[:80]!r}")
    return names


def periodic_checkpoints(checkpoint_dir: Path) -> List[Tuple[int, int, Path]]:
    """(epoch, step, path) of the periodic checkpoints ``msrcnn-<epoch>_<step>.ckpt`` in a folder, oldest first."""
    found = []
    for path in Path(checkpoint_dir).iterdir() if Path(checkpoint_dir).is_dir() else []:
        match = PERIODIC_PATTERN.match(path.name)
        if match:
            found.append((int(match.group(1)), int(match.group(2)), path))
    return sorted(found)


def latest_checkpoint(checkpoint_dir: Path) -> Optional[Path]:
    """The newest periodic checkpoint of a folder, or None."""
    found = periodic_checkpoints(checkpoint_dir)
    return found[-1][2] if found else None


class CheckpointManager:
    """Periodic checkpoints in ``checkpoint_dir`` (``msrcnn-<epoch>_<step>.ckpt``, newest ``keep_max`` kept) and best
    checkpoints by segm mAP in ``best_dir`` (``msrcnn-best-e<epoch>-segm<mAP>.ckpt``, top ``keep_best_max`` kept).
    Each checkpoint stores ``class_names`` (the config's ``coco_classes``) when given."""

    def __init__(self, checkpoint_dir: Path, best_dir: Path, keep_max: int, keep_best_max: int,
                 class_names: Sequence[str] = ()) -> None:
        self.checkpoint_dir = Path(checkpoint_dir)
        self.best_dir = Path(best_dir)
        self.keep_max = keep_max
        self.keep_best_max = keep_best_max
        self.class_names = tuple(class_names)
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        self.best_dir.mkdir(parents=True, exist_ok=True)

    def periodic(self) -> List[Tuple[int, int, Path]]:
        """(epoch, step, path) of the periodic checkpoints, oldest first."""
        return periodic_checkpoints(self.checkpoint_dir)

    def best(self) -> List[Tuple[float, int, Path]]:
        """(segm mAP, epoch, path) of the best checkpoints, best first (earlier epoch first on ties)."""
        found = []
        for path in self.best_dir.iterdir():
            match = BEST_PATTERN.match(path.name)
            if match:
                found.append((float(match.group(2)), int(match.group(1)), path))
        return sorted(found, key=lambda item: (-item[0], item[1]))

    def save(self, cell: nn.Cell, epoch: int, step: int, global_step: int, rollbacks: int = 0) -> Path:
        """Write ``msrcnn-<epoch>_<step>.ckpt`` and delete the oldest beyond ``keep_max``; ``rollbacks`` counts the
        divergence guard's rollbacks so far (each lowered the learning rate)."""
        path = atomic_save_checkpoint(cell, self.checkpoint_dir / f"{CHECKPOINT_PREFIX}-{epoch}_{step}.ckpt",
                                      {"epoch": epoch, "step": step, "global_step": global_step,
                                       "rollbacks": rollbacks}, self.class_names)
        for _, _, old in self.periodic()[:-self.keep_max]:
            old.unlink()
        return path

    def save_best(self, cell: nn.Cell, epoch: int, step: int, global_step: int, seg_map: float,
                  rollbacks: int = 0) -> Optional[Path]:
        """Keep this state when its segm mAP enters the top ``keep_best_max``; returns its path or None."""
        ranked = self.best()
        if len(ranked) >= self.keep_best_max and seg_map <= ranked[self.keep_best_max - 1][0]:
            return None
        path = atomic_save_checkpoint(
            cell, self.best_dir / f"{CHECKPOINT_PREFIX}-best-e{epoch}-segm{seg_map:.4f}.ckpt",
            {"epoch": epoch, "step": step, "global_step": global_step, "rollbacks": rollbacks}, self.class_names)
        for _, _, old in self.best()[self.keep_best_max:]:
            old.unlink()
        return path

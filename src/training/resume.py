"""Continuing an experiment: which checkpoint, and the experiment's own config.

``--resume EXP`` takes the experiment folder ``EXP`` (its newest periodic checkpoint) or a checkpoint inside
``EXP/checkpoints`` or ``EXP/best_ckpt``. The run continues with ``EXP/config.yaml``, never rewritten: command-line
overrides are accepted only for the keys of :data:`RESUME_OVERRIDABLE`, which change logging, evaluation, checkpoint
keeping or data loading threads but not what is trained (they are recorded in ``EXP/command.txt``).
"""
import argparse
from pathlib import Path
from typing import Sequence, Tuple

from src.callback import latest_checkpoint
from src.model_utils.config import Config, ConfigError, load_config, parse_overrides

EXPERIMENT_CONFIG = "config.yaml"
CHECKPOINT_FOLDERS = ("checkpoints", "best_ckpt")
RESUME_OVERRIDABLE = ("resume", "log_interval", "run_eval", "eval_every", "val_dataset", "save_every",
                      "keep_checkpoint_max", "keep_best_checkpoints_max", "num_parallel_workers",
                      "python_multiprocessing", "device_id")


def resolve_resume(resume: str) -> Tuple[Path, Path]:
    """(experiment folder, checkpoint) of ``--resume`` (see the module docstring).

    Raises FileNotFoundError / ValueError naming the path and what was expected."""
    path = Path(resume).resolve()
    if path.is_file():
        if path.parent.name not in CHECKPOINT_FOLDERS:
            raise ValueError(f"resume: {path} is not inside an experiment's {' or '.join(CHECKPOINT_FOLDERS)} folder; "
                             "give the experiment folder or one of its checkpoints")
        exp_dir, checkpoint = path.parent.parent, path
    elif path.is_dir():
        latest = latest_checkpoint(path / CHECKPOINT_FOLDERS[0])
        if latest is None:
            raise FileNotFoundError(f"resume: no checkpoint in {path / CHECKPOINT_FOLDERS[0]}")
        exp_dir, checkpoint = path, latest
    else:
        raise FileNotFoundError(f"resume: {path} is neither an experiment folder nor a checkpoint file")
    if not (exp_dir / EXPERIMENT_CONFIG).is_file():
        raise FileNotFoundError(f"resume: {exp_dir} has no {EXPERIMENT_CONFIG}; is it an experiment folder?")
    return exp_dir, checkpoint


def resume_config(argv: Sequence[str]) -> Config:
    """The config of a resumed run: the experiment's config.yaml with the allowed overrides of ``argv`` (which holds
    ``--resume``; ``--config_path`` may only name that same file).

    Raises ConfigError naming what is not allowed."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--config_path")
    parser.add_argument("--resume", required=True)
    known, _ = parser.parse_known_args(argv)
    exp_dir, _ = resolve_resume(known.resume)
    config_path = exp_dir / EXPERIMENT_CONFIG
    if known.config_path and Path(known.config_path).resolve() != config_path.resolve():
        raise ConfigError(f"--config_path {known.config_path}: a resumed run uses its experiment's {config_path}; "
                          "drop --config_path (to train with another config, start a new experiment, e.g. with "
                          "--pre_trained CHECKPOINT)")
    tokens = [token for index, token in enumerate(argv) if token != "--config_path" and
              (index == 0 or argv[index - 1] != "--config_path")]
    changed = sorted({key for key, _ in parse_overrides(tokens)} - set(RESUME_OVERRIDABLE))
    if changed:
        raise ConfigError(f"--resume: {', '.join('--' + key for key in changed)} would change what is trained; a "
                          f"resumed run keeps {config_path} (allowed: {', '.join(RESUME_OVERRIDABLE[1:])})")
    return load_config(config_path, tokens)

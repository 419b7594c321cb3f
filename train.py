"""Train Mask Scoring R-CNN.

    python train.py --config_path configs/tiny_parts.yaml [--key value ...]
    python train.py --resume EXPERIMENT_DIR_OR_CKPT [--log_interval N ...]

Creates ``<train_outputs>/<YYMMDD>_MSRCNN_<brief>_<device>-<N>_<W>x<H>_bs-<B>_lr-<lr>_div-<mask_divider>[_acc-<k>]``
holding ``config.yaml`` (the resolved config), ``command.txt`` (command line and git commit), ``train.log``,
``losses.csv`` (one row per log line), ``metrics.csv`` (one row per epoch), ``checkpoints/`` and ``best_ckpt/``.
See docs/training.md for how to read the log.

Fault tolerance: a step whose loss is not finite or jumps above ``divergence_guard.loss_jump`` times its running mean
is rejected and logged; repeated ones roll back to the last checkpoint with a lower learning rate (see
:mod:`src.training.divergence_guard`). ``--resume`` continues an experiment with its own config.yaml (see
:mod:`src.training.resume`) from its checkpoint: weights, optimizer state, loss scale, position in the data stream and
the samplers' random stream, so that the resumed run computes what the uninterrupted one would have. SIGINT/SIGTERM
write a checkpoint after the current step and exit with 128 + the signal number.
"""
import src  # noqa: F401  first: sets MindSpore's log level before MindSpore is imported (src/__init__.py)
import json
import logging
import math
import shlex
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import mindspore as ms
import yaml

from src.callback import (EPOCH_COLUMNS, STEP_COLUMNS, CheckpointManager, CsvLog, LossAverager,
                          NonFiniteLossError, check_finite, format_step_line, read_checkpoint_state, setup_logger)
from src.lr_schedule import get_lr
from src.model_utils.config import Config, ConfigError, parse_cli
from src.model_utils.device_adapter import init_env
from src.network_define import TrainStep, build_detector, build_optimizer, count_parameters
from src.training.distributed import all_gather_bytes
from src.training.divergence_guard import DivergenceError, DivergenceGuard, ParameterSnapshot, scale_learning_rate
from src.training.pretrained import check_backbone_start, load_pretrained
from src.training.resume import EXPERIMENT_CONFIG, resolve_resume, resume_config
from src.training.stop_signal import StopSignal

PROJECT_ROOT = Path(__file__).resolve().parent
SCHEDULE_PARAMETER = "learning_rate"


def experiment_name(cfg: Config, day: datetime) -> str:
    """Model zoo style folder name with the device type and count, e.g.
    ``231018_MSRCNN_coco_gpu-4_1024x1024_bs-2_lr-0.02_div-2``."""
    name = (f"{day:%y%m%d}_MSRCNN_{cfg.brief}_{cfg.device_target.lower()}-{cfg.device_num}_"
            f"{cfg.img_width}x{cfg.img_height}_bs-{cfg.batch_size}_lr-{cfg.lr:g}_div-{cfg.mask_divider}")
    return f"{name}_acc-{cfg.accumulate_step}" if cfg.accumulate_step > 1 else name


def git_commit() -> str:
    """The project's current commit (with ``-dirty`` when the tree has changes) or 'unknown'."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                               timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


def create_experiment_dir(cfg: Config) -> Path:
    """A new folder under ``train_outputs`` (``_2``, ``_3``... appended when the name is taken)."""
    root = Path(cfg.train_outputs).resolve()
    base = root / experiment_name(cfg, datetime.now())
    candidate, index = base, 1
    while candidate.exists():
        index += 1
        candidate = base.with_name(f"{base.name}_{index}")
    return candidate


def write_provenance(exp_dir: Path, cfg: Config, argv: Sequence[str], resumed_from: Optional[Path] = None) -> None:
    """config.yaml (the resolved config, written once: a resumed run keeps it) and command.txt (command line, working
    folder, git commit, start time, and the checkpoint a resumed run starts from; appended)."""
    exp_dir.mkdir(parents=True, exist_ok=True)
    if resumed_from is None:
        with open(exp_dir / EXPERIMENT_CONFIG, "w", encoding="utf-8") as stream:
            yaml.safe_dump(cfg.to_dict(), stream, sort_keys=False)
    command = " ".join(shlex.quote(part) for part in [sys.executable, *sys.argv[:1], *argv])
    resumed = f"resumed_from: {resumed_from}\n" if resumed_from is not None else ""
    with open(exp_dir / "command.txt", "a", encoding="utf-8") as stream:
        stream.write(f"command: {command}\ncwd: {Path.cwd()}\ngit_commit: {git_commit()}\n{resumed}"
                     f"started: {datetime.now().isoformat(timespec='seconds')}\n\n")


class TrainingEvaluator:
    """Evaluates the model on ``val_dataset`` during training, COCO bbox and segm mAP. In a distributed run every
    process runs inference on its shard of the images and rank 0 gathers the predictions and scores them, so no
    process waits in a collective while another one evaluates alone. Rank 0 keeps the predictions of the latest
    evaluation in ``predictions_path`` (COCO results JSON): ``eval.py --prediction_path`` scores them again without
    running the model."""

    def __init__(self, cfg: Config, infer_net: ms.nn.Cell, predictions_path: Path):
        from src.data import CocoDataset, create_dataset

        self.infer_net = infer_net
        self.rank, self.size = int(cfg.rank_id), int(cfg.device_num)  # set by init_env
        self.coco = CocoDataset(cfg.val_dataset, cfg.coco_classes)
        self.dataset = create_dataset(cfg, cfg.val_dataset, mode="eval", num_shards=self.size, shard_id=self.rank)
        self.mask_thr_binary = float(cfg.test_cfg.rcnn.mask_thr_binary)
        self.mask_paste = str(cfg.test_cfg.rcnn.mask_paste)
        self.predictions_path = predictions_path

    def __call__(self) -> Optional[dict]:
        """The results of :func:`src.eval_utils.evaluate_predictions` on rank 0, None on the other ranks."""
        from src.eval_utils import evaluate_predictions, run_inference, save_json_atomic

        self.infer_net.set_train(False)
        predictions = run_inference(self.infer_net, self.dataset, self.coco.category_id_of, self.mask_thr_binary,
                                    known_image_ids=self.coco.image_ids, progress=False, mask_paste=self.mask_paste)
        if self.size > 1:
            shards = all_gather_bytes(json.dumps(predictions).encode("utf-8"), self.rank, self.size)
            if self.rank != 0:
                return None
            predictions = [prediction for shard in shards for prediction in json.loads(shard)]
        save_json_atomic(predictions, self.predictions_path)
        return evaluate_predictions(self.coco.coco, predictions)


def evaluate(evaluator: TrainingEvaluator, logger: logging.Logger) -> Optional[Dict[str, float]]:
    """Run the evaluation during training, log its time and COCO summaries; returns bbox_mAP and seg_mAP on rank 0,
    None on the other ranks."""
    eval_start = time.perf_counter()
    results = evaluator()
    eval_time = time.perf_counter() - eval_start
    logger.info("Eval epoch time: %.3f ms, per step time: %.3f ms", 1000.0 * eval_time,
                1000.0 * eval_time / max(evaluator.dataset.get_dataset_size(), 1))
    if results is None:
        return None
    logger.info("bbox:\n%s\nsegm:\n%s", results["bbox_summary"], results["segm_summary"])
    logger.info("Predictions of this evaluation: %s", evaluator.predictions_path)
    return {"bbox_mAP": results["bbox_mAP"], "seg_mAP": results["seg_mAP"]}


class TrainingStopped(RuntimeError):
    """SIGINT or SIGTERM stopped the run after a checkpoint was written; ``exit_code`` is 128 + the signal number."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def scale_lr_by_batch(cfg: Config) -> None:
    """With ``auto_scale_lr.enable``, the linear scaling rule: ``lr`` (and ``min_lr``) was set for
    ``auto_scale_lr.base_batch_size`` images per update and becomes lr x (device_num x batch_size x accumulate_step)
    / base_batch_size; the config's value is kept in ``auto_scale_lr.lr_at_base`` (config.yaml records both)."""
    if not cfg.auto_scale_lr.enable:
        return
    factor = cfg.device_num * cfg.batch_size * cfg.accumulate_step / cfg.auto_scale_lr.base_batch_size
    cfg.auto_scale_lr.lr_at_base = cfg.lr
    cfg.lr, cfg.min_lr = cfg.lr * factor, cfg.min_lr * factor


def start_position(param_dict: Optional[dict]) -> Tuple[int, int, int, int]:
    """(epoch, batches of it already done, global step, rollbacks) stored in a loaded checkpoint: (1, 0, 0, 0) for
    a new run (None)."""
    if param_dict is None:
        return 1, 0, 0, 0
    state = read_checkpoint_state(param_dict)
    return max(state["epoch"], 1), state["step"], state["global_step"], state["rollbacks"]


def load_training_state(trainer: TrainStep, param_dict: dict, checkpoint: Path) -> None:
    """Load every parameter of the training cell (weights, optimizer, loss scale, accumulation) from ``param_dict``,
    the loaded ``checkpoint`` of this experiment; the learning-rate schedule is rebuilt from the config instead."""
    not_loaded, _ = ms.load_param_into_net(
        trainer.cell, {name: value for name, value in param_dict.items() if name != SCHEDULE_PARAMETER})
    not_loaded = [name for name in not_loaded if name != SCHEDULE_PARAMETER]
    if not_loaded:
        raise ValueError(f"resume: {checkpoint} lacks {len(not_loaded)} parameters of this model, e.g. "
                         f"{not_loaded[:3]}; was it written with another config?")


def train(cfg: Config, argv: Sequence[str] = ()) -> Path:
    """Run the training described by ``cfg``; returns the experiment folder. Raises NonFiniteLossError when a loss
    becomes inf/NaN with the divergence guard off, DivergenceError when it gives up, TrainingStopped on
    SIGINT/SIGTERM (after writing a checkpoint)."""
    init_env(cfg)
    is_main = cfg.rank_id == 0
    if not cfg.resume:
        check_backbone_start(cfg)
        scale_lr_by_batch(cfg)
    resume_checkpoint: Optional[Path] = None
    if cfg.resume:
        exp_dir, resume_checkpoint = resolve_resume(cfg.resume)
    else:
        exp_dir = create_experiment_dir(cfg)
    if is_main:
        write_provenance(exp_dir, cfg, argv, resume_checkpoint)
    logger = setup_logger(exp_dir / "train.log", cfg.rank_id)
    logger.info("Experiment folder: %s", exp_dir)
    resume_params = ms.load_checkpoint(str(resume_checkpoint)) if resume_checkpoint is not None else None
    start_epoch, start_step, global_step, rollbacks = start_position(resume_params)
    if start_epoch > cfg.epoch_size:
        logger.info("Nothing to do: the checkpoint already finished epoch %d of %d", start_epoch - 1, cfg.epoch_size)
        return exp_dir

    from src.data.pipeline import create_dataset

    num_epochs = cfg.epoch_size - start_epoch + 1
    dataset = create_dataset(cfg, cfg.train_dataset, mode="train", num_shards=cfg.device_num, shard_id=cfg.rank_id,
                             first_epoch=start_epoch - 1, num_epochs=num_epochs, skip_batches=start_step)
    stream_size = dataset.get_dataset_size()
    steps_per_epoch = (stream_size + start_step) // num_epochs
    logger.info("Train dataset size: %d batches of %d images", steps_per_epoch, cfg.batch_size)
    if not stream_size:
        logger.info("Nothing to do: the checkpoint already finished epoch %d of %d", cfg.epoch_size, cfg.epoch_size)
        return exp_dir
    if steps_per_epoch < cfg.accumulate_step:
        raise ValueError(f"accumulate_step={cfg.accumulate_step} is larger than the {steps_per_epoch} batches of an "
                         f"epoch of {cfg.train_dataset}")
    logger.info("Creating network...")
    model, infer_net = build_detector(cfg)
    if resume_checkpoint is None:
        if cfg.backbone.pretrained:
            logger.info("%s", load_pretrained(model, cfg.backbone.pretrained, "backbone.pretrained", True))
        if cfg.pre_trained:
            logger.info("%s", load_pretrained(model, cfg.pre_trained, "pre_trained", False, bool(cfg.finetune)))
    total_params, trainable_params = count_parameters(model)
    logger.info("Number of parameters: %d (trainable: %d)", total_params, trainable_params)
    logger.info("Device type: %s", cfg.device_target)
    logger.info("Creating criterion, lr and opt objects...")
    learning_rates = get_lr(cfg, steps_per_epoch // cfg.accumulate_step)
    logger.info("Learning rate %g for %d images per update (%d device(s) x %d x %d accumulation)%s", cfg.lr,
                cfg.device_num * cfg.batch_size * cfg.accumulate_step, cfg.device_num, cfg.batch_size,
                cfg.accumulate_step, f", scaled from {cfg.auto_scale_lr.lr_at_base:g} for "
                f"{cfg.auto_scale_lr.base_batch_size} (auto_scale_lr)" if cfg.auto_scale_lr.enable else "")
    optimizer = build_optimizer(cfg, model.trainable_params(), learning_rates)
    trainer = TrainStep(model, optimizer, cfg)
    guard = DivergenceGuard(cfg.divergence_guard, rollbacks)
    logger.info("    Done!")
    if resume_checkpoint is not None:
        load_training_state(trainer, resume_params, resume_checkpoint)
        trainer.steps_taken = global_step
        if guard.rollbacks:
            scale_learning_rate(optimizer, learning_rates, guard.lr_scale)
        finished_epochs, done_steps = divmod(start_step, steps_per_epoch)
        lowered = f", learning rate x {guard.lr_scale:g} after {guard.rollbacks} rollback(s)" if guard.rollbacks else ""
        logger.info("Resumed from %s: epoch %d, step %d (global step %d%s)", resume_checkpoint,
                    start_epoch + finished_epochs, done_steps, global_step, lowered)
    snapshot = ParameterSnapshot(trainer.cell)

    checkpoints = CheckpointManager(exp_dir / "checkpoints", exp_dir / "best_ckpt", cfg.keep_checkpoint_max,
                                    cfg.keep_best_checkpoints_max, cfg.coco_classes) if is_main else None
    step_log = CsvLog(exp_dir / "losses.csv", STEP_COLUMNS) if is_main else None
    epoch_log = CsvLog(exp_dir / "metrics.csv", EPOCH_COLUMNS) if is_main else None
    evaluator = TrainingEvaluator(cfg, infer_net, exp_dir / "val_predictions.json") if cfg.run_eval else None
    last_checkpoint = resume_checkpoint

    def save(epoch: int, step: int) -> None:
        nonlocal last_checkpoint
        if checkpoints is not None:
            last_checkpoint = checkpoints.save(trainer.cell, epoch, step, global_step, guard.rollbacks)
        snapshot.take(trainer.cell)

    averager = LossAverager()
    epoch_start = interval_time = 0.0
    interval_overflows = epoch_steps = 0
    with StopSignal() as stop:
        for position, batch in enumerate(dataset.create_tuple_iterator(num_epochs=1)):
            epoch, batch_index = divmod(start_step + position, steps_per_epoch)
            epoch += start_epoch
            step = batch_index + 1
            if batch_index == 0 or position == 0:
                trainer.set_train(True)
                averager = LossAverager()
                epoch_start, interval_time, interval_overflows, epoch_steps = time.perf_counter(), 0.0, 0, 0
            bound = guard.bound()
            step_start = time.perf_counter()
            result = trainer.step(batch, batch_index, bound)
            interval_time += time.perf_counter() - step_start
            if position == 0:
                stop.arm()
            global_step += 1
            epoch_steps += 1
            diverged = not math.isfinite(result.total_loss) or result.total_loss > bound
            if diverged and not guard.enabled:
                try:
                    check_finite(result.total_loss, result.losses, epoch, step, last_checkpoint)
                except NonFiniteLossError as error:
                    logger.error("%s", error)
                    raise
            if diverged:
                action = guard.reject()
                logger.warning("epoch %d, step %d: loss %.6g %s; step rejected, nothing updated (%d in a row)",
                               epoch, step, result.total_loss, "is not finite" if not math.isfinite(
                                   result.total_loss) else f"above the bound {bound:.6g} ({guard.loss_jump:g} x "
                               f"the running mean)", guard.rejected_in_a_row or guard.max_rejected)
                if action == "stop":
                    message = (f"training diverged again after {guard.max_rollbacks} rollback(s); stopped at epoch "
                               f"{epoch}, step {step}. Last good checkpoint: {last_checkpoint or 'none written'}. "
                               f"Lower lr, lengthen warmup_step or set grad_clip.")
                    logger.error("%s", message)
                    raise DivergenceError(message)
                if action == "rollback":
                    snapshot.restore(trainer.cell)
                    scale_learning_rate(optimizer, learning_rates, guard.lr_scale)
                    logger.warning("%d rejected steps in a row: weights and optimizer state rolled back to %s, "
                                   "learning rate now x %g of the schedule (rollback %d of at most %d)",
                                   guard.max_rejected, last_checkpoint or "the start of this run", guard.lr_scale,
                                   guard.rollbacks, guard.max_rollbacks)
            else:
                guard.accept(result.total_loss)
                averager.add(result.losses, result.total_loss)
            interval_overflows += int(result.overflow)
            if (step % cfg.log_interval == 0 or step == steps_per_epoch) and averager.interval_count:
                updates_done = int(optimizer.global_step.asnumpy().reshape(-1)[0])
                lr = float(learning_rates[min(max(updates_done - 1, 0), len(learning_rates) - 1)]) * guard.lr_scale
                step_time_ms = 1000.0 * interval_time / max(averager.interval_count, 1)
                means = averager.pop_interval()
                logger.info("%s", format_step_line(epoch, step, means, lr, step_time_ms, interval_overflows))
                if step_log is not None:
                    step_log.append({"epoch": epoch, "step": step, "global_step": global_step, **means, "lr": lr,
                                     "loss_scale": result.loss_scale, "step_time_ms": step_time_ms})
                interval_time, interval_overflows = 0.0, 0
            saved = global_step % cfg.save_every == 0 and step < steps_per_epoch
            if saved:
                save(epoch, step)
            if step == steps_per_epoch:
                trainer.discard_accumulated()
                epoch_time = time.perf_counter() - epoch_start
                logger.info("Train epoch time: %.3f ms, per step time: %.3f ms", 1000.0 * epoch_time,
                            1000.0 * epoch_time / max(epoch_steps, 1))
                save(epoch, step)
                saved = True
                epoch_means = averager.pop_epoch()
                metrics = {"loss": epoch_means["loss"]}
                results = evaluate(evaluator, logger) if evaluator is not None and (
                    epoch % cfg.eval_every == 0 or epoch == cfg.epoch_size) else None
                if results is not None:
                    metrics.update(results)
                    if metrics["seg_mAP"] < 0:
                        logger.warning("%s holds no ground-truth instance: its mAP is undefined (-1), so no best "
                                       "checkpoint is kept", cfg.val_dataset)
                    else:
                        best = checkpoints.save_best(trainer.cell, epoch, step, global_step, metrics["seg_mAP"],
                                                     guard.rollbacks)
                        if best is not None:
                            logger.info("New best checkpoint: %s", best)
                logger.info("Result metrics for epoch %d: %s", epoch, metrics)
                if epoch_log is not None:
                    epoch_log.append({"epoch": epoch, "global_step": global_step, **epoch_means,
                                      "bbox_mAP": metrics.get("bbox_mAP", ""), "seg_mAP": metrics.get("seg_mAP", ""),
                                      "epoch_time_s": epoch_time})
            if stop.received:
                if not saved:
                    save(epoch, step)
                message = (f"{stop.received} received: stopped after epoch {epoch}, step {step} (global step "
                           f"{global_step}); checkpoint {last_checkpoint}. Continue with: python train.py "
                           f"--resume {exp_dir}")
                logger.warning("%s", message)
                raise TrainingStopped(message, 128 + int(signal.Signals[stop.received]))
    logger.info("Training finished. Experiment folder: %s", exp_dir)
    return exp_dir


def main(argv: Optional[List[str]] = None) -> int:
    """Command-line entry point; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--resume" in argv:
        try:
            cfg = resume_config(argv)
        except (ConfigError, FileNotFoundError, ValueError) as error:
            print(f"train.py: error: {error}", file=sys.stderr)
            return 2
    else:
        cfg = parse_cli(argv, description="Train Mask Scoring R-CNN")
    try:
        train(cfg, argv)
    except NonFiniteLossError:
        return 1
    except TrainingStopped as stopped:
        return stopped.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())

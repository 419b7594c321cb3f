"""Train Mask Scoring R-CNN.

    python train.py --config_path configs/tiny_parts.yaml [--key value ...]

Creates ``<train_outputs>/<YYMMDD>_MSRCNN_<brief>_<device>-<N>_<W>x<H>_bs-<B>_lr-<lr>_div-<mask_divider>[_acc-<k>]``
holding ``config.yaml`` (the resolved config), ``command.txt`` (command line and git commit), ``train.log``,
``losses.csv`` (one row per log line), ``metrics.csv`` (one row per epoch), ``checkpoints/`` and ``best_ckpt/``.
``--resume EXPERIMENT_DIR_OR_CKPT`` continues from the experiment's newest checkpoint (weights, optimizer state,
loss scale, epoch and step). See docs/training.md for how to read the log.
"""
import src  # noqa: F401  first: sets MindSpore's log level before MindSpore is imported (src/__init__.py)
import shlex
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import mindspore as ms
import yaml

from src.callback import (EPOCH_COLUMNS, STEP_COLUMNS, CheckpointManager, CsvLog, LossAverager, NonFiniteLossError,
                          check_finite, format_step_line, latest_checkpoint, read_checkpoint_state,
                          setup_logger)
from src.lr_schedule import get_lr
from src.model_utils.config import Config, parse_cli
from src.model_utils.device_adapter import init_env
from src.network_define import TrainStep, build_detector, build_optimizer, count_parameters, load_weights

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


def resolve_resume(resume: str) -> Tuple[Path, Path]:
    """(experiment folder, checkpoint) of ``--resume``: an experiment folder (its newest periodic checkpoint) or a
    checkpoint file inside ``<experiment>/checkpoints`` or ``<experiment>/best_ckpt``."""
    path = Path(resume).resolve()
    if path.is_file():
        return path.parent.parent, path
    if path.is_dir():
        latest = latest_checkpoint(path / "checkpoints")
        if latest is None:
            raise FileNotFoundError(f"resume: no checkpoint in {path / 'checkpoints'}")
        return path, latest
    raise FileNotFoundError(f"resume: {path} is neither an experiment folder nor a checkpoint file")


def create_experiment_dir(cfg: Config) -> Path:
    """A new folder under ``train_outputs`` (``_2``, ``_3``... appended when the name is taken)."""
    root = Path(cfg.train_outputs).resolve()
    base = root / experiment_name(cfg, datetime.now())
    candidate, index = base, 1
    while candidate.exists():
        index += 1
        candidate = base.with_name(f"{base.name}_{index}")
    return candidate


def write_provenance(exp_dir: Path, cfg: Config, argv: Sequence[str]) -> None:
    """config.yaml (resolved) and command.txt (command line, working folder, git commit, start time)."""
    exp_dir.mkdir(parents=True, exist_ok=True)
    with open(exp_dir / "config.yaml", "w", encoding="utf-8") as stream:
        yaml.safe_dump(cfg.to_dict(), stream, sort_keys=False)
    command = " ".join(shlex.quote(part) for part in [sys.executable, *sys.argv[:1], *argv])
    with open(exp_dir / "command.txt", "a", encoding="utf-8") as stream:
        stream.write(f"command: {command}\ncwd: {Path.cwd()}\ngit_commit: {git_commit()}\n"
                     f"started: {datetime.now().isoformat(timespec='seconds')}\n\n")


class TrainingEvaluator:
    """Evaluates the model on ``val_dataset`` during training (rank 0): COCO bbox and segm mAP."""

    def __init__(self, cfg: Config, infer_net: ms.nn.Cell):
        from src.data import CocoDataset, create_dataset

        self.infer_net = infer_net
        self.coco = CocoDataset(cfg.val_dataset, cfg.coco_classes)
        self.dataset = create_dataset(cfg, cfg.val_dataset, mode="eval")
        self.mask_thr_binary = float(cfg.test_cfg.rcnn.mask_thr_binary)

    def __call__(self) -> dict:
        from src.eval_utils import evaluate_predictions, run_inference

        self.infer_net.set_train(False)
        predictions = run_inference(self.infer_net, self.dataset, self.coco.category_id_of, self.mask_thr_binary,
                                    known_image_ids=self.coco.image_ids, progress=False)
        return evaluate_predictions(self.coco.coco, predictions)


def train(cfg: Config, argv: Sequence[str] = ()) -> Path:
    """Run the training described by ``cfg``; returns the experiment folder. Raises NonFiniteLossError when a loss
    becomes inf/NaN (after logging it)."""
    init_env(cfg)
    is_main = cfg.rank_id == 0
    resume_checkpoint: Optional[Path] = None
    if cfg.resume:
        exp_dir, resume_checkpoint = resolve_resume(cfg.resume)
    else:
        exp_dir = create_experiment_dir(cfg)
    if is_main:
        write_provenance(exp_dir, cfg, argv)
    logger = setup_logger(exp_dir / "train.log", cfg.rank_id)
    logger.info("Experiment folder: %s", exp_dir)

    from src.data.pipeline import create_dataset

    dataset = create_dataset(cfg, cfg.train_dataset, mode="train", num_shards=cfg.device_num, shard_id=cfg.rank_id)
    steps_per_epoch = dataset.get_dataset_size()
    logger.info("Train dataset size: %d batches of %d images", steps_per_epoch, cfg.batch_size)
    if steps_per_epoch < cfg.accumulate_step:
        raise ValueError(f"accumulate_step={cfg.accumulate_step} is larger than the {steps_per_epoch} batches of an "
                         f"epoch of {cfg.train_dataset}")
    logger.info("Creating network...")
    model, infer_net = build_detector(cfg)
    if cfg.pre_trained and resume_checkpoint is None:
        logger.info("Load pretrained weights from %s (finetune: %d)...", cfg.pre_trained, cfg.finetune)
        missing, skipped = load_weights(model, ms.load_checkpoint(cfg.pre_trained), bool(cfg.finetune),
                                        cfg.pre_trained)
        logger.info("Loaded %d parameters; %d model parameters left as initialised; %d checkpoint entries skipped",
                    len(list(model.get_parameters())) - len(missing), len(missing), len(skipped))
    total_params, trainable_params = count_parameters(model)
    logger.info("Number of parameters: %d (trainable: %d)", total_params, trainable_params)
    logger.info("Device type: %s", cfg.device_target)
    logger.info("Creating criterion, lr and opt objects...")
    updates_per_epoch = steps_per_epoch // cfg.accumulate_step
    learning_rates = get_lr(cfg, updates_per_epoch)
    optimizer = build_optimizer(cfg, model.trainable_params(), learning_rates)
    trainer = TrainStep(model, optimizer, cfg)
    logger.info("    Done!")

    start_epoch, start_step, global_step = 1, 0, 0
    if resume_checkpoint is not None:
        param_dict = ms.load_checkpoint(str(resume_checkpoint))
        state = read_checkpoint_state(param_dict)
        not_loaded, _ = ms.load_param_into_net(
            trainer.cell, {name: value for name, value in param_dict.items() if name != SCHEDULE_PARAMETER})
        not_loaded = [name for name in not_loaded if name != SCHEDULE_PARAMETER]
        if not_loaded:
            raise ValueError(f"resume: {resume_checkpoint} lacks {len(not_loaded)} parameters of this model, e.g. "
                             f"{not_loaded[:3]}; was it written with another config?")
        start_epoch, start_step, global_step = state["epoch"], state["step"], state["global_step"]
        if start_step >= steps_per_epoch:
            start_epoch, start_step = start_epoch + 1, 0
        logger.info("Resumed from %s: epoch %d, step %d (global step %d)", resume_checkpoint, start_epoch,
                    start_step, global_step)

    checkpoints = CheckpointManager(exp_dir / "checkpoints", exp_dir / "best_ckpt", cfg.keep_checkpoint_max,
                                    cfg.keep_best_checkpoints_max, cfg.coco_classes) if is_main else None
    step_log = CsvLog(exp_dir / "losses.csv", STEP_COLUMNS) if is_main else None
    epoch_log = CsvLog(exp_dir / "metrics.csv", EPOCH_COLUMNS) if is_main else None
    evaluator = TrainingEvaluator(cfg, infer_net) if cfg.run_eval and is_main else None
    last_checkpoint = resume_checkpoint
    if start_epoch > cfg.epoch_size:
        logger.info("Nothing to do: the checkpoint already finished epoch %d of %d", start_epoch - 1, cfg.epoch_size)
        return exp_dir

    iterator = dataset.create_tuple_iterator(num_epochs=cfg.epoch_size - start_epoch + 1)
    for epoch in range(start_epoch, cfg.epoch_size + 1):
        trainer.set_train(True)
        averager = LossAverager()
        epoch_start = time.perf_counter()
        interval_time, interval_overflows, epoch_steps = 0.0, 0, 0
        for batch_index, batch in enumerate(iterator):
            if epoch == start_epoch and batch_index < start_step:
                continue
            step_start = time.perf_counter()
            result = trainer.step(batch, batch_index)
            interval_time += time.perf_counter() - step_start
            global_step += 1
            epoch_steps += 1
            step = batch_index + 1
            try:
                check_finite(result.total_loss, result.losses, epoch, step, last_checkpoint)
            except NonFiniteLossError as error:
                logger.error("%s", error)
                raise
            averager.add(result.losses, result.total_loss)
            interval_overflows += int(result.overflow)
            if step % cfg.log_interval == 0 or step == steps_per_epoch:
                updates_done = int(optimizer.global_step.asnumpy().reshape(-1)[0])
                lr = float(learning_rates[min(max(updates_done - 1, 0), len(learning_rates) - 1)])
                step_time_ms = 1000.0 * interval_time / max(averager.interval_count, 1)
                means = averager.pop_interval()
                logger.info("%s", format_step_line(epoch, step, means, lr, step_time_ms, interval_overflows))
                if step_log is not None:
                    step_log.append({"epoch": epoch, "step": step, "global_step": global_step, **means, "lr": lr,
                                     "loss_scale": result.loss_scale, "step_time_ms": step_time_ms})
                interval_time, interval_overflows = 0.0, 0
            if checkpoints is not None and global_step % cfg.save_every == 0:
                last_checkpoint = checkpoints.save(trainer.cell, epoch, step, global_step)
        trainer.discard_accumulated()
        epoch_time = time.perf_counter() - epoch_start
        logger.info("Train epoch time: %.3f ms, per step time: %.3f ms", 1000.0 * epoch_time,
                    1000.0 * epoch_time / max(epoch_steps, 1))
        if checkpoints is not None:
            last_checkpoint = checkpoints.save(trainer.cell, epoch, steps_per_epoch, global_step)
        epoch_means = averager.pop_epoch()
        metrics = {"loss": epoch_means["loss"]}
        if evaluator is not None and (epoch % cfg.eval_every == 0 or epoch == cfg.epoch_size):
            eval_start = time.perf_counter()
            results = evaluator()
            eval_time = time.perf_counter() - eval_start
            logger.info("Eval epoch time: %.3f ms, per step time: %.3f ms", 1000.0 * eval_time,
                        1000.0 * eval_time / max(evaluator.dataset.get_dataset_size(), 1))
            logger.info("bbox:\n%s\nsegm:\n%s", results["bbox_summary"], results["segm_summary"])
            metrics.update(bbox_mAP=results["bbox_mAP"], seg_mAP=results["seg_mAP"])
            best = checkpoints.save_best(trainer.cell, epoch, steps_per_epoch, global_step, results["seg_mAP"])
            if best is not None:
                logger.info("New best checkpoint: %s", best)
        logger.info("Result metrics for epoch %d: %s", epoch, metrics)
        if epoch_log is not None:
            epoch_log.append({"epoch": epoch, "global_step": global_step, **epoch_means,
                              "bbox_mAP": metrics.get("bbox_mAP", ""), "seg_mAP": metrics.get("seg_mAP", ""),
                              "epoch_time_s": epoch_time})
    logger.info("Training finished. Experiment folder: %s", exp_dir)
    return exp_dir


def main(argv: Optional[List[str]] = None) -> int:
    """Command-line entry point; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    cfg = parse_cli(argv, description="Train Mask Scoring R-CNN")
    try:
        train(cfg, argv)
    except NonFiniteLossError:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

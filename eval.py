"""Evaluate a Mask Scoring R-CNN checkpoint on a COCO-format dataset.

    python eval.py --config_path CONFIG --val_dataset DIR --checkpoint_path CKPT [--prediction_path PRED.json]

Runs the model over ``val_dataset`` and saves the predictions to ``prediction_path`` (when set); when that file
already exists it is evaluated without running the model. Prints the COCO bbox and segm summaries (12 lines each),
the per-category AP table and the mask-scoring report (segm mAP with and without the MaskIoU rescoring, correlation
of predicted and real mask IoU). See docs/training.md for how to read them.
"""
import src  # noqa: F401  first: sets MindSpore's log level before MindSpore is imported (src/__init__.py)
import logging
import sys
import time
from pathlib import Path
from typing import Callable, List, Optional, Tuple

import mindspore as ms

from src.callback import LOGGER_NAME, setup_logger
from src.eval_utils import evaluate_predictions, format_report, load_predictions, run_inference, save_json_atomic
from src.model_utils.config import Config, parse_cli
from src.model_utils.device_adapter import init_env
from src.network_define import build_detector, load_weights


class WithoutMaskScoring:
    """Wraps an inference net whose checkpoint has no MaskIoU head (a converted Mask R-CNN): same call and outputs,
    with the predicted mask IoUs replaced by 1, so masks are scored by the class score alone."""

    def __init__(self, infer_net: ms.nn.Cell):
        self.infer_net = infer_net

    def __call__(self, img: ms.Tensor, img_meta: ms.Tensor) -> Tuple[ms.Tensor, ...]:
        outputs = list(self.infer_net(img, img_meta))
        outputs[4] = ms.ops.ones_like(outputs[4])
        return tuple(outputs)


def load_inference_net(cfg: Config) -> Callable:
    """MsRcnnInfer with the weights of ``cfg.checkpoint_path`` (every model parameter must be in it), in eval mode.
    A checkpoint lacking only the MaskIoU head runs with a warning, wrapped in :class:`WithoutMaskScoring`."""
    checkpoint = Path(cfg.checkpoint_path)
    if not cfg.checkpoint_path or not checkpoint.is_file():
        raise FileNotFoundError(f"checkpoint_path: no checkpoint file at '{cfg.checkpoint_path}'")
    model, infer_net = build_detector(cfg)
    missing, _ = load_weights(model, ms.load_checkpoint(str(checkpoint)), source=str(checkpoint))
    infer_net.set_train(False)
    if missing and all(name.startswith("mask_iou_head.") for name in missing):
        logging.getLogger(LOGGER_NAME).warning(
            "%s has no MaskIoU head (a converted Mask R-CNN?): masks are scored by the class score alone until the "
            "model is fine-tuned", checkpoint)
        return WithoutMaskScoring(infer_net)
    if missing:
        raise ValueError(f"{checkpoint}: lacks {len(missing)} parameters of this model (e.g. {missing[:3]}); "
                         f"is it a checkpoint of this config?")
    return infer_net


def evaluate(cfg: Config) -> dict:
    """Predict (or reload the predictions of) ``cfg.val_dataset`` and return the metrics of
    :func:`src.eval_utils.evaluate_predictions`; the report goes to the log."""
    from src.data import CocoDataset, create_dataset

    logger = setup_logger(None)
    coco = CocoDataset(cfg.val_dataset, cfg.coco_classes)
    prediction_path = Path(cfg.prediction_path) if cfg.prediction_path else None
    if prediction_path is not None and prediction_path.is_file():
        logger.info("Evaluating the saved predictions %s (delete the file to run the model again)", prediction_path)
        predictions = load_predictions(prediction_path)
    else:
        init_env(cfg)
        infer_net = load_inference_net(cfg)
        dataset = create_dataset(cfg, cfg.val_dataset, mode="eval")
        logger.info("Evaluating %s on %d images of %s", cfg.checkpoint_path, len(coco), cfg.val_dataset)
        start = time.perf_counter()
        predictions = run_inference(infer_net, dataset, coco.category_id_of, cfg.test_cfg.rcnn.mask_thr_binary,
                                    known_image_ids=coco.image_ids, mask_paste=cfg.test_cfg.rcnn.mask_paste)
        elapsed = time.perf_counter() - start
        logger.info("Eval time: %.3f ms, per image time: %.3f ms", 1000.0 * elapsed,
                    1000.0 * elapsed / max(len(coco), 1))
        if prediction_path is not None:
            save_json_atomic(predictions, prediction_path)
            logger.info("Predictions saved to %s", prediction_path)
    metrics = evaluate_predictions(coco.coco, predictions)
    logger.info("Evaluation report\n%s", format_report(metrics))
    logger.info("Result metrics: %s", {"bbox_mAP": metrics["bbox_mAP"], "seg_mAP": metrics["seg_mAP"]})
    return metrics


def main(argv: Optional[List[str]] = None) -> int:
    """Command-line entry point; returns the process exit code."""
    evaluate(parse_cli(argv, description="Evaluate Mask Scoring R-CNN (COCO bbox and segm mAP)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A trained Mask Scoring R-CNN as a callable detector: config and checkpoint loaded once, ``detect(image)`` per image.

A detection is ``{"box": [x1, y1, x2, y2] original pixels, "label", "name", "score" (class score), "mask_iou"
(predicted mask IoU), "confidence" (score * mask_iou, the Mask Scoring R-CNN mask score), "mask": uint8 [H,W] at the
original size}``; detections whose confidence is below ``score_thr`` are dropped.

The default ``score_thr`` is the config's ``visualize_score_thr`` (0.3 in the default config): the detections the
estimator prices are then exactly those infer.py's overlays show, and 0.3 on class score x mask IoU keeps a confident
class with a decent mask (e.g. 0.5 x 0.6) while dropping the low-score candidates (test_cfg.rcnn.score_thr 0.05) that
would otherwise add phantom damages to a claim.
"""
import logging
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np

from eval import load_inference_net
from src.callback import LOGGER_NAME, read_checkpoint_classes
from src.data.transforms import TransformParams
from src.eval_utils import detect_image
from src.model_utils.config import Config, load_config
from src.model_utils.device_adapter import init_env


def check_checkpoint_classes(checkpoint_path: Path, class_names: Sequence[str],
                             logger: Optional[logging.Logger] = None) -> None:
    """Compare the ``coco_classes`` stored in a checkpoint with ``class_names`` (the config's).

    Raises ValueError naming the checkpoint and both lists when they differ; a checkpoint without stored classes
    (written before they were stored, or pretrained weights) is accepted with a warning."""
    stored = read_checkpoint_classes(checkpoint_path)
    if stored is None:
        (logger or logging.getLogger(LOGGER_NAME)).warning(
            "%s stores no class names (older checkpoint); assuming the config's coco_classes %s",
            checkpoint_path, list(class_names))
        return
    if list(stored) != list(class_names):
        raise ValueError(f"{checkpoint_path}: trained with coco_classes {stored}, but the config has "
                         f"{list(class_names)}; use the config the checkpoint was trained with")


class Detector:
    """Mask Scoring R-CNN inference on single BGR images (see the module docstring for a detection's fields)."""

    def __init__(self, cfg: Config, score_thr: Optional[float] = None, config_path: Optional[str] = None) -> None:
        """Check the classes of ``cfg.checkpoint_path`` against ``cfg.coco_classes``, then set up the device and load
        the network. ``score_thr`` defaults to ``cfg.visualize_score_thr``; ``config_path`` is only recorded."""
        checkpoint = Path(cfg.checkpoint_path)
        if not cfg.checkpoint_path or not checkpoint.is_file():
            raise FileNotFoundError(f"checkpoint_path: no checkpoint file at '{cfg.checkpoint_path}'")
        check_checkpoint_classes(checkpoint, cfg.coco_classes)
        self.cfg = cfg
        self.config_path = config_path
        self.checkpoint_path = str(checkpoint)
        self.class_names: List[str] = list(cfg.coco_classes)
        self.score_thr = float(cfg.visualize_score_thr if score_thr is None else score_thr)
        if not 0.0 <= self.score_thr <= 1.0:
            raise ValueError(f"score_thr: expected a value in [0, 1], got {self.score_thr}")
        self.params = TransformParams.from_config(cfg)
        init_env(cfg)
        self.net = load_inference_net(cfg)

    @classmethod
    def from_files(cls, config_path: str, checkpoint_path: str, overrides: Optional[Mapping[str, object]] = None,
                   score_thr: Optional[float] = None) -> "Detector":
        """Load ``config_path`` with ``overrides`` (dotted key -> value, e.g. ``{"device_target": "CPU"}``) and
        ``checkpoint_path``."""
        cfg = load_config(config_path, {**(overrides or {}), "checkpoint_path": str(checkpoint_path)})
        return cls(cfg, score_thr, config_path=str(config_path))

    def detect(self, image_bgr: np.ndarray) -> List[Dict[str, object]]:
        """Detections of a BGR uint8 ``[H,W,3]`` image whose confidence reaches ``score_thr``, by decreasing class
        score."""
        detections = []
        for detection in detect_image(self.net, image_bgr, self.params, self.cfg.test_cfg.rcnn.mask_thr_binary,
                                      self.cfg.test_cfg.rcnn.mask_paste):
            confidence = detection["score"] * detection["mask_iou"]
            if confidence >= self.score_thr:
                detections.append({**detection, "name": self.class_names[detection["label"]],
                                   "confidence": confidence})
        return detections

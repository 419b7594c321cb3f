"""The models' detections of an estimate run, kept so that the cost error can be measured without running them again.

    python -m src.damage_cost.estimate ... --output OUT --save-detections        # writes OUT/detections.json
    python -m src.damage_cost.evaluate_cost --detections OUT/detections.json --price-model P --dataset DATA

detections.json::

    {"format": FORMAT,
     "models": {"joint", "parts": MODEL, "damage": MODEL},    # report.json's entries: config, checkpoint, its
                                                              # SHA-256, classes and the score_thr applied
     "images": {file name: {"height", "width", "parts": [DETECTION], "damage": [DETECTION]}}}

with DETECTION = ``{"box": [x1, y1, x2, y2], "label", "name", "score", "mask_iou", "confidence", "mask": COCO RLE}``,
exactly what each detector returned for the image (one joint model's detections are stored once, under ``parts``,
and read back for both roles). Detections
below a model's ``score_thr`` were never kept, so the file can answer for that threshold and higher ones only.
"""
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from src.eval_utils import decode_mask, encode_mask, save_json_atomic

FORMAT = "ms_rcnn-detections/1"
DETECTIONS_JSON = "detections.json"


class RecordingDetector:
    """Wraps a detector (``class_names`` and ``detect(image_bgr)``) and keeps the detections of its last call."""

    def __init__(self, detector: object) -> None:
        self.detector = detector
        self.class_names = list(detector.class_names)
        self.last: List[Dict[str, object]] = []

    def detect(self, image_bgr: np.ndarray) -> List[Dict[str, object]]:
        """The wrapped detector's detections (also kept in ``last``)."""
        self.last = self.detector.detect(image_bgr)
        return self.last


def _box_list(box: object) -> List[float]:
    """[x1, y1, x2, y2] as plain floats."""
    return [float(value) for value in np.asarray(box).reshape(-1)]


DETECTION_ENCODERS: Dict[str, Callable[[object], object]] = {
    "box": _box_list, "label": int, "name": str, "score": float, "mask_iou": float, "confidence": float,
    "mask": encode_mask}


def _encoded(detection: Dict[str, object]) -> Dict[str, object]:
    """One detection with JSON types and its mask as COCO RLE."""
    return {key: encode(detection[key]) for key, encode in DETECTION_ENCODERS.items()}


def _decoded(detections: Sequence[Dict[str, object]]) -> List[Dict[str, object]]:
    """Saved detections with their masks decoded to uint8 arrays."""
    return [{**item, "mask": decode_mask(item["mask"])} for item in detections]


def image_entry(height: int, width: int, parts: Sequence[Dict[str, object]],
                damage: Optional[Sequence[Dict[str, object]]]) -> Dict[str, object]:
    """The ``images`` entry of one image: its size and the detectors' detections with RLE masks (``damage`` None:
    one joint model, whose detections are ``parts``)."""
    entry = {"height": int(height), "width": int(width), "parts": [_encoded(item) for item in parts]}
    if damage is not None:
        entry["damage"] = [_encoded(item) for item in damage]
    return entry


def write_detections(path: Path, models: Dict[str, object], images: Dict[str, Dict[str, object]]) -> Path:
    """Write detections.json (atomically): ``models`` as report.json's (its price model entry is left out),
    ``images`` {file name: :func:`image_entry`}."""
    kept = {key: models[key] for key in ("joint", "parts", "damage")}
    return save_json_atomic({"format": FORMAT, "models": kept, "images": images}, Path(path))


@dataclass
class SavedDetections:
    """A detections.json read back: ``thresholds`` (parts, damage score_thr), ``class_names`` (parts, damage)."""

    path: Path
    joint: bool
    thresholds: Tuple[float, float]
    class_names: Tuple[List[str], List[str]]
    images: Dict[str, Dict[str, object]]

    def detections(self, name: str, height: int, width: int) -> Tuple[List[Dict[str, object]],
                                                                    List[Dict[str, object]]]:
        """(parts, damage) detections of image file ``name`` with decoded uint8 masks.

        Raises ValueError when the file holds no such image or one of another size."""
        entry = self.images.get(name)
        if entry is None:
            raise ValueError(f"{self.path}: no detections of image '{name}' (it holds {len(self.images)} images; "
                             f"run the estimate on the same photos)")
        if (entry["height"], entry["width"]) != (height, width):
            raise ValueError(f"{self.path}: image '{name}' was {entry['height']}x{entry['width']} when detected, "
                             f"it is {height}x{width} now")
        parts = _decoded(entry["parts"])
        if self.joint:
            return parts, parts
        return parts, _decoded(entry["damage"])

    def check_thresholds(self, wanted: Sequence[Tuple[float, float]]) -> None:
        """Raise ValueError when a (parts, damage) threshold pair asks for detections below those kept."""
        for parts_thr, damage_thr in wanted:
            if parts_thr < self.thresholds[0] or damage_thr < self.thresholds[1]:
                raise ValueError(f"{self.path}: holds detections from score {self.thresholds[0]:g} (parts) and "
                                 f"{self.thresholds[1]:g} (damage) up; threshold {parts_thr:g} / {damage_thr:g} "
                                 f"needs the models run again (evaluate_cost with the model options)")


def read_detections(path: Path) -> SavedDetections:
    """Read a detections.json; raises FileNotFoundError, or ValueError naming the file and what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"detections: no file at '{path}'")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path}: expected a detections file of format '{FORMAT}' (written by "
                         f"src.damage_cost.estimate --save-detections)")
    models = _field(data, "models", path, "the file")
    joint = bool(_field(models, "joint", path, "models"))
    roles = ("parts",) if joint else ("parts", "damage")
    images = _field(data, "images", path, "the file")
    if not isinstance(images, dict):
        raise ValueError(f"{path}: 'images' must map file names to their detections")
    for name, entry in images.items():
        for key in ("height", "width") + roles:
            _field(entry, key, path, f"image '{name}'")
        for role in roles:
            for index, item in enumerate(entry[role]):
                for key in DETECTION_ENCODERS:
                    _field(item, key, path, f"image '{name}', {role} detection {index}")
    parts, damage = _field(models, "parts", path, "models"), _field(models, "damage", path, "models")
    return SavedDetections(path=path, joint=joint,
                           thresholds=(float(_field(parts, "score_thr", path, "models.parts")),
                                       float(_field(damage, "score_thr", path, "models.damage"))),
                           class_names=(list(_field(parts, "classes", path, "models.parts")),
                                        list(_field(damage, "classes", path, "models.damage"))),
                           images=images)


def _field(mapping: object, key: str, path: Path, where: str) -> object:
    """``mapping[key]``; ValueError naming the file, the place and the key when it is missing."""
    if not isinstance(mapping, dict) or key not in mapping:
        raise ValueError(f"{path}: {where} has no '{key}' (a detections file written by "
                         f"src.damage_cost.estimate --save-detections holds it)")
    return mapping[key]

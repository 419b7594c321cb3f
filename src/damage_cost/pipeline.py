"""From one car image to priced damages: detect parts and damages, measure their overlaps, price each damage.

Two detectors (a parts model and a damage model) or one joint model whose classes hold both sets; detections are
split by class name (names in ``severities`` are damages, names in ``part_names`` are parts, others are ignored). Each
damage becomes a row of :func:`src.damage_cost.features.build_feature_table` (dice, IoU and cover with every part,
one-hot severity, area fraction, main part) and the price model turns the rows into prices.
"""
from typing import Dict, List, Optional, Protocol, Sequence, Tuple

import numpy as np
import pandas as pd

from src.damage_cost.features import (PART_NAMES, SEVERITIES, UNKNOWN_PART, build_feature_table, main_part,
                                      overlap_matrices)

INSPECTION_SEVERITY = "severe"
DUPLICATE_MASK_IOU = 0.5


class DetectorLike(Protocol):
    """What the estimator needs of a detector (:class:`src.damage_cost.detector.Detector` or a test double)."""

    class_names: Sequence[str]

    def detect(self, image_bgr: np.ndarray) -> List[Dict[str, object]]:
        """Detections with at least ``box``, ``name``, ``confidence`` and ``mask`` (uint8 [H,W])."""


class PriceModelLike(Protocol):
    """What the estimator needs of a price model (see :mod:`src.damage_cost.price_models`)."""

    def predict(self, table: pd.DataFrame) -> pd.DataFrame:
        """Feature table -> DataFrame with ``price`` (float) and ``fallback`` (str) per row. Models of
        :mod:`src.damage_cost.price_models` also have ``overlap`` (what picks the main part) and ``part_names``."""


def _box(values: Sequence[float]) -> List[float]:
    return [round(float(value), 1) for value in values]


def suppress_duplicates(detections: Sequence[Dict[str, object]],
                        iou_threshold: float = DUPLICATE_MASK_IOU) -> List[Dict[str, object]]:
    """Greedy mask NMS across classes: by decreasing ``confidence``, a detection whose mask IoU with a kept one
    exceeds ``iou_threshold`` is dropped; the kept ones stay in their input order. The detector's NMS works per
    class, so one dent can come out both as ``moderate`` and ``minor``; a claim must price it once, at its most
    confident severity."""
    if len(detections) < 2:
        return list(detections)
    order = sorted(range(len(detections)), key=lambda index: -float(detections[index]["confidence"]))
    masks = np.stack([np.asarray(detections[index]["mask"], dtype=bool) for index in order])
    ious = overlap_matrices(masks, masks)["iou"]
    kept: List[int] = []
    for position in range(len(order)):
        if all(ious[position, other] <= iou_threshold for other in kept):
            kept.append(position)
    return [detections[index] for index in sorted(order[position] for position in kept)]


def _stack(detections: Sequence[Dict[str, object]], height: int, width: int) -> np.ndarray:
    """Masks of the detections as uint8 ``[N,H,W]`` (``[0,H,W]`` when there are none)."""
    if not detections:
        return np.zeros((0, height, width), dtype=np.uint8)
    return np.stack([np.asarray(detection["mask"], dtype=np.uint8) for detection in detections])


class DamageCostEstimator:
    """Prices the damages of car images (see :meth:`estimate` for the result)."""

    def __init__(self, parts: DetectorLike, damage: Optional[DetectorLike], price_model: PriceModelLike,
                 part_names: Sequence[str] = PART_NAMES, severities: Sequence[str] = SEVERITIES) -> None:
        """``damage`` None or ``parts`` itself: ``parts`` is a joint model detecting parts and damages.

        Raises ValueError when the parts detector knows none of ``part_names`` or the damage detector none of
        ``severities`` (e.g. the two models given in the wrong order), or the price model was fitted on parts
        outside ``part_names``."""
        self.parts = parts
        self.damage = parts if damage is None else damage
        self.joint = self.damage is parts
        self.price_model = price_model
        self.part_names = tuple(part_names)
        self.severities = tuple(severities)
        for role, detector, wanted in (("parts", self.parts, self.part_names),
                                       ("damage", self.damage, self.severities)):
            if not set(detector.class_names) & set(wanted):
                raise ValueError(f"{role} detector: its classes {list(detector.class_names)} include none of "
                                 f"{list(wanted)}")
        priced_parts = list(getattr(price_model, "part_names", None) or [])
        if set(priced_parts) - set(self.part_names):
            raise ValueError(f"price model: fitted on the parts {priced_parts}, the estimator knows "
                             f"{list(self.part_names)}")
        self.overlap = getattr(price_model, "overlap", "dice")

    def _detect(self, image_bgr: np.ndarray) -> Tuple[List[Dict[str, object]], List[Dict[str, object]]]:
        """(part detections, damage detections) of one image."""
        found = self.parts.detect(image_bgr)
        damage_found = found if self.joint else self.damage.detect(image_bgr)
        return ([detection for detection in found if detection["name"] in self.part_names],
                suppress_duplicates([detection for detection in damage_found
                                     if detection["name"] in self.severities]))

    def estimate(self, image_bgr: np.ndarray, name: str) -> Dict[str, object]:
        """Price the damages of a BGR uint8 ``[H,W,3]`` image.

        Returns ``{"image": name, "height", "width", "damages": [{"severity", "part" (main part: largest overlap by
        the price model's ``overlap`` measure, dice by default; or 'unknown'),
        "dice" (with that part), "dice_by_part" {part: dice}, "confidence" (score * mask IoU), "box" [x1,y1,x2,y2],
        "area_fraction" (of the image), "price" (whole units), "fallback" (price model's note, '' when none)}],
        "parts": [{"name", "box", "confidence"}], "total" (sum of the damage prices), "inspection_needed" (a severe
        damage), "masks": {"damages": uint8 [D,H,W], "parts": uint8 [P,H,W]}}`` (masks in the lists' order, for
        rendering; not part of the report).
        """
        height, width = (int(size) for size in image_bgr.shape[:2])
        part_detections, damage_detections = self._detect(image_bgr)
        part_masks = _stack(part_detections, height, width)
        damage_masks = _stack(damage_detections, height, width)
        damages = []
        if damage_detections:
            table = build_feature_table(damage_masks, [detection["name"] for detection in damage_detections],
                                        part_masks, [detection["name"] for detection in part_detections],
                                        self.part_names)
            predicted = self.price_model.predict(table)
            parts = main_part(table, self.overlap, self.part_names)  # as the price model picks it
            for index, detection in enumerate(damage_detections):
                row, price, part = table.iloc[index], float(predicted["price"].iloc[index]), str(parts.iloc[index])
                if not np.isfinite(price):
                    raise ValueError(f"{name}: the price model returned {price} for damage {index} "
                                     f"({detection['name']} on {part})")
                damages.append({
                    "severity": detection["name"],
                    "part": part,
                    "dice": round(float(row[f"{part}_dice"]), 6) if part != UNKNOWN_PART else 0.0,
                    "dice_by_part": {part_name: round(float(row[f"{part_name}_dice"]), 6)
                                     for part_name in self.part_names},
                    "confidence": round(float(detection["confidence"]), 4),
                    "box": _box(detection["box"]),
                    "area_fraction": round(float(row["damage_area"]), 8),
                    "price": int(np.floor(price + 0.5)),  # whole units, halves up
                    "fallback": str(predicted["fallback"].iloc[index]),
                })
        return {
            "image": name,
            "height": height,
            "width": width,
            "damages": damages,
            "parts": [{"name": detection["name"], "box": _box(detection["box"]),
                       "confidence": round(float(detection["confidence"]), 4)} for detection in part_detections],
            "total": sum(damage["price"] for damage in damages),
            "inspection_needed": any(damage["severity"] == INSPECTION_SEVERITY for damage in damages),
            "masks": {"damages": damage_masks, "parts": part_masks},
        }

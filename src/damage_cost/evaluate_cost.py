"""Measure the repair-cost estimate end to end on an annotated subset, against the true prices of its claims.

    python -m src.damage_cost.evaluate_cost --parts-config C --parts-ckpt K [--damage-config C2 --damage-ckpt K2] \
        --price-model P.json --dataset DATA [--subset test] [--score-thr 0.2 0.3 0.4] [--out costs.csv]
    python -m src.damage_cost.evaluate_cost --detections OUT/detections.json --price-model P.json --dataset DATA ...

DATA is a dataset root holding ``parts/<subset>``, ``damage/<subset>`` (COCO label files of the same images) and
``claims.csv`` (one priced row per damage annotation, as the synthetic generator writes it). The true cost of an
image is the sum of its claims' prices. Each score threshold is one row of the printed table (by default one row
with each model's configured ``visualize_score_thr``, the thresholds the estimator applies), next to the same
pipeline fed the annotated masks (the error the price model alone makes):

- ``image_mae`` / ``image_mape``: mean |estimated total - true total| per image (and relative to the true total);
- ``damage_mae``: predicted damages are matched one-to-one to annotated ones (mask IoU >= 0.5, by decreasing
  confidence), then the mean |price error| over the matched pairs; ``recall`` = matched / annotated,
  ``precision`` = matched / predicted;
- ``ms_per_image``: detection and pricing time per image (the models run once; thresholds filter their output).

Instead of the models, ``--detections`` takes the detections an estimate run saved on the same photos
(``src.damage_cost.estimate --save-detections``, see :mod:`src.damage_cost.saved_detections`): the same table
without running the models again (``ms_per_image`` is then empty), for thresholds at or above those of that run.

``--out`` writes the table as CSV, and ``<out stem>_images.csv`` the per-image totals of every row.
"""
import argparse
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from src.damage_cost.claims import ClaimsError, read_claims
from src.damage_cost.estimate import add_model_arguments, check_model_arguments, load_detectors
from src.damage_cost.features import PART_NAMES, SEVERITIES, overlap_matrices
from src.damage_cost.pipeline import DamageCostEstimator
from src.damage_cost.price_models import load_price_model
from src.damage_cost.saved_detections import SavedDetections, read_detections
from src.data import CocoDataset, segmentation_to_mask

MATCH_IOU = 0.5
GROUND_TRUTH = "ground-truth masks"


class FixedDetections:
    """A detector that returns given detections whose ``confidence`` reaches ``score_thr`` (whatever the image)."""

    def __init__(self, class_names: Sequence[str], detections: Sequence[Dict[str, object]], score_thr: float = 0.0):
        self.class_names = list(class_names)
        self.detections = list(detections)
        self.score_thr = score_thr

    def detect(self, image_bgr: np.ndarray) -> List[Dict[str, object]]:
        """The stored detections at or above ``score_thr``."""
        return [detection for detection in self.detections if detection["confidence"] >= self.score_thr]


def annotated_detections(dataset: CocoDataset, image_id: int) -> List[Dict[str, object]]:
    """Every annotation of one image, in file order, as a detection of confidence 1 (box x1, y1, x2, y2)."""
    height, width = dataset.image_size(image_id)
    detections = []
    for annotation in dataset.coco.imgToAnns.get(image_id, []):
        x, y, w, h = annotation["bbox"]
        detections.append({"box": [x, y, x + w, y + h], "confidence": 1.0,
                           "name": dataset.class_names[dataset.label_of(annotation["category_id"])],
                           "mask": segmentation_to_mask(annotation["segmentation"], height, width)})
    return detections


def match_damages(predicted_masks: np.ndarray, confidences: Sequence[float],
                  annotated_masks: np.ndarray) -> List[tuple]:
    """One-to-one (predicted index, annotated index) pairs with mask IoU >= MATCH_IOU, greedy by confidence."""
    if len(predicted_masks) == 0 or len(annotated_masks) == 0:
        return []
    ious = overlap_matrices(predicted_masks, annotated_masks)["iou"]
    pairs, taken = [], set()
    for index in np.argsort(-np.asarray(confidences), kind="stable"):
        candidates = [(ious[index, other], other) for other in range(ious.shape[1])
                      if other not in taken and ious[index, other] >= MATCH_IOU]
        if candidates:
            taken.add(max(candidates)[1])
            pairs.append((int(index), max(candidates)[1]))
    return pairs


def summarize(rows: List[Dict[str, float]]) -> Dict[str, float]:
    """Table row from per-image rows (true, estimated, matched errors, counts)."""
    frame = pd.DataFrame(rows)
    errors = (frame["estimated"] - frame["true"]).abs()
    matched_errors = [error for row in rows for error in row["matched_errors"]]
    matched, annotated, predicted = (int(frame[column].sum()) for column in ("matched", "annotated", "predicted"))
    return {"image_mae": float(errors.mean()), "image_mape": float(100.0 * (errors / frame["true"]).mean()),
            "damage_mae": float(np.mean(matched_errors)) if matched_errors else float("nan"),
            "recall": matched / max(annotated, 1), "precision": matched / max(predicted, 1),
            "true_total": float(frame["true"].sum()), "estimated_total": float(frame["estimated"].sum())}


def evaluate_image(estimator: DamageCostEstimator, image: np.ndarray, name: str, annotated_masks: np.ndarray,
                   annotated_prices: np.ndarray) -> Dict[str, object]:
    """Estimated vs true cost of one image, with the price errors of its matched damages."""
    result = estimator.estimate(image, name)
    confidences = [damage["confidence"] for damage in result["damages"]]
    pairs = match_damages(result["masks"]["damages"], confidences, annotated_masks)
    return {"image": name, "true": float(annotated_prices.sum()), "estimated": float(result["total"]),
            "matched_errors": [abs(result["damages"][p]["price"] - float(annotated_prices[a])) for p, a in pairs],
            "matched": len(pairs), "annotated": len(annotated_masks), "predicted": len(result["damages"])}


def threshold_rows(score_thrs: Optional[Sequence[float]], defaults: Tuple[float, float],
                   joint: bool) -> Dict[str, Tuple[float, float]]:
    """{table row name: (parts threshold, damage threshold)}: each of ``score_thrs`` for both models, or, when None,
    ``defaults`` (parts, damage): the thresholds the estimator applies (the configs' ``visualize_score_thr``, or
    those of the run that saved the detections); one joint model uses its parts threshold for both."""
    if score_thrs:
        return {f"models, score >= {thr:g}": (thr, thr) for thr in score_thrs}
    parts_thr, damage_thr = defaults
    damage_thr = parts_thr if joint else damage_thr
    name = (f"models, score >= {parts_thr:g}" if damage_thr == parts_thr
            else f"models, parts >= {parts_thr:g}, damage >= {damage_thr:g}")
    return {name: (parts_thr, damage_thr)}


class ModelDetections:
    """Runs the models of the command line on each image (all detections, the thresholds are applied later)."""

    def __init__(self, args: argparse.Namespace) -> None:
        parts, damage = load_detectors(args, score_thr=0.0)
        self.parts, self.damage, self.joint = parts, damage, damage is None
        self.class_names = (parts.class_names, parts.class_names if damage is None else damage.class_names)
        self.defaults = (float(parts.cfg.visualize_score_thr),
                         float((parts if damage is None else damage).cfg.visualize_score_thr))
        self.seconds = 0.0

    def detections(self, name: str, image: np.ndarray) -> Tuple[List[Dict[str, object]], List[Dict[str, object]]]:
        """(parts, damage) detections of one image, timed into ``seconds``."""
        start = time.perf_counter()
        found_parts = self.parts.detect(image)
        found_damage = found_parts if self.damage is None else self.damage.detect(image)
        self.seconds += time.perf_counter() - start
        return found_parts, found_damage


class FileDetections:
    """The detections of a detections.json (see :mod:`src.damage_cost.saved_detections`) in place of the models."""

    def __init__(self, saved: SavedDetections) -> None:
        self.saved, self.joint, self.class_names = saved, saved.joint, saved.class_names
        self.defaults = saved.thresholds
        self.seconds = float("nan")

    def detections(self, name: str, image: np.ndarray) -> Tuple[List[Dict[str, object]], List[Dict[str, object]]]:
        """(parts, damage) detections saved for image file ``name``."""
        return self.saved.detections(name, image.shape[0], image.shape[1])


def evaluate(args: argparse.Namespace) -> pd.DataFrame:
    """The table of the module docstring; per-image rows under ``.attrs["images"]``."""
    root = Path(args.dataset)
    claims = read_claims(root / "claims.csv")
    if "subset" in claims.columns:
        claims = claims[claims["subset"] == args.subset]
    price_of = dict(zip(claims["annotation_id"].astype(int), claims["price"].astype(float)))
    parts_data = CocoDataset(root / "parts" / args.subset, ["background", *PART_NAMES])
    damage_data = CocoDataset(root / "damage" / args.subset, ["background", *SEVERITIES])
    missing = [annotation["id"] for annotation in damage_data.coco.dataset["annotations"]
               if annotation["id"] not in price_of]
    if missing:
        raise ClaimsError(f"{root / 'claims.csv'}: no price for {len(missing)} damage annotation(s) of subset "
                          f"'{args.subset}' (annotation ids {missing[:5]})")
    price_model = load_price_model(args.price_model)
    source = ModelDetections(args) if args.detections is None else FileDetections(read_detections(args.detections))
    thresholds = threshold_rows(args.score_thr, source.defaults, source.joint)
    if isinstance(source, FileDetections):
        source.saved.check_thresholds(list(thresholds.values()))
    parts_names, damage_names = source.class_names

    per_row: Dict[str, List[Dict[str, object]]] = {GROUND_TRUTH: []}
    per_row.update({name: [] for name in thresholds})
    for image_id in tqdm(damage_data.image_ids, desc="evaluate", unit="image"):
        path = damage_data.image_path(image_id)
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        annotations = damage_data.coco.imgToAnns.get(image_id, [])
        annotated = annotated_detections(damage_data, image_id)
        annotated_masks = np.stack([item["mask"] for item in annotated]) if annotated \
            else np.zeros((0,) + image.shape[:2], np.uint8)
        prices = np.array([price_of[annotation["id"]] for annotation in annotations], np.float64)
        truth = DamageCostEstimator(FixedDetections(parts_data.class_names, annotated_detections(parts_data, image_id)),
                                    FixedDetections(damage_data.class_names, annotated), price_model)
        per_row[GROUND_TRUTH].append(evaluate_image(truth, image, path.name, annotated_masks, prices))
        found_parts, found_damage = source.detections(path.name, image)
        for name, (parts_thr, damage_thr) in thresholds.items():
            parts = FixedDetections(parts_names, found_parts, parts_thr)
            damage = None if source.joint else FixedDetections(damage_names, found_damage, damage_thr)
            estimator = DamageCostEstimator(parts, damage, price_model)
            per_row[name].append(evaluate_image(estimator, image, path.name, annotated_masks, prices))
    table = pd.DataFrame([{"pipeline": name, **summarize(rows)} for name, rows in per_row.items()])
    table["ms_per_image"] = [float("nan")] + [1000.0 * source.seconds / len(damage_data)] * len(thresholds)
    table.attrs["images"] = pd.concat([pd.DataFrame(rows).drop(columns="matched_errors").assign(pipeline=name)
                                       for name, rows in per_row.items()], ignore_index=True)
    return table


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m src.damage_cost.evaluate_cost",
                                     description="End-to-end repair-cost error against the true claim prices")
    add_model_arguments(parser, models_required=False)
    parser.add_argument("--detections", type=Path,
                        help="detections.json of an estimate run on the subset's photos (--save-detections), "
                             "instead of the model options")
    parser.add_argument("--dataset", required=True, help="root with parts/<subset>, damage/<subset> and claims.csv")
    parser.add_argument("--subset", default="test", help="subset to evaluate (default: test)")
    parser.add_argument("--score-thr", type=float, nargs="+", default=None,
                        help="score * mask IoU thresholds to compare, each applied to both models (default: each "
                             "model's visualize_score_thr, the thresholds the estimator uses)")
    parser.add_argument("--out", type=Path, help="write the table as CSV here (and <stem>_images.csv)")
    args = parser.parse_args(argv)
    check_model_arguments(parser, args)
    models_given = bool(args.parts_config or args.parts_ckpt or args.damage_config or args.damage_ckpt)
    if args.detections is not None and models_given:
        parser.error("give either the model options or --detections, not both")
    if args.detections is None and not (args.parts_config and args.parts_ckpt):
        parser.error("--parts-config and --parts-ckpt are required (or --detections)")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command-line entry point; returns the exit code (2 on unusable input)."""
    args = parse_args(argv)
    try:
        table = evaluate(args)
    except (FileNotFoundError, ValueError) as error:
        print(f"evaluate_cost: error: {error}", file=sys.stderr)
        return 2
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(table.to_string(index=False, float_format=lambda value: f"{value:.3f}"))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.out, index=False)
        table.attrs["images"].to_csv(args.out.with_name(f"{args.out.stem}_images.csv"), index=False)
        print(f"Table: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

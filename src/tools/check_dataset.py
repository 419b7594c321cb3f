"""Check a COCO dataset against a config before training.

Usage: ``python -m src.tools.check_dataset CONFIG DATASET [--key value ...]`` (config overrides, e.g. ``--num_gts 50``).
DATASET is anything :func:`src.data.resolve_dataset` accepts. Prints errors (training would fail or learn wrong
labels) and warnings (data dropped or suspicious), and exits 1 when there is an error, 0 otherwise, 2 on bad usage.

Besides the structural checks of :func:`src.data.inspect_annotations` it reads every image (corrupt files,
sizes that differ from the annotation file) and decodes every mask (polygons or boxes reaching outside the image,
empty masks, boxes whose IoU with the mask's tight box is below ``BOX_MASK_MIN_IOU``, images with more instances
than ``num_gts``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
from tqdm import tqdm

from src.data import (ERROR, WARNING, DatasetError, Problem, format_problems, inspect_annotations, is_trainable,
                      mask_tight_box, read_coco_json, read_image, resolve_dataset, segmentation_format,
                      segmentation_to_mask, xywh_to_clipped_xyxy)
from src.model_utils.config import Config, ConfigError, load_config

BOX_MASK_MIN_IOU = 0.9
BOX_MASK_SLACK_PX = 1.0


def box_iou(box_a: np.ndarray, box_b: np.ndarray) -> float:
    """IoU of two x1,y1,x2,y2 boxes."""
    width = max(0.0, min(box_a[2], box_b[2]) - max(box_a[0], box_b[0]))
    height = max(0.0, min(box_a[3], box_b[3]) - max(box_a[1], box_b[1]))
    overlap = width * height
    union = (box_a[2] - box_a[0]) * (box_a[3] - box_a[1]) + (box_b[2] - box_b[0]) * (box_b[3] - box_b[1]) - overlap
    return float(overlap / union) if union > 0 else 0.0


def _check_annotation(annotation: dict, height: int, width: int, where: str) -> list[Problem]:
    """Geometry problems of one structurally valid, non-crowd annotation on a ``height x width`` image."""
    problems = []
    x, y, box_w, box_h = (float(value) for value in annotation["bbox"])
    if x < 0 or y < 0 or x + box_w > width or y + box_h > height:
        problems.append(Problem(WARNING, "box outside the image",
                                f"{where}: bbox {annotation['bbox']} exceeds the {width}x{height} image (clipped)"))
    segmentation = annotation["segmentation"]
    if segmentation_format(segmentation) == "polygon" and segmentation:
        points = np.concatenate([np.asarray(polygon, np.float64) for polygon in segmentation])
        xs, ys = points[0::2], points[1::2]
        if xs.min() < 0 or ys.min() < 0 or xs.max() > width or ys.max() > height:
            problems.append(Problem(WARNING, "polygon outside the image",
                                    f"{where}: polygon reaches x [{xs.min():g}, {xs.max():g}], y [{ys.min():g}, "
                                    f"{ys.max():g}] on the {width}x{height} image (clipped)"))
    if not is_trainable(annotation, height, width):
        return problems
    tight = mask_tight_box(segmentation_to_mask(segmentation, height, width))
    if tight is None:
        problems.append(Problem(WARNING, "empty mask", f"{where}: the mask has no pixel inside the image"))
        return problems
    box = xywh_to_clipped_xyxy(annotation["bbox"], height, width)
    iou = box_iou(box, tight)
    if iou < BOX_MASK_MIN_IOU and np.abs(box - tight).max() > BOX_MASK_SLACK_PX:
        problems.append(Problem(WARNING, "box disagrees with mask",
                                f"{where}: bbox {np.round(box, 1).tolist()} vs mask tight box {tight.tolist()} "
                                f"(IoU {iou:.2f} < {BOX_MASK_MIN_IOU})"))
    return problems


def _stored_size_matches(path: Path, height: object, width: object) -> bool:
    """True when training reads the image at the annotated size anyway: a JPEG annotated as stored, before its EXIF
    orientation (see :func:`src.data.read_image`)."""
    try:
        read_image(path, height, width)
    except DatasetError:
        return False
    return True


def _is_checkable(annotation: dict, height: int, width: int) -> bool:
    """Structure good enough to decode (other cases are already reported as errors by inspect_annotations)."""
    segmentation = annotation.get("segmentation")
    kind = segmentation_format(segmentation)
    if kind is None or not isinstance(annotation.get("bbox"), list) or len(annotation["bbox"]) != 4:
        return False
    return kind == "polygon" or list(segmentation["size"]) == [height, width]


def check_dataset(cfg: Config, dataset_path: str | Path, progress: bool = True) -> tuple[list[Problem], str]:
    """All problems of a dataset for a config, and a one-paragraph summary of what was checked."""
    try:
        annotation_file, image_dir = resolve_dataset(dataset_path)
        data = read_coco_json(annotation_file)
    except DatasetError as error:
        return [Problem(ERROR, "unreadable dataset", str(error))], f"dataset: {dataset_path}"
    problems = inspect_annotations(data, annotation_file, image_dir, cfg.coco_classes)
    summary = f"annotation file: {annotation_file}\nimage folder:    {image_dir}"
    if any(problem.kind == "missing field" for problem in problems):
        return problems, summary
    images = {image["id"]: image for image in data["images"] if isinstance(image, dict) and "id" in image}
    categories = {category.get("id"): category.get("name") for category in data["categories"]
                  if isinstance(category, dict)}
    known_names = set(cfg.coco_classes[1:])
    per_image: dict[int, list[dict]] = {}
    for annotation in data["annotations"]:
        if (isinstance(annotation, dict) and annotation.get("image_id") in images
                and annotation.get("category_id") in categories):
            per_image.setdefault(annotation["image_id"], []).append(annotation)
    trainable_total = 0
    for image_id, image in tqdm(images.items(), desc="checking images", disable=not progress, file=sys.stderr):
        path = image_dir / str(image.get("file_name"))
        height, width = image.get("height"), image.get("width")
        if path.is_file():
            pixels = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if pixels is None:
                problems.append(Problem(ERROR, "corrupt image", f"{path}: OpenCV cannot decode it"))
            elif pixels.shape[:2] != (height, width) and not _stored_size_matches(path, height, width):
                problems.append(Problem(ERROR, "image size mismatch", f"{path}: the file is {pixels.shape[0]}x"
                                        f"{pixels.shape[1]} (h x w), the annotation file says {height}x{width}"))
        if not (isinstance(height, int) and isinstance(width, int)):
            continue
        trainable = 0
        for annotation in per_image.get(image_id, []):
            if annotation.get("iscrowd", 0) or not _is_checkable(annotation, height, width):
                continue
            where = f"annotation id {annotation.get('id')} ({image.get('file_name')})"
            problems += _check_annotation(annotation, height, width, where)
            if is_trainable(annotation, height, width) and categories[annotation["category_id"]] in known_names:
                trainable += 1
        trainable_total += trainable
        if trainable > cfg.num_gts:
            problems.append(Problem(WARNING, "more instances than num_gts",
                                    f"{image.get('file_name')}: {trainable} instances > num_gts={cfg.num_gts}; "
                                    f"the {cfg.num_gts} largest are kept"))
    summary += (f"\n{len(images)} images, {len(data['annotations'])} annotations, {len(categories)} categories; "
                f"{trainable_total} instances usable for training")
    return problems, summary


def format_report(problems: Sequence[Problem], summary: str, max_listed: int) -> str:
    """Text report: summary, errors, warnings and a final verdict line."""
    errors = [problem for problem in problems if problem.level == ERROR]
    warnings = [problem for problem in problems if problem.level == WARNING]
    lines = [summary]
    if errors:
        lines += [f"ERRORS ({len(errors)}):", format_problems(errors, max_listed)]
    if warnings:
        lines += [f"WARNINGS ({len(warnings)}):", format_problems(warnings, max_listed)]
    verdict = "FAILED" if errors else "OK"
    lines.append(f"{verdict}: {len(errors)} error(s), {len(warnings)} warning(s)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (0 ok, 1 errors found, 2 bad usage)."""
    parser = argparse.ArgumentParser(description="Check a COCO dataset against a config before training.",
                                     epilog="Any config key can be overridden: --key value (e.g. --num_gts 50).")
    parser.add_argument("config", help="config YAML (its coco_classes and num_gts are checked against)")
    parser.add_argument("dataset", help="subset folder (labels.json + data/, or annotations/instances_*.json) "
                                        "or a COCO JSON file")
    parser.add_argument("--max_listed", type=int, default=10, help="details printed per kind of problem")
    parser.add_argument("--no_progress", action="store_true", help="hide the progress bar")
    args, overrides = parser.parse_known_args(argv)
    try:
        cfg = load_config(args.config, overrides)
    except ConfigError as error:
        print(f"config error: {error}", file=sys.stderr)
        return 2
    problems, summary = check_dataset(cfg, args.dataset, progress=not args.no_progress)
    print(format_report(problems, summary, args.max_listed))
    return 1 if any(problem.level == ERROR for problem in problems) else 0


if __name__ == "__main__":
    sys.exit(main())

"""COCO annotations in memory: segmentation formats and masks, boxes, which annotations training keeps
(:func:`is_trainable`) and the structural check of an annotation file (:func:`inspect_annotations`)."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from pycocotools import mask as mask_utils

ERROR = "error"
WARNING = "warning"
MAX_LISTED_PROBLEMS = 10


class DatasetError(ValueError):
    """A dataset folder, annotation file or image is missing or malformed; the message names the file."""


@dataclass(frozen=True)
class Problem:
    """One finding about an annotation file: ``level`` is ERROR or WARNING, ``kind`` groups similar findings."""

    level: str
    kind: str
    detail: str


# --------------------------------------------------------------------------------------------------------------------
# segmentations

def usable_polygons(segmentation: list) -> list[list[float]]:
    """Polygons (flat x,y lists) with at least 3 points and an even number of coordinates."""
    return [list(polygon) for polygon in segmentation
            if isinstance(polygon, (list, tuple)) and len(polygon) >= 6 and len(polygon) % 2 == 0]


def segmentation_format(segmentation: Any) -> str | None:
    """'polygon', 'rle' (compressed counts string), 'uncompressed_rle' (counts list) or None when unknown."""
    if isinstance(segmentation, list) and all(isinstance(polygon, (list, tuple)) for polygon in segmentation):
        numbers = all(isinstance(value, (int, float)) and not isinstance(value, bool)
                      for polygon in segmentation for value in polygon)
        return "polygon" if numbers else None
    if isinstance(segmentation, dict) and "counts" in segmentation and "size" in segmentation:
        size = segmentation["size"]
        if not (isinstance(size, (list, tuple)) and len(size) == 2):
            return None
        if isinstance(segmentation["counts"], (str, bytes)):
            return "rle"
        if isinstance(segmentation["counts"], list):
            return "uncompressed_rle"
    return None


def segmentation_to_rle(segmentation: Any, height: int, width: int) -> dict:
    """Compressed RLE of a COCO segmentation (polygons merged); raises DatasetError on an unknown format."""
    kind = segmentation_format(segmentation)
    if kind == "polygon":
        polygons = usable_polygons(segmentation)
        if not polygons:
            return mask_utils.encode(np.zeros((height, width), np.uint8, order="F"))
        return mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
    if kind == "uncompressed_rle":
        return mask_utils.frPyObjects(segmentation, height, width)
    if kind == "rle":
        counts = segmentation["counts"]
        return {"size": list(segmentation["size"]), "counts": counts.encode() if isinstance(counts, str) else counts}
    raise DatasetError(f"segmentation of unknown format: {str(segmentation)[:80]} "
                       f"(expected a list of polygons or an RLE dict with 'size' and 'counts')")


def segmentation_to_mask(segmentation: Any, height: int, width: int) -> np.ndarray:
    """Binary mask [height, width] uint8 (0/1) of a COCO polygon list or RLE (compressed or not)."""
    rle = segmentation_to_rle(segmentation, height, width)
    if list(rle["size"]) != [height, width]:
        raise DatasetError(f"RLE size {list(rle['size'])} differs from the image size [{height}, {width}]")
    return mask_utils.decode(rle).astype(np.uint8)


def mask_tight_box(mask: np.ndarray) -> np.ndarray | None:
    """Tight box [4] float32 x1,y1,x2,y2 (x2 exclusive) around the nonzero pixels of a [H,W] mask, None if empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], np.float32)


def xywh_to_clipped_xyxy(bbox: Sequence[float], height: int, width: int) -> np.ndarray:
    """COCO [x, y, w, h] to [x1, y1, x2, y2] float32 clipped to the image."""
    x, y, w, h = (float(value) for value in bbox)
    return np.array([min(max(x, 0.0), width), min(max(y, 0.0), height),
                     min(max(x + w, 0.0), width), min(max(y + h, 0.0), height)], np.float32)


def _is_number_list(value: Any, length: int) -> bool:
    return (isinstance(value, (list, tuple)) and len(value) == length
            and all(isinstance(item, (int, float)) and not isinstance(item, bool) for item in value))


def is_trainable(annotation: Mapping[str, Any], height: int, width: int) -> bool:
    """True for a well-formed annotation the training keeps: not crowd, a usable mask (RLE or a polygon with
    >= 3 points) and a box at least 1 pixel wide and high after clipping to the ``height x width`` image."""
    segmentation = annotation.get("segmentation")
    kind = segmentation_format(segmentation)
    if annotation.get("iscrowd", 0) or kind is None or not _is_number_list(annotation.get("bbox"), 4):
        return False
    if kind == "polygon" and not usable_polygons(segmentation):
        return False
    box = xywh_to_clipped_xyxy(annotation["bbox"], height, width)
    return bool(box[2] - box[0] >= 1 and box[3] - box[1] >= 1)


# --------------------------------------------------------------------------------------------------------------------
# checking an annotation file

def inspect_annotations(data: Mapping[str, Any], json_path: Path, image_dir: Path,
                        coco_classes: Sequence[str]) -> list[Problem]:
    """Structural problems of a COCO dict that can be found without decoding masks or reading images.

    Errors: missing/ill-typed fields, duplicate ids, annotations pointing at unknown image or category ids,
    segmentations of unknown format, used categories whose name is not in ``coco_classes``, missing image files.
    Warnings: listed-but-unused unknown categories, classes of ``coco_classes`` absent from the file, duplicate
    category names, degenerate boxes, empty or < 3 point polygons, annotations left without a mask, images left
    without a valid annotation.
    """
    problems: list[Problem] = []

    def error(kind: str, detail: str) -> None:
        problems.append(Problem(ERROR, kind, detail))

    def warning(kind: str, detail: str) -> None:
        problems.append(Problem(WARNING, kind, detail))

    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            error("missing field", f"{json_path}: top-level '{key}' must be a list")
    if problems:
        return problems

    images: dict[int, dict] = {}
    for position, image in enumerate(data["images"]):
        if not (isinstance(image, dict) and isinstance(image.get("id"), int) and isinstance(image.get("file_name"), str)
                and isinstance(image.get("height"), int) and isinstance(image.get("width"), int)):
            error("malformed image entry", f"images[{position}] needs integer 'id', 'height', 'width' and a "
                                           f"'file_name' string, got {str(image)[:80]}")
        elif image["id"] in images:
            error("duplicate image id", f"image id {image['id']} appears more than once")
        else:
            images[image["id"]] = image
            if not (image_dir / image["file_name"]).is_file():
                error("missing image file", str(image_dir / image["file_name"]))

    categories: dict[int, str] = {}
    for position, category in enumerate(data["categories"]):
        if not (isinstance(category, dict) and isinstance(category.get("id"), int)
                and isinstance(category.get("name"), str)):
            error("malformed category entry", f"categories[{position}] needs an integer 'id' and a 'name' string")
        elif category["id"] in categories:
            error("duplicate category id", f"category id {category['id']} appears more than once")
        else:
            categories[category["id"]] = category["name"]
    for name, count in Counter(categories.values()).items():
        if count > 1:
            warning("duplicate category name", f"'{name}' names {count} categories; they share one label")

    known_names = set(coco_classes[1:])
    used_categories: Counter = Counter()
    valid_per_image: Counter = Counter()
    seen_annotation_ids: set = set()
    for position, annotation in enumerate(data["annotations"]):
        if not isinstance(annotation, dict):
            error("malformed annotation", f"annotations[{position}] is not an object")
            continue
        where = f"annotation id {annotation.get('id', f'at position {position}')}"
        if annotation.get("id") in seen_annotation_ids:
            error("duplicate annotation id", where)
        seen_annotation_ids.add(annotation.get("id"))
        image_id, category_id = annotation.get("image_id"), annotation.get("category_id")
        if image_id not in images:
            error("unknown image id", f"{where} points at image_id {image_id!r}, not in 'images'")
            continue
        if category_id not in categories:
            error("unknown category id", f"{where} points at category_id {category_id!r}, not in 'categories'")
            continue
        used_categories[category_id] += 1
        segmentation = annotation.get("segmentation")
        kind = segmentation_format(segmentation)
        if kind is None:
            error("unknown segmentation format", f"{where}: segmentation {str(segmentation)[:60]} is neither a list "
                                                 f"of polygons nor an RLE dict with 'size' and 'counts'")
            continue
        bbox = annotation.get("bbox")
        if not _is_number_list(bbox, 4):
            error("malformed bbox", f"{where}: 'bbox' must be [x, y, width, height], got {bbox!r}")
            continue
        if annotation.get("iscrowd", 0):
            continue
        image = images[image_id]
        if kind == "polygon":
            ignored = len(segmentation) - len(usable_polygons(segmentation))
            if len(segmentation) == 0:
                warning("empty segmentation", f"{where}: no polygon; dropped")
            elif ignored:
                warning("polygon with < 3 points", f"{where}: {ignored} of {len(segmentation)} polygon(s) ignored"
                                                   + ("; dropped" if ignored == len(segmentation) else ""))
        elif list(segmentation["size"]) != [image["height"], image["width"]]:
            error("RLE size mismatch", f"{where}: RLE size {segmentation['size']} differs from the image size "
                                       f"[{image['height']}, {image['width']}] of image id {image_id}")
            continue
        box = xywh_to_clipped_xyxy(bbox, image["height"], image["width"])
        if box[2] - box[0] < 1 or box[3] - box[1] < 1:
            warning("degenerate box", f"{where}: box {bbox} (clipped to the image) is under 1 pixel wide or high; "
                                      f"dropped")
        if is_trainable(annotation, image["height"], image["width"]) and categories[category_id] in known_names:
            valid_per_image[image_id] += 1

    unknown_used = sorted({categories[cid] for cid in used_categories if categories[cid] not in known_names})
    if unknown_used:
        error("category not in coco_classes", f"{json_path}: annotated categories {unknown_used} are not in "
                                              f"coco_classes {list(coco_classes[1:])}")
    unknown_unused = sorted({name for cid, name in categories.items()
                             if name not in known_names and cid not in used_categories})
    if unknown_unused:
        warning("unused category not in coco_classes", f"{unknown_unused} listed in 'categories' but never annotated")
    absent = [name for name in coco_classes[1:] if name not in set(categories.values())]
    if absent:
        warning("class absent from the file", f"coco_classes {absent} have no category in {json_path.name}")
    for image_id, image in images.items():
        if valid_per_image[image_id] == 0:
            warning("image without valid annotations", f"{image['file_name']} (id {image_id})")
    return problems


def format_problems(problems: Sequence[Problem], limit: int = MAX_LISTED_PROBLEMS) -> str:
    """Problems grouped by kind, at most ``limit`` details per kind, one per line."""
    by_kind: dict[str, list[Problem]] = {}
    for problem in problems:
        by_kind.setdefault(problem.kind, []).append(problem)
    lines = []
    for kind, group in by_kind.items():
        lines.append(f"  {kind} ({len(group)}):")
        lines += [f"    - {problem.detail}" for problem in group[:limit]]
        if len(group) > limit:
            lines.append(f"    ... and {len(group) - limit} more")
    return "\n".join(lines)

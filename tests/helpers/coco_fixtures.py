"""Builders of small COCO datasets on disk (model zoo or standard COCO layout) for tests."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
from pycocotools import mask as mask_utils

PARTS_CLASSES = ["background", "front_bumper", "rear_bumper", "headlamp", "door", "hood"]


def rect_polygon(x1: float, y1: float, x2: float, y2: float) -> list[float]:
    """Flat polygon [x, y, ...] of an axis-aligned rectangle (pycocotools fills pixels x1..x2-1, y1..y2-1)."""
    return [x1, y1, x2, y1, x2, y2, x1, y2]


def polygon_annotation(ann_id: int, image_id: int, category_id: int, polygons: Sequence[Sequence[float]],
                       bbox: Sequence[float] | None = None, iscrowd: int = 0) -> dict:
    """Annotation with polygon segmentation; bbox [x, y, w, h] defaults to the polygons' extent."""
    if bbox is None:
        xs = [value for polygon in polygons for value in polygon[0::2]]
        ys = [value for polygon in polygons for value in polygon[1::2]]
        bbox = [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
    return {"id": ann_id, "image_id": image_id, "category_id": category_id,
            "segmentation": [list(polygon) for polygon in polygons], "bbox": list(bbox), "iscrowd": iscrowd,
            "area": float(bbox[2] * bbox[3])}


def uncompressed_counts(mask: np.ndarray) -> list[int]:
    """Uncompressed COCO RLE counts of a [H,W] binary mask (column-major runs, starting with zeros)."""
    flat = mask.astype(np.uint8).flatten(order="F")
    changes = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(bounds).tolist()
    return [0] + counts if flat[0] == 1 else counts


def rle_annotation(ann_id: int, image_id: int, category_id: int, mask: np.ndarray, compressed: bool = True,
                   bbox: Sequence[float] | None = None, iscrowd: int = 0) -> dict:
    """Annotation whose segmentation is the RLE of ``mask`` [H,W]; bbox defaults to the mask's tight box."""
    height, width = mask.shape
    if compressed:
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        segmentation = {"size": [height, width], "counts": rle["counts"].decode("ascii")}
    else:
        segmentation = {"size": [height, width], "counts": uncompressed_counts(mask)}
    if bbox is None:
        ys, xs = np.nonzero(mask)
        bbox = [int(xs.min()), int(ys.min()), int(xs.max() + 1 - xs.min()), int(ys.max() + 1 - ys.min())]
    return {"id": ann_id, "image_id": image_id, "category_id": category_id, "segmentation": segmentation,
            "bbox": [float(value) for value in bbox], "iscrowd": iscrowd, "area": float(mask.sum())}


def write_image(path: Path, height: int, width: int, seed: int = 0) -> None:
    """A random-noise colour JPEG of the given size."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    if not cv2.imwrite(str(path), pixels):
        raise OSError(f"could not write {path}")


def categories_of(names: Sequence[str], first_id: int = 1) -> list[dict]:
    """COCO categories with consecutive ids starting at ``first_id``, in the given order."""
    return [{"id": first_id + index, "name": name, "supercategory": "none"} for index, name in enumerate(names)]


def write_coco_dataset(root: Path, images: Sequence[dict], annotations: Sequence[dict], categories: Sequence[dict],
                       layout: str = "zoo", subset: str = "val2017") -> Path:
    """Write a COCO dataset and one JPEG per image entry; returns the path to pass as the dataset folder.

    layout "zoo": ``root/labels.json`` + ``root/data/``; "coco": ``root/annotations/instances_<subset>.json`` +
    ``root/<subset>/``. ``images`` entries need id, file_name, height, width.
    """
    if layout == "zoo":
        json_path, image_dir = root / "labels.json", root / "data"
    elif layout == "coco":
        json_path, image_dir = root / "annotations" / f"instances_{subset}.json", root / subset
    else:
        raise ValueError(f"layout must be 'zoo' or 'coco', got {layout!r}")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    image_dir.mkdir(parents=True, exist_ok=True)
    for image in images:
        write_image(image_dir / image["file_name"], image["height"], image["width"], seed=image["id"])
    data = {"images": list(images), "annotations": list(annotations), "categories": list(categories)}
    json_path.write_text(json.dumps(data), encoding="utf-8")
    return root


def make_random_dataset(root: Path, num_images: int, class_names: Sequence[str] = PARTS_CLASSES[1:],
                        seed: int = 0, layout: str = "zoo", max_instances: int = 3,
                        size_range: tuple[int, int] = (48, 96)) -> dict:
    """A dataset of random-size images, each with 1..max_instances rectangles (polygons or compressed RLE).

    Category ids are the class order reversed (so they differ from label order). Returns the COCO dict written.
    """
    rng = np.random.default_rng(seed)
    categories = [{"id": 10 + len(class_names) - index, "name": name} for index, name in enumerate(class_names)]
    images, annotations = [], []
    for image_id in range(1, num_images + 1):
        height, width = (int(value) for value in rng.integers(size_range[0], size_range[1] + 1, 2))
        images.append({"id": image_id, "file_name": f"{image_id:06d}.jpg", "height": height, "width": width})
        for _ in range(int(rng.integers(1, max_instances + 1))):
            x1, y1 = int(rng.integers(0, width - 12)), int(rng.integers(0, height - 12))
            x2, y2 = int(rng.integers(x1 + 8, width + 1)), int(rng.integers(y1 + 8, height + 1))
            category_id = categories[int(rng.integers(len(categories)))]["id"]
            ann_id = len(annotations) + 1
            if rng.random() < 0.5:
                annotations.append(polygon_annotation(ann_id, image_id, category_id, [rect_polygon(x1, y1, x2, y2)]))
            else:
                mask = np.zeros((height, width), np.uint8)
                mask[y1:y2, x1:x2] = 1
                annotations.append(rle_annotation(ann_id, image_id, category_id, mask))
    write_coco_dataset(root, images, annotations, categories, layout=layout)
    return {"images": images, "annotations": annotations, "categories": categories}

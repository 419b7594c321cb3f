"""Reading a COCO-format instance segmentation dataset: its layout, annotation file, images and masks.

Dataset locations accepted by :func:`resolve_dataset` (and so by :class:`CocoDataset` and
:func:`src.data.pipeline.create_dataset`):

* model zoo layout: a folder with ``labels.json`` and the images in ``data/``;
* standard COCO layout: a folder with exactly one ``annotations/instances_<name>.json`` and the images in
  ``<name>/`` (or ``images/``);
* a COCO JSON file itself: the images are looked up in ``../<name>/`` or ``../images/`` when the file is
  ``annotations/instances_<name>.json``, otherwise in ``data/``, ``images/`` or the file's own folder.

Categories are matched to ``coco_classes`` BY NAME: label = index of the name in ``coco_classes`` (0 is background).
An annotation whose category name is not in ``coco_classes`` is an error naming the unknown names and the file.
Crowd annotations (``iscrowd=1``), boxes narrower or lower than 1 pixel (after clipping to the image) and
annotations without a usable mask (no polygon with at least 3 points) are dropped.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from src.data.annotations import (ERROR, WARNING, DatasetError, format_problems, inspect_annotations, is_trainable,
                                  segmentation_format, segmentation_to_mask, segmentation_to_rle, usable_polygons,
                                  xywh_to_clipped_xyxy)

LOGGER = logging.getLogger(__name__)


@dataclass
class ImageRecord:
    """What the pipeline needs of one image: path, size and its valid instances.

    ``boxes`` [N,4] float32 x1,y1,x2,y2 in original pixels (clipped to the image), ``labels`` [N] int32 (1..),
    ``segmentations`` the N COCO segmentations (polygon lists with only usable polygons, or RLE dicts).
    """

    image_id: int
    path: Path
    height: int
    width: int
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    labels: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int32))
    segmentations: list = field(default_factory=list)


# --------------------------------------------------------------------------------------------------------------------
# locating and reading annotation files

def _first_existing_dir(candidates: Sequence[Path]) -> Path | None:
    return next((candidate for candidate in candidates if candidate.is_dir()), None)


def _image_dir_for_json(json_path: Path) -> Path:
    """Image folder that belongs to an annotation file given directly (see the module docstring)."""
    parent = json_path.parent
    candidates: list[Path] = []
    if parent.name == "annotations" and json_path.stem.startswith("instances_"):
        subset_name = json_path.stem[len("instances_"):]
        candidates += [parent.parent / subset_name, parent.parent / "images"]
    candidates += [parent / "data", parent / "images"]
    return _first_existing_dir(candidates) or parent


def resolve_dataset(path: str | os.PathLike) -> tuple[Path, Path]:
    """Find the annotation JSON and the image folder of a dataset path.

    Args:
        path: a subset folder (model zoo or COCO layout) or a COCO JSON file (see the module docstring).

    Returns:
        (annotation_file, image_dir).

    Raises:
        DatasetError: the path does not exist, holds no annotation file, holds several, or lacks the image folder.
    """
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"dataset path does not exist: {path}")
    if path.is_file():
        if path.suffix.lower() != ".json":
            raise DatasetError(f"{path}: expected a dataset folder or a COCO annotation .json file")
        return path, _image_dir_for_json(path)
    labels_file = path / "labels.json"
    if labels_file.is_file():
        image_dir = path / "data"
        if not image_dir.is_dir():
            raise DatasetError(f"{path}: has labels.json but no image folder 'data/' next to it")
        return labels_file, image_dir
    instance_files = sorted((path / "annotations").glob("instances_*.json"))
    if len(instance_files) == 1:
        json_path = instance_files[0]
        subset_name = json_path.stem[len("instances_"):]
        image_dir = _first_existing_dir([path / subset_name, path / "images"])
        if image_dir is None:
            raise DatasetError(f"{path}: found {json_path.name} but no image folder '{subset_name}/' or 'images/'")
        return json_path, image_dir
    if len(instance_files) > 1:
        names = ", ".join(str(file) for file in instance_files)
        raise DatasetError(f"{path}: several annotation files ({names}); pass the one to use as the dataset path")
    raise DatasetError(f"{path}: no labels.json (model zoo layout: labels.json + data/) and no "
                       f"annotations/instances_<name>.json (COCO layout) found")


def read_coco_json(json_path: str | os.PathLike) -> dict:
    """Load a COCO annotation file; missing or malformed files raise DatasetError with the line and column."""
    json_path = Path(json_path)
    try:
        with open(json_path, encoding="utf-8") as stream:
            data = json.load(stream)
    except FileNotFoundError:
        raise DatasetError(f"annotation file not found: {json_path}") from None
    except json.JSONDecodeError as error:
        raise DatasetError(f"{json_path}: malformed JSON at line {error.lineno}, column {error.colno}: "
                           f"{error.msg}") from None
    except UnicodeDecodeError as error:
        raise DatasetError(f"{json_path}: not a UTF-8 text file ({error.reason})") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{json_path}: expected a JSON object with 'images', 'annotations' and 'categories'")
    return data


# --------------------------------------------------------------------------------------------------------------------
# the annotation file as a whole

class CocoDataset:
    """A checked COCO annotation file with its images, categories mapped by name to ``coco_classes``.

    Attributes:
        annotation_file, image_dir: where the data lives (see :func:`resolve_dataset`).
        coco: a pycocotools ``COCO`` of the file (missing ``iscrowd``/``area`` filled in), for evaluation.
        image_ids: every image id, in file order.
        class_names: ``coco_classes``.

    Raises:
        DatasetError: on any error found by :func:`inspect_annotations`, listing them with the file name.
    """

    def __init__(self, data_dir: str | os.PathLike, coco_classes: Sequence[str]):
        self.annotation_file, self.image_dir = resolve_dataset(data_dir)
        self.class_names = list(coco_classes)
        data = read_coco_json(self.annotation_file)
        problems = inspect_annotations(data, self.annotation_file, self.image_dir, self.class_names)
        errors = [problem for problem in problems if problem.level == ERROR]
        if errors:
            raise DatasetError(f"{self.annotation_file}: {len(errors)} error(s) (run python -m "
                               f"src.tools.check_dataset for a full report):\n{format_problems(errors)}")
        warnings = Counter(problem.kind for problem in problems if problem.level == WARNING)
        if warnings:
            LOGGER.warning("%s: %s", self.annotation_file, ", ".join(f"{count} x {kind}" for kind, count in
                                                                      warnings.items()))
        images_by_id = {image["id"]: image for image in data["images"]}
        for annotation in data["annotations"]:
            annotation.setdefault("iscrowd", 0)
            if "area" not in annotation:
                image = images_by_id[annotation["image_id"]]
                rle = segmentation_to_rle(annotation["segmentation"], image["height"], image["width"])
                annotation["area"] = float(mask_utils.area(rle))
        self.coco = COCO()
        self.coco.dataset = data
        with contextlib.redirect_stdout(io.StringIO()):
            self.coco.createIndex()
        self.image_ids: list[int] = [image["id"] for image in data["images"]]
        self._label_of: dict[int, int] = {}
        self._category_of: dict[int, int] = {}
        for category in data["categories"]:
            if category["name"] in self.class_names[1:]:
                label = self.class_names.index(category["name"])
                self._label_of[category["id"]] = label
                self._category_of.setdefault(label, category["id"])

    def __len__(self) -> int:
        return len(self.image_ids)

    def label_of(self, category_id: int) -> int:
        """Label (index in coco_classes) of a category id of the file."""
        return self._label_of[category_id]

    def category_id_of(self, label: int) -> int:
        """Category id in the file of a label (1..num_classes-1); KeyError when the file lacks that class."""
        if label not in self._category_of:
            raise KeyError(f"class '{self.class_names[label]}' (label {label}) has no category in "
                           f"{self.annotation_file}")
        return self._category_of[label]

    def image_path(self, image_id: int) -> Path:
        """Path of the image file of an image id."""
        return self.image_dir / self.coco.imgs[image_id]["file_name"]

    def image_size(self, image_id: int) -> tuple[int, int]:
        """(height, width) of an image as recorded in the annotation file."""
        image = self.coco.imgs[image_id]
        return image["height"], image["width"]

    def record(self, image_id: int) -> ImageRecord:
        """The image's path, size and valid instances (crowd, degenerate, mask-less annotations dropped)."""
        height, width = self.image_size(image_id)
        boxes, labels, segmentations = [], [], []
        for annotation in self.coco.imgToAnns.get(image_id, []):
            if annotation["category_id"] not in self._label_of or not is_trainable(annotation, height, width):
                continue
            segmentation = annotation["segmentation"]
            if segmentation_format(segmentation) == "polygon":
                segmentation = usable_polygons(segmentation)
            boxes.append(xywh_to_clipped_xyxy(annotation["bbox"], height, width))
            labels.append(self._label_of[annotation["category_id"]])
            segmentations.append(segmentation)
        return ImageRecord(image_id, self.image_path(image_id), height, width,
                           np.array(boxes, np.float32).reshape(-1, 4), np.array(labels, np.int32), segmentations)


def read_image(path: Path, height: int | None = None, width: int | None = None) -> np.ndarray:
    """BGR uint8 [H,W,3] image; DatasetError naming the file when unreadable or not of the expected size.

    A JPEG's EXIF orientation is applied (as photo viewers show it) unless the annotation's height x width is the
    stored, unrotated size: the image is then taken as stored, so that it matches its annotations either way."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f"cannot read image {path}: missing, corrupt or not an image format OpenCV knows")
    if height is not None and image.shape[:2] != (height, width):
        stored = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        if stored is None or stored.shape[:2] != (height, width):
            raise DatasetError(f"image {path} is {image.shape[0]}x{image.shape[1]} (h x w) but the annotation file "
                               f"says {height}x{width}")
        image = stored
    return image


def decode_masks(record: ImageRecord) -> np.ndarray:
    """Masks [N,H,W] uint8 (0/1) of a record's instances at the original image size."""
    masks = np.zeros((len(record.segmentations), record.height, record.width), np.uint8)
    for index, segmentation in enumerate(record.segmentations):
        try:
            masks[index] = segmentation_to_mask(segmentation, record.height, record.width)
        except DatasetError as error:
            raise DatasetError(f"{record.path} (image id {record.image_id}): {error}") from None
    return masks

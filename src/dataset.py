"""COCO-format instance segmentation data: reading, checking, transforms and fixed-shape MindSpore batches.

Dataset locations accepted by :func:`resolve_dataset` (and so by :class:`CocoDataset` and :func:`create_dataset`):

* model zoo layout: a folder with ``labels.json`` and the images in ``data/``;
* standard COCO layout: a folder with exactly one ``annotations/instances_<name>.json`` and the images in
  ``<name>/`` (or ``images/``);
* a COCO JSON file itself: the images are looked up in ``../<name>/`` or ``../images/`` when the file is
  ``annotations/instances_<name>.json``, otherwise in ``data/``, ``images/`` or the file's own folder.

Categories are matched to ``coco_classes`` BY NAME: label = index of the name in ``coco_classes`` (0 is background).
An annotation whose category name is not in ``coco_classes`` is an error naming the unknown names and the file.
Crowd annotations (``iscrowd=1``), boxes narrower or lower than 1 pixel (after clipping to the image) and
annotations without a usable mask (no polygon with at least 3 points) are dropped.

Training transform order (all pure NumPy, exposed for tests): read BGR -> keep the ``num_gts`` largest instances ->
resize (keep ratio or stretch) -> horizontal flip of the resized content -> normalise (optional BGR->RGB, mean, std)
-> pad bottom/right with zeros to ``img_height x img_width`` (zeros of the normalised image, i.e. the mean colour)
-> CHW. Masks follow the same resize/flip/pad and are then reduced to ``1/mask_divider`` resolution.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

import cv2
import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

if TYPE_CHECKING:
    from mindspore.dataset import Dataset

LOGGER = logging.getLogger(__name__)

ERROR = "error"
WARNING = "warning"
TRAIN_COLUMNS = ["img", "img_meta", "gt_bboxes", "gt_labels", "gt_valids", "gt_masks"]
EVAL_COLUMNS = ["img", "img_meta", "image_id"]
MAX_LISTED_PROBLEMS = 10
CROP_ATTEMPTS = 10


class DatasetError(ValueError):
    """A dataset folder, annotation file or image is missing or malformed; the message names the file."""


@dataclass(frozen=True)
class Problem:
    """One finding about an annotation file: ``level`` is ERROR or WARNING, ``kind`` groups similar findings."""

    level: str
    kind: str
    detail: str


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
    """BGR uint8 [H,W,3] image; DatasetError naming the file when unreadable or not of the expected size."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f"cannot read image {path}: missing, corrupt or not an image format OpenCV knows")
    if height is not None and image.shape[:2] != (height, width):
        raise DatasetError(f"image {path} is {image.shape[0]}x{image.shape[1]} (h x w) but the annotation file says "
                           f"{height}x{width}")
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


# --------------------------------------------------------------------------------------------------------------------
# transforms (pure NumPy / OpenCV)

@dataclass(frozen=True)
class TransformParams:
    """Image geometry and normalisation taken from the config."""

    img_height: int
    img_width: int
    keep_ratio: bool
    img_mean: tuple[float, float, float]
    img_std: tuple[float, float, float]
    to_rgb: bool
    mask_divider: int
    num_gts: int
    crop_height: int = 0
    crop_width: int = 0
    crop_min_visible: float = 0.5

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> "TransformParams":
        """Read img_height, img_width, keep_ratio, img_mean, img_std, to_rgb, mask_divider, num_gts and the crop
        keys (crop_height, crop_width, crop_min_visible)."""
        return cls(int(cfg["img_height"]), int(cfg["img_width"]), bool(cfg["keep_ratio"]),
                   tuple(float(v) for v in cfg["img_mean"]), tuple(float(v) for v in cfg["img_std"]),
                   bool(cfg["to_rgb"]), int(cfg["mask_divider"]), int(cfg["num_gts"]), int(cfg["crop_height"]),
                   int(cfg["crop_width"]), float(cfg["crop_min_visible"]))

    @property
    def crops(self) -> bool:
        """True when training samples are random crop_height x crop_width windows."""
        return self.crop_height > 0

    @property
    def train_shape(self) -> tuple[int, int]:
        """(h, w) of a training sample: the crop window, or img_height x img_width."""
        return (self.crop_height, self.crop_width) if self.crops else (self.img_height, self.img_width)


def rescale_size(orig_h: int, orig_w: int, img_h: int, img_w: int, keep_ratio: bool) -> tuple[int, int]:
    """(scaled_h, scaled_w): the largest size fitting img_h x img_w with the same aspect ratio, or the target."""
    if not keep_ratio:
        return img_h, img_w
    scale = min(img_h / orig_h, img_w / orig_w)
    return min(img_h, max(1, int(round(orig_h * scale)))), min(img_w, max(1, int(round(orig_w * scale))))


def resize_image(image: np.ndarray, scaled_h: int, scaled_w: int) -> np.ndarray:
    """Bilinear resize of an [H,W,C] image to [scaled_h, scaled_w, C]."""
    return cv2.resize(image, (scaled_w, scaled_h), interpolation=cv2.INTER_LINEAR)


def resize_boxes(boxes: np.ndarray, scale_h: float, scale_w: float, scaled_h: int, scaled_w: int) -> np.ndarray:
    """Boxes [N,4] x1,y1,x2,y2 scaled by (scale_w, scale_h) and clipped to the scaled content."""
    scaled = boxes.astype(np.float32) * np.array([scale_w, scale_h, scale_w, scale_h], np.float32)
    scaled[:, 0::2] = np.clip(scaled[:, 0::2], 0, scaled_w)
    scaled[:, 1::2] = np.clip(scaled[:, 1::2], 0, scaled_h)
    return scaled


def resize_masks(masks: np.ndarray, scaled_h: int, scaled_w: int) -> np.ndarray:
    """Nearest-neighbour resize of masks [N,H,W] uint8 to [N, scaled_h, scaled_w]."""
    resized = np.zeros((masks.shape[0], scaled_h, scaled_w), np.uint8)
    for index, mask in enumerate(masks):
        resized[index] = cv2.resize(mask, (scaled_w, scaled_h), interpolation=cv2.INTER_NEAREST)
    return resized


def flip_horizontal(image: np.ndarray, boxes: np.ndarray, masks: np.ndarray,
                    content_width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mirror an unpadded [H,W,C] image, its boxes [N,4] (x1' = W - x2, x2' = W - x1) and masks [N,H,W].

    Flip before padding so the content stays at the top-left; ``content_width`` is the image width W.
    """
    flipped_boxes = boxes.copy()
    flipped_boxes[:, 0] = content_width - boxes[:, 2]
    flipped_boxes[:, 2] = content_width - boxes[:, 0]
    return np.ascontiguousarray(image[:, ::-1]), flipped_boxes, np.ascontiguousarray(masks[:, :, ::-1])


def normalize_image(image: np.ndarray, mean: Sequence[float], std: Sequence[float], to_rgb: bool) -> np.ndarray:
    """BGR uint8 [H,W,3] -> float32 (optionally RGB), minus ``mean``, over ``std`` (given in the output order)."""
    if to_rgb:
        image = image[:, :, ::-1]
    return (image.astype(np.float32) - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)


def pad_image(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pad an [h,w,C] image with zeros at the bottom/right to [height, width, C]."""
    padded = np.zeros((height, width) + image.shape[2:], image.dtype)
    padded[:image.shape[0], :image.shape[1]] = image
    return padded


def pad_masks(masks: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pad masks [N,h,w] with zeros at the bottom/right to [N, height, width]."""
    padded = np.zeros((masks.shape[0], height, width), masks.dtype)
    padded[:, :masks.shape[1], :masks.shape[2]] = masks
    return padded


def downsample_masks(masks: np.ndarray, divider: int) -> np.ndarray:
    """Masks [N,H,W] (H, W divisible by ``divider``) -> [N,H/d,W/d] uint8: 1 where >= half of the d x d block is 1."""
    if divider == 1:
        return masks.astype(np.uint8)
    ones = np.zeros((masks.shape[0], masks.shape[1] // divider, masks.shape[2] // divider), np.uint8)
    for row in range(divider):
        for col in range(divider):
            ones += masks[:, row::divider, col::divider]
    return (2 * ones.astype(np.uint16) >= divider * divider).astype(np.uint8)


def crop_visible_instances(masks: np.ndarray, top: int, left: int, crop_h: int, crop_w: int,
                           min_visible: float) -> np.ndarray:
    """Indices of the masks [N,H,W] that keep at least ``min_visible`` of their pixels (and at least one) inside the
    window rows [top, top + crop_h), columns [left, left + crop_w)."""
    areas = masks.reshape(masks.shape[0], -1).sum(axis=1, dtype=np.int64)
    inside = masks[:, top:top + crop_h, left:left + crop_w].reshape(masks.shape[0], -1).sum(axis=1, dtype=np.int64)
    return np.flatnonzero((inside > 0) & (inside >= min_visible * areas))


def choose_crop_window(masks: np.ndarray, crop_h: int, crop_w: int, min_visible: float,
                       rng: np.random.Generator) -> tuple[int, int]:
    """(top, left) of a crop_h x crop_w window of the [H,W] content of masks [N,H,W].

    Up to CROP_ATTEMPTS - 1 uniformly drawn windows are tried, the first that keeps an instance (see
    :func:`crop_visible_instances`) wins; otherwise a randomly chosen instance is placed at a uniformly drawn
    position inside the window (its whole box when it fits, else as much of it as fits). A window larger than the
    content starts at 0. Objects must not sit at a fixed place in the crops (e.g. their centre): a network learns
    such a position from the zero padding at the crop's border, and at test time, on the whole image, misses
    objects elsewhere.
    """
    height, width = masks.shape[1:]
    max_top, max_left = max(height - crop_h, 0), max(width - crop_w, 0)
    for _ in range(CROP_ATTEMPTS - 1):
        top, left = int(rng.integers(0, max_top + 1)), int(rng.integers(0, max_left + 1))
        if masks.shape[0] == 0 or crop_visible_instances(masks, top, left, crop_h, crop_w, min_visible).size:
            return top, left
    box = mask_tight_box(masks[int(rng.integers(0, masks.shape[0]))])
    if box is None:
        return top, left
    return (_offset_covering(int(box[1]), int(box[3]), crop_h, max_top, rng),
            _offset_covering(int(box[0]), int(box[2]), crop_w, max_left, rng))


def _offset_covering(start: int, end: int, size: int, max_offset: int, rng: np.random.Generator) -> int:
    """A uniformly drawn window offset in [0, max_offset] such that the window [offset, offset + size) covers
    [start, end), or, when the span is longer than the window, lies inside it."""
    low, high = end - size, start
    if low > high:
        low, high = high, low
    low, high = min(max(low, 0), max_offset), min(max(high, 0), max_offset)
    return int(rng.integers(low, high + 1))


def crop_instances(image: np.ndarray, labels: np.ndarray, masks: np.ndarray, top: int, left: int, crop_h: int,
                   crop_w: int, min_visible: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cut the window (top, left, crop_h, crop_w) out of an [H,W,C] image and its instances.

    Returns (image [h',w',C] with h' = min(crop_h, H - top), w' likewise; boxes [K,4] x1,y1,x2,y2 the tight boxes
    of the cropped masks (x2 exclusive); labels [K]; masks [K,h',w']) for the K instances that keep at least
    ``min_visible`` of their pixels in the window; the others are dropped.
    """
    keep = crop_visible_instances(masks, top, left, crop_h, crop_w, min_visible)
    cropped_masks = np.ascontiguousarray(masks[keep, top:top + crop_h, left:left + crop_w])
    boxes = np.array([mask_tight_box(mask) for mask in cropped_masks], np.float32).reshape(-1, 4)
    return (np.ascontiguousarray(image[top:top + crop_h, left:left + crop_w]), boxes, labels[keep],
            cropped_masks)


def largest_instances(masks: np.ndarray, max_count: int) -> np.ndarray:
    """Indices of the ``max_count`` masks [N,H,W] with the largest area (ties: file order), in file order."""
    if masks.shape[0] <= max_count:
        return np.arange(masks.shape[0])
    areas = masks.reshape(masks.shape[0], -1).sum(axis=1)
    return np.sort(np.argsort(-areas, kind="stable")[:max_count])


def pad_instances(boxes: np.ndarray, labels: np.ndarray, masks: np.ndarray,
                  num_gts: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pad N <= num_gts instances to num_gts: boxes [num_gts,4] f32, labels int32, valids bool, masks uint8."""
    count = boxes.shape[0]
    padded_boxes = np.zeros((num_gts, 4), np.float32)
    padded_labels = np.zeros((num_gts,), np.int32)
    valids = np.zeros((num_gts,), np.bool_)
    padded_masks = np.zeros((num_gts,) + masks.shape[1:], np.uint8)
    padded_boxes[:count], padded_labels[:count], valids[:count], padded_masks[:count] = boxes, labels, True, masks
    return padded_boxes, padded_labels, valids, padded_masks


def image_meta(orig_h: int, orig_w: int, scaled_h: int, scaled_w: int) -> np.ndarray:
    """[6] float32: orig_h, orig_w, scaled_h, scaled_w, scale_h = scaled_h/orig_h, scale_w = scaled_w/orig_w."""
    return np.array([orig_h, orig_w, scaled_h, scaled_w, scaled_h / orig_h, scaled_w / orig_w], np.float32)


def prepare_image(image: np.ndarray, params: TransformParams) -> tuple[np.ndarray, np.ndarray]:
    """BGR uint8 [h,w,3] -> (img [3,H,W] float32 normalised and padded, img_meta [6] float32), no flip."""
    orig_h, orig_w = image.shape[:2]
    scaled_h, scaled_w = rescale_size(orig_h, orig_w, params.img_height, params.img_width, params.keep_ratio)
    resized = resize_image(image, scaled_h, scaled_w)
    normalized = normalize_image(resized, params.img_mean, params.img_std, params.to_rgb)
    padded = pad_image(normalized, params.img_height, params.img_width)
    return np.ascontiguousarray(padded.transpose(2, 0, 1)), image_meta(orig_h, orig_w, scaled_h, scaled_w)


def prepare_train_sample(image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, masks: np.ndarray,
                         params: TransformParams, flip: bool,
                         rng: np.random.Generator | None = None) -> tuple[np.ndarray, ...]:
    """One training sample in the batch layout (without the batch axis).

    Args:
        image: BGR uint8 [h,w,3]; boxes [N,4] x1,y1,x2,y2 original pixels; labels [N] int32; masks [N,h,w] uint8.
        params: geometry/normalisation; flip: mirror horizontally.
        rng: draws the crop window when ``params.crops`` (required then): the image is resized as for inference,
            flipped, then a crop_height x crop_width window is cut (:func:`choose_crop_window`,
            :func:`crop_instances`) and becomes the sample.

    Returns:
        img [3,H,W] f32, img_meta [6] f32, gt_bboxes [num_gts,4] f32 (input pixels), gt_labels [num_gts] int32,
        gt_valids [num_gts] bool, gt_masks [num_gts,H/d,W/d] uint8 (the num_gts largest instances kept); H x W is
        ``params.train_shape``. With a crop, img_meta's scaled size is the part of the window inside the image and
        its scale factors are those of the resize.
    """
    orig_h, orig_w = image.shape[:2]
    scaled_h, scaled_w = rescale_size(orig_h, orig_w, params.img_height, params.img_width, params.keep_ratio)
    image = resize_image(image, scaled_h, scaled_w)
    masks = resize_masks(masks, scaled_h, scaled_w)
    boxes = resize_boxes(boxes, scaled_h / orig_h, scaled_w / orig_w, scaled_h, scaled_w)
    if flip:
        image, boxes, masks = flip_horizontal(image, boxes, masks, scaled_w)
    meta = image_meta(orig_h, orig_w, scaled_h, scaled_w)
    if params.crops:
        if rng is None:
            raise ValueError("prepare_train_sample: crop training needs an rng for the crop window")
        top, left = choose_crop_window(masks, params.crop_height, params.crop_width, params.crop_min_visible, rng)
        image, boxes, labels, masks = crop_instances(image, labels, masks, top, left, params.crop_height,
                                                     params.crop_width, params.crop_min_visible)
        meta[2:4] = image.shape[:2]
    keep = largest_instances(masks, params.num_gts)
    boxes, labels, masks = boxes[keep], labels[keep], masks[keep]
    height, width = params.train_shape
    image = pad_image(normalize_image(image, params.img_mean, params.img_std, params.to_rgb), height, width)
    masks = downsample_masks(pad_masks(masks, height, width), params.mask_divider)
    gt_bboxes, gt_labels, gt_valids, gt_masks = pad_instances(boxes, labels, masks, params.num_gts)
    return np.ascontiguousarray(image.transpose(2, 0, 1)), meta, gt_bboxes, gt_labels, gt_valids, gt_masks


# --------------------------------------------------------------------------------------------------------------------
# MindSpore pipeline

class ShardSampler:
    """Sample keys ``2 * (epoch * num_items + item_index) + flip_flag`` for one shard, in a new seeded order every
    epoch (epoch counts this sampler's passes from 0; the source reads the item as ``(key // 2) % num_items`` and
    may seed per-sample randomness, such as a crop window, from (epoch, item)).

    The split into shards is fixed at construction (a seeded permutation when shuffling, cut round-robin), so
    shards never overlap whatever each process does with the dataset. With ``pad`` every shard gets
    ceil(n / num_shards) items (the first items of the permutation fill the last slots, so the union is
    everything and every shard runs the same number of steps); without it shard k gets items k, k+S, ...
    Each epoch the shard's items are reshuffled and the flip flags drawn from ``(seed, shard_id, epoch)``.
    """

    def __init__(self, num_items: int, seed: int, shuffle: bool, flip_ratio: float,
                 num_shards: int = 1, shard_id: int = 0, pad: bool = True):
        if not 0 <= shard_id < num_shards:
            raise ValueError(f"shard_id must be in [0, num_shards={num_shards}), got {shard_id}")
        order = np.random.default_rng(seed).permutation(num_items) if shuffle else np.arange(num_items)
        if pad and num_items:
            order = np.resize(order, math.ceil(num_items / num_shards) * num_shards)
        self.items = order[shard_id::num_shards]
        self.num_items = num_items
        self.seed, self.shard_id, self.shuffle, self.flip_ratio = seed, shard_id, shuffle, flip_ratio
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[int]:
        epoch = self.epoch
        rng = np.random.default_rng([self.seed, self.shard_id, epoch])
        self.epoch += 1
        items = rng.permutation(self.items) if self.shuffle else self.items
        flips = rng.random(len(items)) < self.flip_ratio
        return iter([int(2 * (epoch * self.num_items + item) + flip) for item, flip in zip(items, flips)])


class TrainSource:
    """Random-access source: key ``2 * (epoch * len(records) + index) + flip`` (see :class:`ShardSampler`) -> one
    training sample (see :func:`prepare_train_sample`); its crop window is drawn from (seed, epoch, index)."""

    def __init__(self, records: Sequence[ImageRecord], params: TransformParams, seed: int = 0):
        self.records = list(records)
        self.params = params
        self.seed = seed

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: int) -> tuple[np.ndarray, ...]:
        position, flip = divmod(int(key), 2)
        epoch, index = divmod(position, len(self.records))
        record = self.records[index]
        image = read_image(record.path, record.height, record.width)
        rng = np.random.default_rng([self.seed, epoch, index]) if self.params.crops else None
        return prepare_train_sample(image, record.boxes, record.labels, decode_masks(record), self.params, bool(flip),
                                    rng)


class EvalSource:
    """Random-access source: key ``2 * index`` -> (img [3,H,W] f32, img_meta [6] f32, image_id int32)."""

    def __init__(self, paths: Sequence[tuple[int, Path, int, int]], params: TransformParams):
        self.paths = list(paths)
        self.params = params

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        image_id, path, height, width = self.paths[(int(key) // 2) % len(self.paths)]
        img, meta = prepare_image(read_image(path, height, width), self.params)
        return img, meta, np.array(image_id, np.int32)


def train_records(coco: CocoDataset, num_gts: int, dataset_num: int = 0, dataset_divider: int = 0) -> list[ImageRecord]:
    """Records of the images with at least one valid instance (first ``dataset_num``, then every
    ``dataset_divider``-th when set); warns once how many images hold more than ``num_gts`` instances."""
    records = [record for record in map(coco.record, coco.image_ids) if len(record.labels)]
    if dataset_num:
        records = records[:dataset_num]
    if dataset_divider:
        records = records[::dataset_divider]
    crowded = [len(record.labels) for record in records if len(record.labels) > num_gts]
    if crowded:
        LOGGER.warning("%s: %d image(s) have more than num_gts=%d instances (up to %d); the %d largest by mask area "
                       "are kept", coco.annotation_file, len(crowded), num_gts, max(crowded), num_gts)
    return records


def create_dataset(cfg: Mapping[str, Any], data_dir: str | os.PathLike, mode: str = "train", num_shards: int = 1,
                   shard_id: int = 0, shuffle: bool | None = None) -> Dataset:
    """Batched ``mindspore.dataset`` of a COCO subset.

    Args:
        cfg: the config (image geometry, normalisation, coco_classes, num_gts, batch sizes, seed, workers,
            flip_ratio, train_dataset_num/divider).
        data_dir: dataset path (see :func:`resolve_dataset`).
        mode: "train": images with valid instances, flip, batches of ``batch_size`` (remainder dropped), columns
            img, img_meta, gt_bboxes, gt_labels, gt_valids, gt_masks. "eval": every image in file order, no flip,
            batches of ``test_batch_size`` (last one may be smaller), columns img, img_meta, image_id.
        num_shards, shard_id: this process's part of the data (distributed training / evaluation).
        shuffle: default True for train, False for eval.

    Returns:
        a ``mindspore.dataset.Dataset``. Train: img [B,3,H,W] f32, img_meta [B,6] f32, gt_bboxes [B,num_gts,4] f32,
        gt_labels [B,num_gts] int32, gt_valids [B,num_gts] bool, gt_masks [B,num_gts,H/d,W/d] uint8 (d =
        mask_divider). Eval: img, img_meta, image_id [B] int32.
    """
    import mindspore.dataset as ds

    if mode not in ("train", "eval"):
        raise ValueError(f"mode must be 'train' or 'eval', got {mode!r}")
    ds.config.set_seed(int(cfg["seed"]))
    params = TransformParams.from_config(cfg)
    coco = CocoDataset(data_dir, cfg["coco_classes"])
    is_train = mode == "train"
    shuffle = is_train if shuffle is None else shuffle
    if is_train:
        records = train_records(coco, params.num_gts, int(cfg["train_dataset_num"]),
                                int(cfg["train_dataset_divider"]))
        if not records:
            raise DatasetError(f"{coco.annotation_file}: no image has a valid annotation to train on")
        source, columns = TrainSource(records, params, int(cfg["seed"])), TRAIN_COLUMNS
        flip_ratio, batch_size = float(cfg["flip_ratio"]), int(cfg["batch_size"])
    else:
        paths = [(image_id, coco.image_path(image_id), *coco.image_size(image_id)) for image_id in coco.image_ids]
        source, columns = EvalSource(paths, params), EVAL_COLUMNS
        flip_ratio, batch_size = 0.0, int(cfg["test_batch_size"])
    sampler = ShardSampler(len(source), int(cfg["seed"]), shuffle, flip_ratio, num_shards, shard_id, pad=is_train)
    dataset = ds.GeneratorDataset(source, column_names=columns, sampler=sampler,
                                  num_parallel_workers=int(cfg["num_parallel_workers"]),
                                  python_multiprocessing=bool(cfg["python_multiprocessing"]))
    return dataset.batch(batch_size, drop_remainder=is_train)

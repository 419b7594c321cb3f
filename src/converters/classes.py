"""Class-dependent layers of converted detectors, taken for a config's classes by name.

A detector trained on COCO (torchvision's Mask R-CNN after its 91 category slots are mapped, mmdetection's models)
has one classifier row per COCO class after the background row, 4 box-regression rows per class, one mask-logit
channel per class and, for Mask Scoring R-CNN, one MaskIoU output per class, all in :data:`COCO_CLASSES` order. For
a config whose ``coco_classes`` are names among them (e.g. ``['background', 'car', 'truck', 'person']``),
:func:`select_classes` keeps the rows of those classes, in the config's order, so the checkpoint loads without
``finetune``. :func:`drop_class_layers` leaves the class-dependent layers out (classes COCO does not have: they
start freshly initialised).
"""
import difflib
import re
from typing import List, Optional, Sequence, Tuple

import numpy as np

from src.converters.resnet_keys import Weights

COCO_CLASSES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow", "elephant",
    "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard",
    "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange", "broccoli",
    "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant", "bed", "dining table", "toilet",
    "tv", "laptop", "mouse", "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink",
    "refrigerator", "book", "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush")
# (pattern, rows per class, leading background row)
CLASS_LAYERS = [
    (re.compile(r"^bbox_head\.fc_cls\.(weight|bias)$"), 1, True),
    (re.compile(r"^bbox_head\.fc_reg\.(weight|bias)$"), 4, False),
    (re.compile(r"^mask_iou_head\.fc_mask_iou\.(weight|bias)$"), 1, False),
]
MASK_LAYER = re.compile(r"^mask_head\.layers\.(\d+)\.(weight|bias)$")


class UnknownClassesError(ValueError):
    """Class names of a config that the converted detector was not trained on."""


def class_layers(weights: Weights, num_classes: int) -> List[Tuple[str, int, bool]]:
    """The class-dependent tensors of a converted detector with ``num_classes`` foreground classes, as
    (name, rows per class, leading background row): classifier, box regression (unless class-agnostic), the mask
    head's last layer (the logits) and the MaskIoU output, each whose first dimension fits that class count."""
    mask_indices = [int(match.group(1)) for match in map(MASK_LAYER.match, weights) if match]
    mask_logits = re.compile(rf"^mask_head\.layers\.{max(mask_indices)}\.(weight|bias)$") if mask_indices else None
    layers = [(pattern, per_class, background) for pattern, per_class, background in CLASS_LAYERS]
    if mask_logits is not None:
        layers.append((mask_logits, 1, False))
    found = []
    for name, value in weights.items():
        for pattern, per_class, background in layers:
            if pattern.match(name) and value.shape[0] == per_class * num_classes + int(background):
                found.append((name, per_class, background))
    return found


def _rows(value: np.ndarray, indices: Sequence[int], per_class: int, background: bool) -> np.ndarray:
    offset = int(background)
    rows = [value[:offset]] + [value[offset + per_class * index:offset + per_class * (index + 1)]
                               for index in indices]
    return np.concatenate(rows, axis=0)


def select_classes(weights: Weights, class_names: Sequence[str],
                   source_classes: Sequence[str] = COCO_CLASSES) -> Weights:
    """The weights with their class-dependent rows taken for ``class_names`` (the config's ``coco_classes``,
    'background' first) by name among ``source_classes`` (the detector's classes in row order, no background), in
    the order of ``class_names``. Raises :class:`UnknownClassesError` listing the names that are not source classes."""
    wanted = list(class_names[1:])
    unknown = [name for name in wanted if name not in source_classes]
    if unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, source_classes, n=1, cutoff=0.75)
            hints.append(f"'{name}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
        raise UnknownClassesError(", ".join(hints))
    indices = [list(source_classes).index(name) for name in wanted]
    selected = dict(weights)
    for name, per_class, background in class_layers(weights, len(source_classes)):
        selected[name] = _rows(weights[name], indices, per_class, background)
    return selected


def drop_class_layers(weights: Weights, num_classes: Optional[int] = None) -> Tuple[Weights, List[str]]:
    """(the weights without their class-dependent tensors, the names left out); ``num_classes`` foreground classes,
    by default as many as the classifier has rows after the background one."""
    if num_classes is None:
        classifier = weights.get("bbox_head.fc_cls.bias")
        if classifier is None:
            return dict(weights), []
        num_classes = classifier.shape[0] - 1
    dropped = [name for name, _, _ in class_layers(weights, num_classes)]
    return {name: value for name, value in weights.items() if name not in dropped}, dropped

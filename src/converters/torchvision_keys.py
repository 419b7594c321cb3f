"""torchvision ``maskrcnn_resnet50_fpn`` (v1 weights) parameter names -> this project's, with the 91 torchvision
category slots (COCO category ids, 0 = background, 11 of them unused) mapped to the 80 COCO classes.

| torchvision | this project |
|---|---|
| ``backbone.body.*`` (ResNet, FrozenBatchNorm2d) | ``backbone.*`` (see :mod:`.resnet_keys`) |
| ``backbone.fpn.inner_blocks.<i>[.0]``, ``layer_blocks.<i>[.0]`` | ``neck.lateral_convs.<i>``, ``neck.fpn_convs.<i>`` |
| ``rpn.head.conv[.0.0]``, ``cls_logits``, ``bbox_pred`` | ``rpn_head.rpn_conv``, ``rpn_cls``, ``rpn_reg`` |
| ``roi_heads.box_head.fc6``, ``fc7`` | ``bbox_head.shared_fc1``, ``shared_fc2`` |
| ``roi_heads.box_predictor.cls_score`` (91 slots) | ``bbox_head.fc_cls`` (background + 80 classes) |
| ``roi_heads.box_predictor.bbox_pred`` (4 per slot) | ``bbox_head.fc_reg`` (4 per class, no background) |
| ``roi_heads.mask_head.<k>[.0]`` / ``mask_fcn<k+1>`` | ``mask_head.layers.<2k>`` |
| ``roi_heads.mask_predictor.conv5_mask``, ``mask_fcn_logits`` (91) | ``mask_head.layers.8``, ``.10`` (80) |

The MaskIoU head has no counterpart and stays freshly initialised. Both name forms of torchvision's modules (before
and after its ``Conv2dNormActivation`` wrappers) are read.
"""
import re
from typing import List, Tuple

import numpy as np

from src.converters.resnet_keys import Weights, rename_torchvision

COCO_CATEGORY_IDS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28,
                     31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55,
                     56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84,
                     85, 86, 87, 88, 89, 90]
PATTERNS = [
    (re.compile(r"^backbone\.fpn\.inner_blocks\.(\d)(?:\.0)?\.(weight|bias)$"), r"neck.lateral_convs.\1.\2"),
    (re.compile(r"^backbone\.fpn\.layer_blocks\.(\d)(?:\.0)?\.(weight|bias)$"), r"neck.fpn_convs.\1.\2"),
    (re.compile(r"^rpn\.head\.conv(?:\.0\.0)?\.(weight|bias)$"), r"rpn_head.rpn_conv.\1"),
    (re.compile(r"^rpn\.head\.cls_logits\.(weight|bias)$"), r"rpn_head.rpn_cls.\1"),
    (re.compile(r"^rpn\.head\.bbox_pred\.(weight|bias)$"), r"rpn_head.rpn_reg.\1"),
    (re.compile(r"^roi_heads\.box_head\.fc6\.(weight|bias)$"), r"bbox_head.shared_fc1.\1"),
    (re.compile(r"^roi_heads\.box_head\.fc7\.(weight|bias)$"), r"bbox_head.shared_fc2.\1"),
    (re.compile(r"^roi_heads\.mask_predictor\.conv5_mask\.(weight|bias)$"), r"mask_head.layers.8.\1"),
]
MASK_CONV = re.compile(r"^roi_heads\.mask_head\.(?:(\d)(?:\.0)?|mask_fcn(\d))\.(weight|bias)$")


def slots_to_classes(rows: np.ndarray, per_slot: int = 1, background: bool = True) -> np.ndarray:
    """Rows of the 91 category slots -> rows of (background and) the 80 COCO classes in category-id order;
    ``per_slot`` rows per slot (4 for box deltas)."""
    slots = ([0] if background else []) + COCO_CATEGORY_IDS
    return np.concatenate([rows[slot * per_slot:(slot + 1) * per_slot] for slot in slots], axis=0)


def rename_torchvision_maskrcnn(weights: Weights) -> Tuple[Weights, List[str]]:
    """A torchvision Mask R-CNN state dict -> ({project name: array}, [names left out])."""
    body = {name[len("backbone.body."):]: value for name, value in weights.items()
            if name.startswith("backbone.body.")}
    backbone, body_left_out = rename_torchvision(body)
    renamed: Weights = {f"backbone.{name}": value for name, value in backbone.items()}
    left_out = [f"backbone.body.{name}" for name in body_left_out]
    for name, value in weights.items():
        if name.startswith("backbone.body."):
            continue
        target = next((pattern.sub(replacement, name) for pattern, replacement in PATTERNS if pattern.match(name)),
                      None)
        match = MASK_CONV.match(name)
        if match:
            index = int(match.group(1)) if match.group(1) is not None else int(match.group(2)) - 1
            target = f"mask_head.layers.{2 * index}.{match.group(3)}"
        field = name.rsplit(".", 1)[-1]
        if name.startswith("roi_heads.box_predictor.cls_score."):
            target, value = f"bbox_head.fc_cls.{field}", slots_to_classes(value)
        elif name.startswith("roi_heads.box_predictor.bbox_pred."):
            target, value = f"bbox_head.fc_reg.{field}", slots_to_classes(value, 4, background=False)
        elif name.startswith("roi_heads.mask_predictor.mask_fcn_logits."):
            target, value = f"mask_head.layers.10.{field}", slots_to_classes(value, background=False)
        if target is None:
            left_out.append(name)
        else:
            renamed[target] = value
    return renamed, left_out

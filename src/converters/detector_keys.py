"""mmdetection (v2/v3) Mask Scoring R-CNN and Mask R-CNN parameter names -> this project's.

| mmdetection | this project |
|---|---|
| ``backbone.conv1``, ``bn1``, ``layer<i>.<b>...`` | ``backbone.stem``, ``stages.<i-1>.<b>...`` (:mod:`.resnet_keys`) |
| ``neck.lateral_convs.<i>.conv``, ``neck.fpn_convs.<i>.conv`` | ``neck.lateral_convs.<i>``, ``neck.fpn_convs.<i>`` |
| ``rpn_head.rpn_conv``, ``rpn_cls``, ``rpn_reg`` | same names |
| ``roi_head.bbox_head.shared_fcs.<k>`` | ``bbox_head.shared_fc<k+1>`` |
| ``roi_head.bbox_head.fc_cls`` (background last) | ``bbox_head.fc_cls`` (background first: rows reordered) |
| ``roi_head.bbox_head.fc_reg`` | ``bbox_head.fc_reg`` |
| ``roi_head.mask_head.convs.<k>.conv``, ``upsample``, ``conv_logits`` | ``mask_head.layers.<2k>``/``<2n>``/``<2n+2>`` |
| ``roi_head.mask_iou_head.convs.<k>.conv``, ``fcs.<k>`` | ``mask_iou_head.convs.<2k>``, ``fcs.<2k>`` |
| ``roi_head.mask_iou_head.fc_mask_iou`` | ``mask_iou_head.fc_mask_iou`` |

(n = number of mask convolutions; the odd indices of ``layers``, ``convs`` and ``fcs`` are ReLUs.) The transposed
convolution ``upsample`` keeps its (in, out, k, k) layout, which MindSpore's ``Conv2dTranspose`` shares.
"""
import re
from typing import List, Tuple

import numpy as np

from src.converters.resnet_keys import Weights, rename_torchvision

SIMPLE = [
    (re.compile(r"^neck\.(lateral_convs|fpn_convs)\.(\d+)\.conv\.(weight|bias)$"), r"neck.\1.\2.\3"),
    (re.compile(r"^rpn_head\.(rpn_conv|rpn_cls|rpn_reg)\.(weight|bias)$"), r"rpn_head.\1.\2"),
    (re.compile(r"^roi_head\.bbox_head\.fc_reg\.(weight|bias)$"), r"bbox_head.fc_reg.\1"),
    (re.compile(r"^roi_head\.mask_iou_head\.fc_mask_iou\.(weight|bias)$"), r"mask_iou_head.fc_mask_iou.\1"),
]
SHARED_FC = re.compile(r"^roi_head\.bbox_head\.shared_fcs\.(\d+)\.(weight|bias)$")
MASK_CONV = re.compile(r"^roi_head\.mask_head\.convs\.(\d+)\.conv\.(weight|bias)$")
MASK_IOU_LAYER = re.compile(r"^roi_head\.mask_iou_head\.(convs|fcs)\.(\d+)(?:\.conv)?\.(weight|bias)$")


def background_first(rows: np.ndarray) -> np.ndarray:
    """Classifier rows (or biases) in mmdetection's order (classes, then background) -> background first."""
    return np.concatenate([rows[-1:], rows[:-1]], axis=0)


def rename_mmdet(weights: Weights) -> Tuple[Weights, List[str]]:
    """An mmdetection detector's state dict -> ({project name: array}, [names left out])."""
    weights = {name[len("module."):] if name.startswith("module.") else name: value
               for name, value in weights.items()}
    num_mask_convs = len({match.group(1) for match in map(MASK_CONV.match, weights) if match})
    backbone, left_out = rename_torchvision({name[len("backbone."):]: value for name, value in weights.items()
                                             if name.startswith("backbone.")})
    renamed: Weights = {f"backbone.{name}": value for name, value in backbone.items()}
    left_out = [f"backbone.{name}" for name in left_out]
    for name, value in weights.items():
        if name.startswith("backbone."):
            continue
        target = next((pattern.sub(replacement, name) for pattern, replacement in SIMPLE if pattern.match(name)), None)
        if target is None:
            target = _head_target(name, num_mask_convs)
        if name.startswith("roi_head.bbox_head.fc_cls."):
            target, value = f"bbox_head.fc_cls.{name.rsplit('.', 1)[1]}", background_first(value)
        if target is None:
            left_out.append(name)
        else:
            renamed[target] = value
    return renamed, left_out


def _head_target(name: str, num_mask_convs: int) -> str | None:
    """Project name of a bbox, mask or MaskIoU head parameter (None when the name is not one of them)."""
    match = SHARED_FC.match(name)
    if match:
        return f"bbox_head.shared_fc{int(match.group(1)) + 1}.{match.group(2)}"
    match = MASK_CONV.match(name)
    if match:
        return f"mask_head.layers.{2 * int(match.group(1))}.{match.group(2)}"
    for part, index in (("upsample", 2 * num_mask_convs), ("conv_logits", 2 * num_mask_convs + 2)):
        if name.startswith(f"roi_head.mask_head.{part}."):
            return f"mask_head.layers.{index}.{name.rsplit('.', 1)[1]}"
    match = MASK_IOU_LAYER.match(name)
    if match:
        return f"mask_iou_head.{match.group(1)}.{2 * int(match.group(2))}.{match.group(3)}"
    return None

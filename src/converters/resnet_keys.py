"""ResNet backbone parameter names of other projects -> this project's (``stem.conv``, ``stem.bn``,
``stages.<s>.<b>.conv<k>.conv|bn``, ``stages.<s>.<b>.downsample.conv|bn``, without the ``backbone.`` prefix).

Each renamer takes a ``{name: array}`` dict and returns ``({project name: array}, [source names left out])``;
classifier heads (``fc``, ``end_point``, ``fc1000``) and BatchNorm's ``num_batches_tracked`` are left out. A
BatchNorm becomes ``gamma``, ``beta``, ``moving_mean`` and ``moving_variance``.
"""
import re
from typing import Dict, List, Optional, Tuple

import numpy as np

Weights = Dict[str, np.ndarray]
BN_EPS = 1e-5  # the backbone's BatchNorm epsilon
TORCH_BN = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}
MINDSPORE_BN = {name: name for name in ("gamma", "beta", "moving_mean", "moving_variance")}
TORCH_LAYER = re.compile(r"^layer(\d)\.(\d+)\.(conv\d|bn\d|downsample\.[01])\.(\w+)$")
MINDSPORE_LAYER = re.compile(r"^layer(\d)\.(\d+)\.(conv\d|bn\d|down_sample_layer\.[01])\.(\w+)$")
CAFFE2_BLOCK = re.compile(r"^res(\d)_(\d+)_branch(1|2a|2b|2c)_(w|bn_s|bn_b)$")
CAFFE2_CONV = {"2a": "conv1", "2b": "conv2", "2c": "conv3", "1": "downsample"}


def _layer_target(stage: str, block: str, part: str, field: str, bn_fields: Dict[str, str]) -> Optional[str]:
    """Project name of a block parameter; part is conv<k>, bn<k> or the downsample's conv (0) / bn (1) index."""
    prefix = f"stages.{int(stage) - 1}.{block}"
    if part.startswith("conv") and field == "weight":
        return f"{prefix}.{part}.conv.weight"
    if part.startswith("bn") and field in bn_fields:
        return f"{prefix}.conv{part[2:]}.bn.{bn_fields[field]}"
    if part.endswith(".0") and field == "weight":
        return f"{prefix}.downsample.conv.weight"
    if part.endswith(".1") and field in bn_fields:
        return f"{prefix}.downsample.bn.{bn_fields[field]}"
    return None


def _rename(weights: Weights, layer: "re.Pattern[str]", bn_fields: Dict[str, str]) -> Tuple[Weights, List[str]]:
    renamed: Weights = {}
    left_out: List[str] = []
    for name, value in weights.items():
        target = None
        if name == "conv1.weight":
            target = "stem.conv.weight"
        elif name.startswith("bn1.") and name[4:] in bn_fields:
            target = f"stem.bn.{bn_fields[name[4:]]}"
        else:
            match = layer.match(name)
            if match:
                target = _layer_target(*match.groups(), bn_fields)
        if target is None:
            left_out.append(name)
        else:
            renamed[target] = value
    return renamed, left_out


def rename_torchvision(weights: Weights) -> Tuple[Weights, List[str]]:
    """torchvision ``resnet50``/``resnet101`` state dict (also mmdetection's ResNet, without ``backbone.``)."""
    return _rename(weights, TORCH_LAYER, TORCH_BN)


def rename_mindspore_zoo(weights: Weights) -> Tuple[Weights, List[str]]:
    """MindSpore model zoo ResNet checkpoint (``layer1.0.down_sample_layer.0.weight``, ``bn1.gamma``, ...)."""
    return _rename(weights, MINDSPORE_LAYER, MINDSPORE_BN)


def _frozen_bn(prefix: str, scale: np.ndarray, bias: np.ndarray) -> Weights:
    """A caffe2 affine channel (x * s + b) as a BatchNorm: mean 0, variance 1 - eps, so that
    (x - 0) / sqrt(var + eps) * s + b = x * s + b exactly."""
    return {f"{prefix}.gamma": scale, f"{prefix}.beta": bias,
            f"{prefix}.moving_mean": np.zeros_like(scale),
            f"{prefix}.moving_variance": np.full_like(scale, 1.0 - BN_EPS)}


def rename_detectron2_caffe(weights: Weights) -> Tuple[Weights, List[str]]:
    """MSRA caffe ResNet of detectron2's model zoo (``conv1_w``, ``res_conv1_bn_s``, ``res2_0_branch2a_w``, ...):
    each affine channel becomes a BatchNorm with mean 0 and variance 1 - eps."""
    renamed: Weights = {}
    left_out: List[str] = []
    used = set()
    if "conv1_w" in weights:
        renamed["stem.conv.weight"] = weights["conv1_w"]
        used.add("conv1_w")
    if "res_conv1_bn_s" in weights and "res_conv1_bn_b" in weights:
        renamed.update(_frozen_bn("stem.bn", weights["res_conv1_bn_s"], weights["res_conv1_bn_b"]))
        used.update(("res_conv1_bn_s", "res_conv1_bn_b"))
    for name, value in weights.items():
        match = CAFFE2_BLOCK.match(name)
        if not match:
            continue
        stage, block, branch, field = match.groups()
        prefix = f"stages.{int(stage) - 2}.{block}.{CAFFE2_CONV[branch]}"
        if field == "w":
            renamed[f"{prefix}.conv.weight"] = value
            used.add(name)
        elif field == "bn_s" and f"{name[:-2]}_b" in weights:
            renamed.update(_frozen_bn(f"{prefix}.bn", value, weights[f"{name[:-2]}_b"]))
            used.update((name, f"{name[:-2]}_b"))
    left_out.extend(name for name in weights if name not in used)
    return renamed, left_out


"""torchvision's Mask R-CNN plus a MaskIoU head, shaped like one of this project's configs, for the benchmark's peer
(:mod:`src.tools.peer_torchvision`).

The architecture comes as a dict (:func:`src.tools.benchmark.peer_architecture` makes it from a config): ResNet
depth, number of stages and frozen stages, frozen or trained BatchNorm, FPN channels and levels, anchors, the RPN's
and the R-CNN's sampling and proposal counts, the heads' widths and the detections per image. torchvision's ResNet
has 64 base channels and its FPN takes every stage, so the benchmark refuses a config of another width or with
stages left out of the FPN.
"""
from typing import List, Tuple

import torch
import torchvision
from torch import nn
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.rpn import RPNHead
from torchvision.ops import FrozenBatchNorm2d, MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import ExtraFPNBlock

FEATURE_NAMES = ["0", "1", "2", "3"]


class MaxPooledLevels(ExtraFPNBlock):
    """``count`` extra FPN levels, each a max-pool (kernel 1, stride 2) of the previous last level, as this project's
    FPN makes them; named on from the backbone's levels ("0", "1", ...), the last one "pool" as torchvision names it."""

    def __init__(self, count: int) -> None:
        super().__init__()
        self.count = count

    def forward(self, results: List[torch.Tensor], x: List[torch.Tensor],
                names: List[str]) -> Tuple[List[torch.Tensor], List[str]]:
        for index in range(self.count):
            names.append("pool" if index == self.count - 1 else str(len(names)))
            results.append(nn.functional.max_pool2d(results[-1], 1, 2, 0))
        return results, names


class MaskIoUHead(nn.Module):
    """The MaskIoU head of Mask Scoring R-CNN: [R, C, S, S] features + [R, 1, 2S, 2S] mask -> [R, num_classes - 1];
    ``num_convs`` convolutions (the last with stride 2) and ``num_fcs`` fully connected layers."""

    def __init__(self, num_classes: int, in_channels: int, roi_size: int, num_convs: int, conv_channels: int,
                 num_fcs: int, fc_channels: int) -> None:
        super().__init__()
        layers: List[nn.Module] = []
        for index in range(num_convs):
            layers += [nn.Conv2d(in_channels + 1 if index == 0 else conv_channels, conv_channels, 3,
                                 stride=2 if index == num_convs - 1 else 1, padding=1), nn.ReLU()]
        self.convs = nn.Sequential(*layers)
        fcs: List[nn.Module] = []
        width = conv_channels * (roi_size // 2) ** 2
        for _ in range(num_fcs):
            fcs += [nn.Linear(width, fc_channels), nn.ReLU()]
            width = fc_channels
        self.fcs = nn.Sequential(*fcs, nn.Linear(width, num_classes - 1))

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        pooled = nn.functional.max_pool2d(mask, 2)
        return self.fcs(self.convs(torch.cat([features, pooled], 1)).flatten(1))


def resnet_fpn(depth: int, num_stages: int, frozen_stages: int, norm_eval: bool, channels: int,
               num_levels: int) -> BackboneWithFPN:
    """torchvision's ResNet-``depth`` cut after ``num_stages`` stages, with an FPN of ``channels`` channels on them and
    max-pooled levels up to ``num_levels``; the stem and the first ``frozen_stages`` stages do not train (-1:
    everything trains), BatchNorm frozen with ``norm_eval``."""
    body = getattr(torchvision.models, f"resnet{depth}")(
        weights=None, norm_layer=FrozenBatchNorm2d if norm_eval else nn.BatchNorm2d)
    trained = ["layer4", "layer3", "layer2", "layer1", "conv1", "bn1"][:max(0, 4 - frozen_stages) + (frozen_stages < 0)]
    for name, parameter in body.named_parameters():
        if not any(name.startswith(prefix) for prefix in trained):
            parameter.requires_grad_(False)
    stage2_channels = body.inplanes // 8
    return BackboneWithFPN(body, {f"layer{index + 1}": str(index) for index in range(num_stages)},
                           [stage2_channels * 2 ** index for index in range(num_stages)], channels,
                           extra_blocks=MaxPooledLevels(num_levels - num_stages))


def build_peer(arch: dict, height: int, width: int) -> tuple:
    """(torchvision MaskRCNN, MaskIoUHead) with random weights for H x W inputs (kept at that size)."""
    channels = arch["fpn_channels"]
    backbone = resnet_fpn(arch["depth"], arch["num_stages"], arch["frozen_stages"], arch["norm_eval"], channels,
                          arch["num_levels"])
    ratios = tuple(arch["anchor_ratios"])
    anchors = AnchorGenerator(tuple(tuple(scale * stride for scale in arch["anchor_scales"])
                                    for stride in arch["anchor_strides"]), (ratios,) * len(arch["anchor_strides"]))
    roi_size, mask_roi_size = arch["roi_size"], arch["mask_roi_size"]
    num_classes = arch["num_classes"]
    model = torchvision.models.detection.MaskRCNN(
        backbone, num_classes=None, min_size=min(height, width), max_size=max(height, width),
        rpn_anchor_generator=anchors, rpn_head=RPNHead(channels, anchors.num_anchors_per_location()[0]),
        rpn_pre_nms_top_n_train=arch["rpn_pre_train"], rpn_post_nms_top_n_train=arch["rpn_post_train"],
        rpn_pre_nms_top_n_test=arch["rpn_pre_test"], rpn_post_nms_top_n_test=arch["rpn_post_test"],
        rpn_batch_size_per_image=arch["rpn_samples"], rpn_positive_fraction=arch["rpn_pos_fraction"],
        box_roi_pool=MultiScaleRoIAlign(FEATURE_NAMES, roi_size, 2),
        box_head=TwoMLPHead(channels * roi_size ** 2, arch["fc_channels"]),
        box_predictor=FastRCNNPredictor(arch["fc_channels"], num_classes),
        box_batch_size_per_image=arch["rcnn_samples"], box_positive_fraction=arch["rcnn_pos_fraction"],
        box_score_thresh=0.0, box_detections_per_img=arch["detections"],
        mask_roi_pool=MultiScaleRoIAlign(FEATURE_NAMES, mask_roi_size, 2),
        mask_head=MaskRCNNHeads(channels, [arch["mask_channels"]] * arch["mask_convs"], 1),
        mask_predictor=MaskRCNNPredictor(arch["mask_channels"], arch["mask_channels"], num_classes))
    mask_iou_head = MaskIoUHead(num_classes, channels, mask_roi_size, arch["mask_iou_convs"],
                                arch["mask_iou_channels"], arch["mask_iou_fcs"], arch["mask_iou_fc_channels"])
    return model, mask_iou_head

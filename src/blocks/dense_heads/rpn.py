"""Region Proposal Network head: shared conv, objectness and box-delta convs, anchors and training loss."""
import math
from typing import List, Optional, Sequence, Tuple

import numpy as np
import mindspore as ms
from mindspore import Tensor, nn, ops

from src.blocks.anchor_generator import AnchorGenerator
from src.blocks.assigners_samplers import AssignerSampler
from src.blocks.bbox_coders import DeltaXYWHBBoxCoder
from src.blocks.conv import Conv2d
from src.blocks.initialization import normal_init
from src.model_utils.config import Config

RPN_SEED_STREAM = 1


class RPNHead(nn.Cell):
    """RPN head shared over the FPN levels: 3x3 conv (feat_channels) + ReLU, 1x1 conv to A objectness logits
    (sigmoid) and 1x1 conv to 4A box deltas, A = anchors per location.

    Anchors for the static input size ``img_shape`` (h, w) are computed on the host once (``level_anchors``, numpy
    [N_l, 4] per level, order: location row-major, then the A base anchors). An anchor is valid for an image when its
    location lies on a feature cell covering the image's scaled content (img_meta scaled size; the anchor
    generator's valid-flag rule with that size as pad shape).

    construct(features tuple of L [B, C, H_l, W_l]) -> (cls_scores [B, N] logits, bbox_preds [B, N, 4]) with all
    levels concatenated (N = sum of H_l * W_l * A), in the anchor order.
    loss(cls_scores, bbox_preds, gt_bboxes [B, G, 4], gt_valids [B, G] bool, img_meta [B, 6]) -> (loss_rpn_cls,
    loss_rpn_bbox): anchors are assigned and sampled per image (train_cfg.rpn); sigmoid BCE summed over the sampled
    anchors and L1 on the encoded deltas of the sampled positives, both divided by the number of sampled anchors
    of the batch (mmdetection's avg_factor with sampling), times rpn.loss_cls / loss_bbox .loss_weight.
    """

    def __init__(self, cfg: Config, img_shape: Sequence[int], seed: int):
        super().__init__()
        rpn_cfg = cfg.rpn
        anchor_cfg = rpn_cfg.anchor_generator
        self.anchor_generator = AnchorGenerator(anchor_cfg.strides, anchor_cfg.ratios, anchor_cfg.scales,
                                                bool(anchor_cfg.round_base))
        self.num_anchors = self.anchor_generator.num_base_anchors
        self.featmap_sizes = self._featmap_sizes(img_shape)
        self.level_anchors: List[np.ndarray] = self.anchor_generator.grid_anchors(self.featmap_sizes)
        self.anchors = Tensor(np.concatenate(self.level_anchors, 0))
        self.anchor_cells = Tensor(self._anchor_cells())

        self.rpn_conv = Conv2d(rpn_cfg.in_channels, rpn_cfg.feat_channels, 3, pad_mode="pad", padding=1,
                               has_bias=True)
        self.rpn_cls = Conv2d(rpn_cfg.feat_channels, self.num_anchors * rpn_cfg.num_classes, 1, has_bias=True)
        self.rpn_reg = Conv2d(rpn_cfg.feat_channels, self.num_anchors * 4, 1, has_bias=True)
        for conv in (self.rpn_conv, self.rpn_cls, self.rpn_reg):
            normal_init(conv, std=0.01)
        self.relu = nn.ReLU()

        self.assigner_sampler = AssignerSampler(cfg.train_cfg.rpn.assigner, cfg.train_cfg.rpn.sampler, seed,
                                               RPN_SEED_STREAM)
        self.bbox_coder = DeltaXYWHBBoxCoder(rpn_cfg.bbox_coder.target_means, rpn_cfg.bbox_coder.target_stds)
        self.loss_cls_weight = float(rpn_cfg.loss_cls.loss_weight)
        self.loss_bbox_weight = float(rpn_cfg.loss_bbox.loss_weight)

    def _featmap_sizes(self, img_shape: Sequence[int]) -> List[Tuple[int, int]]:
        """(h_l, w_l) of each level's feature map for an input of img_shape (h, w): ceil(side / stride)."""
        return [(int(math.ceil(img_shape[0] / stride)), int(math.ceil(img_shape[1] / stride)))
                for stride in self.anchor_generator.strides]

    def anchors_for(self, img_shape: Sequence[int]) -> List[np.ndarray]:
        """Anchors per level (numpy [N_l, 4], the order of ``level_anchors``) for another input size (h, w)."""
        return self.anchor_generator.grid_anchors(self._featmap_sizes(img_shape))

    def _anchor_cells(self) -> np.ndarray:
        """[N, 3] float32 per anchor: (x * stride, y * stride, stride) of its feature location."""
        cells = []
        for (height, width), stride in zip(self.featmap_sizes, self.anchor_generator.strides):
            grid_x, grid_y = np.meshgrid(np.arange(width), np.arange(height))
            location = np.stack((grid_x.reshape(-1) * stride, grid_y.reshape(-1) * stride,
                                 np.full(height * width, stride)), axis=1)
            cells.append(np.repeat(location, self.num_anchors, axis=0))
        return np.concatenate(cells, 0).astype(np.float32)

    def anchor_valids(self, meta: Tensor) -> Tensor:
        """meta [..., 6] (one image or a batch) -> [..., N] bool: anchor location x < ceil(scaled_w / stride),
        y < ceil(scaled_h / stride)."""
        stride = self.anchor_cells[:, 2]
        valid_x = self.anchor_cells[:, 0] < ops.ceil(ops.expand_dims(meta[..., 3], -1) / stride) * stride
        valid_y = self.anchor_cells[:, 1] < ops.ceil(ops.expand_dims(meta[..., 2], -1) / stride) * stride
        return ops.logical_and(valid_x, valid_y)

    def construct(self, features: Tuple[Tensor, ...]) -> Tuple[Tensor, Tensor]:
        cls_scores, bbox_preds = [], []
        for feature in features:
            hidden = self.relu(self.rpn_conv(feature))
            batch = feature.shape[0]
            cls_scores.append(ops.reshape(ops.transpose(self.rpn_cls(hidden), (0, 2, 3, 1)), (batch, -1)))
            bbox_preds.append(ops.reshape(ops.transpose(self.rpn_reg(hidden), (0, 2, 3, 1)), (batch, -1, 4)))
        return ops.concat(cls_scores, 1), ops.concat(bbox_preds, 1)

    def loss(self, cls_scores: Tensor, bbox_preds: Tensor, gt_bboxes: Tensor, gt_valids: Tensor,
             img_meta: Tensor, priorities: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """(loss_rpn_cls, loss_rpn_bbox) of a batch; ``priorities`` [B, N] uniform [0, 1) sampling priorities of the
        anchors (drawn here from the seeded sampler when None)."""
        cls_sum = ops.zeros((), ms.float32)
        bbox_sum = ops.zeros((), ms.float32)
        num_sampled = ops.zeros((), ms.float32)
        if priorities is None:
            priorities = self.assigner_sampler.sampler.draw(cls_scores.shape)
        sampled = self.assigner_sampler(gt_bboxes, gt_valids, self.anchors, self.anchor_valids(img_meta), priorities)
        pos_sampled, neg_sampled, matched_gt = sampled[1], sampled[2], sampled[3]
        pos_weights = ops.cast(pos_sampled, ms.float32)
        sample_weights = ops.cast(ops.logical_or(pos_sampled, neg_sampled), ms.float32)
        bce = ops.maximum(cls_scores, 0.0) - cls_scores * pos_weights + ops.log1p(ops.exp(-ops.abs(cls_scores)))
        targets = ops.stop_gradient(self.bbox_coder.encode(self.anchors, ops.gather(gt_bboxes, matched_gt, 1,
                                                                                    batch_dims=1)))
        weighted_bce = bce * sample_weights
        pos_l1 = ops.where(pos_sampled, ops.abs(bbox_preds - targets).sum(axis=2), 0.0)
        for image in range(cls_scores.shape[0]):
            cls_sum = cls_sum + weighted_bce[image].sum()
            bbox_sum = bbox_sum + pos_l1[image].sum()
            num_sampled = num_sampled + sample_weights[image].sum()
        normaliser = ops.maximum(num_sampled, 1.0)
        return (self.loss_cls_weight * cls_sum / normaliser, self.loss_bbox_weight * bbox_sum / normaliser)

"""Box head of the second stage: two shared fully connected layers, then a classifier and a box regressor."""
from typing import Optional, Tuple, Union

import mindspore as ms
from mindspore import Tensor, nn, ops

from src.blocks.bbox_coders import DeltaXYWHBBoxCoder
from src.blocks.initialization import normal_init, xavier_init
from src.blocks.utils import masked_mean, select_class
from src.model_utils.config import Config


class Shared2FCBBoxHead(nn.Cell):
    """flatten -> fc (in_channels * roi_feat_size^2 -> fc_out_channels) -> ReLU -> fc -> ReLU -> two outputs:
    ``cls_score [K, num_classes]`` (logits, column 0 background) and ``bbox_pred [K, 4 * (num_classes - 1)]``
    (normalised deltas, class c at columns 4(c-1)..4(c-1)+3) or ``[K, 4]`` when ``reg_class_agnostic``.

    Args: head_cfg (the ``bbox_head`` config: in_channels, fc_out_channels, roi_feat_size, reg_class_agnostic,
    bbox_coder.target_means/target_stds, loss_cls.loss_weight, loss_bbox.loss_weight), num_classes (with background).
    Initialisation: shared fcs Xavier uniform, classifier N(0, 0.01^2), regressor N(0, 0.001^2), zero biases.
    """

    def __init__(self, head_cfg: Config, num_classes: int):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes: expected >= 2 (background and at least one class), got {num_classes}")
        self.num_classes = num_classes
        self.reg_class_agnostic = bool(head_cfg.reg_class_agnostic)
        self.loss_cls_weight = float(head_cfg.loss_cls.loss_weight)
        self.loss_bbox_weight = float(head_cfg.loss_bbox.loss_weight)
        in_features = head_cfg.in_channels * head_cfg.roi_feat_size * head_cfg.roi_feat_size
        fc_channels = head_cfg.fc_out_channels
        self.shared_fc1 = xavier_init(nn.Dense(in_features, fc_channels))
        self.shared_fc2 = xavier_init(nn.Dense(fc_channels, fc_channels))
        self.fc_cls = normal_init(nn.Dense(fc_channels, num_classes), std=0.01)
        reg_outputs = 4 if self.reg_class_agnostic else 4 * (num_classes - 1)
        self.fc_reg = normal_init(nn.Dense(fc_channels, reg_outputs), std=0.001)
        self.relu = nn.ReLU()
        self.bbox_coder = DeltaXYWHBBoxCoder(head_cfg.bbox_coder.target_means, head_cfg.bbox_coder.target_stds)

    def construct(self, roi_feats: Tensor) -> Tuple[Tensor, Tensor]:
        """roi_feats [K, C, S, S] -> (cls_score [K, num_classes], bbox_pred [K, 4 * (num_classes - 1)] or [K, 4])."""
        hidden = ops.reshape(roi_feats, (roi_feats.shape[0], -1))
        hidden = self.relu(self.shared_fc1(hidden))
        hidden = self.relu(self.shared_fc2(hidden))
        return self.fc_cls(hidden), self.fc_reg(hidden)

    def _deltas_of_labels(self, bbox_pred: Tensor, labels: Tensor) -> Tensor:
        """bbox_pred [K, 4 * (num_classes - 1)] or [K, 4], labels [K] -> deltas of each label's class [K, 4]."""
        if self.reg_class_agnostic:
            return bbox_pred
        return select_class(ops.reshape(bbox_pred, (bbox_pred.shape[0], self.num_classes - 1, 4)), labels)

    def loss(self, cls_score: Tensor, bbox_pred: Tensor, labels: Tensor, label_weights: Tensor, bbox_targets: Tensor,
             bbox_weights: Tensor) -> Tuple[Tensor, Tensor]:
        """Losses of K sampled RoIs (padding rows have zero weights).

        Inputs: cls_score [K, num_classes], bbox_pred (as construct), labels [K] int32 (0 background),
        label_weights [K] f32 (1 for sampled RoIs), bbox_targets [K, 4] encoded deltas, bbox_weights [K] f32 (1 for
        positives). Returns (loss_cls, loss_bbox), each multiplied by its loss weight:
        loss_cls = softmax cross-entropy averaged over the RoIs with label_weights > 0;
        loss_bbox = plain L1 on the deltas of the gt class, summed over the 4 coordinates and over positives, divided
        by the number of sampled RoIs (sum of label_weights), as mmdetection's ``avg_factor``; exactly 0 without
        positives.
        """
        labels = ops.cast(labels, ms.int32)
        safe_labels = ops.clip_by_value(labels, 0, self.num_classes - 1)
        log_probs = ops.log_softmax(cls_score, axis=1)
        one_hot = ops.one_hot(safe_labels, self.num_classes, Tensor(1.0, ms.float32), Tensor(0.0, ms.float32))
        cross_entropy = -(log_probs * one_hot).sum(axis=1)
        loss_cls = masked_mean(cross_entropy, label_weights) * self.loss_cls_weight

        deltas = self._deltas_of_labels(bbox_pred, safe_labels)
        l1_per_roi = ops.abs(deltas - bbox_targets).sum(axis=1)
        bbox_weights = ops.cast(bbox_weights, ms.float32)
        l1_sum = ops.select(bbox_weights > 0, l1_per_roi * bbox_weights, ops.zeros_like(l1_per_roi)).sum()
        num_sampled = ops.maximum(ops.cast(label_weights, ms.float32).sum(), 1.0)
        loss_bbox = l1_sum / num_sampled * self.loss_bbox_weight
        return loss_cls, loss_bbox

    def get_bboxes(self, rois: Tensor, cls_score: Tensor, bbox_pred: Tensor,
                   max_shape: Optional[Union[Tuple[float, float], Tensor]] = None) -> Tuple[Tensor, Tensor]:
        """Inference: rois [K, 4] (x1, y1, x2, y2), head outputs -> (scores [K, num_classes] softmax,
        boxes [K, num_classes - 1, 4] decoded per class, or [K, 4] when class agnostic), clipped to max_shape (h, w).
        Feed both to ``utils.multiclass_nms``."""
        scores = ops.softmax(cls_score, axis=1)
        if self.reg_class_agnostic:
            return scores, self.bbox_coder.decode(rois, bbox_pred, max_shape)
        num_fg = self.num_classes - 1
        deltas = ops.reshape(bbox_pred, (bbox_pred.shape[0], num_fg, 4))
        boxes = ops.broadcast_to(ops.expand_dims(rois, 1), (rois.shape[0], num_fg, 4))
        return scores, self.bbox_coder.decode(boxes, deltas, max_shape)

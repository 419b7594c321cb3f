"""Max-IoU assignment of boxes (anchors or proposals) to ground-truth boxes, with static shapes."""
from typing import Tuple

import mindspore as ms
from mindspore import Tensor, nn, ops

IOU_EPS = 1e-6


def bbox_overlaps(gt_boxes: Tensor, boxes: Tensor) -> Tensor:
    """IoU of every pair: gt_boxes [..., G, 4], boxes [..., N, 4] (x1, y1, x2, y2, width = x2 - x1; leading
    dimensions broadcast) -> [..., G, N] float32."""
    gt = ops.expand_dims(gt_boxes, -2)
    box = ops.expand_dims(boxes, -3)
    inter_w = ops.maximum(ops.minimum(gt[..., 2], box[..., 2]) - ops.maximum(gt[..., 0], box[..., 0]), 0.0)
    inter_h = ops.maximum(ops.minimum(gt[..., 3], box[..., 3]) - ops.maximum(gt[..., 1], box[..., 1]), 0.0)
    inter = inter_w * inter_h
    gt_area = (gt[..., 2] - gt[..., 0]) * (gt[..., 3] - gt[..., 1])
    box_area = (box[..., 2] - box[..., 0]) * (box[..., 3] - box[..., 1])
    return inter / ops.maximum(gt_area + box_area - inter, IOU_EPS)


class MaxIoUAssigner(nn.Cell):
    """Assigns each box to the ground truth it overlaps most (the mmdetection rule).

    For each valid box with max IoU ``m`` over the valid gts: negative (0) if ``m < neg_iou_thr``; gt k (k + 1) if
    ``m >= pos_iou_thr``; ignored (-1) otherwise. With ``match_low_quality`` each valid gt whose best IoU ``b`` over
    the valid boxes is ``>= min_pos_iou`` also takes every box whose IoU with it equals ``b`` (ties: all of them;
    when several gts claim a box, the highest gt index wins, as the sequential loop of mmdetection does). Invalid
    boxes are ignored (-1); invalid (padding) gts overlap nothing, so an image without valid gts gives only negatives.

    Inputs: gt_boxes [..., G, 4], gt_valids [..., G] bool, boxes [..., N, 4], box_valids [..., N] bool (optional
    leading batch dimensions, broadcast: e.g. one set of anchors for every image).
    Outputs: assigned [..., N] int32 (-1 ignore, 0 negative, k + 1 gt k), max_overlaps [..., N] float32 (0 for
    invalid boxes).
    """

    def __init__(self, pos_iou_thr: float, neg_iou_thr: float, min_pos_iou: float, match_low_quality: bool):
        super().__init__()
        self.pos_iou_thr = float(pos_iou_thr)
        self.neg_iou_thr = float(neg_iou_thr)
        self.min_pos_iou = float(min_pos_iou)
        self.match_low_quality = bool(match_low_quality)

    def construct(self, gt_boxes: Tensor, gt_valids: Tensor, boxes: Tensor,
                  box_valids: Tensor) -> Tuple[Tensor, Tensor]:
        num_gts = gt_boxes.shape[-2]
        pair_valid = ops.logical_and(ops.expand_dims(gt_valids, -1), ops.expand_dims(box_valids, -2))
        overlaps = ops.where(pair_valid, bbox_overlaps(gt_boxes, boxes), 0.0)
        max_overlaps = overlaps.max(axis=-2)
        argmax_gt = ops.cast(overlaps.argmax(axis=-2), ms.int32)
        assigned = ops.where(max_overlaps >= self.pos_iou_thr, argmax_gt + 1,
                             ops.where(max_overlaps < self.neg_iou_thr, 0, -1))
        if self.match_low_quality:
            gt_best = ops.where(pair_valid, overlaps, -1.0).max(axis=-1, keepdims=True)
            gt_can_match = ops.logical_and(gt_valids, gt_best[..., 0] >= self.min_pos_iou)
            is_best = ops.logical_and(overlaps == gt_best, pair_valid)
            is_best = ops.logical_and(is_best, ops.expand_dims(gt_can_match, -1))
            gt_numbers = ops.expand_dims(ops.arange(1, num_gts + 1, dtype=ms.int32), 1)
            low_quality_gt = (ops.cast(is_best, ms.int32) * gt_numbers).max(axis=-2)
            assigned = ops.where(low_quality_gt > 0, low_quality_gt, assigned)
        assigned = ops.where(box_valids, assigned, -1)
        return ops.cast(assigned, ms.int32), max_overlaps

"""Small shared operations of the detector heads: weighted means, the labelled class's output, NMS of groups of
boxes in one call, and multi-class NMS with static shapes."""
from typing import Optional, Tuple

import mindspore as ms
from mindspore import Tensor, ops

from src.blocks.nms import SortedNms

MIN_WEIGHT_SUM = 1e-6


def masked_mean(values: Tensor, weights: Tensor) -> Tensor:
    """Weighted mean of ``values`` over the entries with ``weights > 0``: sum(values * weights) / sum(weights).

    values and weights have the same shape (e.g. [K]). Entries with zero weight are excluded even when their value
    is NaN or inf (padding), and an all-zero ``weights`` gives exactly 0. Returns a float32 scalar.
    """
    weights = ops.cast(weights, ms.float32)
    selected = weights > 0
    weighted = ops.select(selected, values * weights, ops.zeros_like(values))
    return weighted.sum() / ops.maximum(weights.sum(), MIN_WEIGHT_SUM)


def select_class(class_outputs: Tensor, labels: Tensor) -> Tensor:
    """The output of each row's labelled class: class_outputs [P, C - 1, ...] (one entry per foreground class) and
    labels [P] integer in 1..C-1 (clamped to that range, so padding labels such as 0 read class 1) -> [P, ...]."""
    num_fg = class_outputs.shape[1]
    class_index = ops.clip_by_value(ops.cast(labels, ms.int32) - 1, 0, num_fg - 1)
    one_hot = ops.one_hot(class_index, num_fg, Tensor(1.0, ms.float32), Tensor(0.0, ms.float32))
    one_hot = ops.reshape(one_hot, one_hot.shape + (1,) * (class_outputs.ndim - 2))
    return (class_outputs * one_hot).sum(axis=1)


def grouped_nms_keep(sorted_boxes: Tensor, group_offsets: Tensor, nms: SortedNms) -> Tensor:
    """Keep mask [N] bool of NMS run within groups of boxes, all groups in one ``nms`` call: sorted_boxes [N, 4] in
    decreasing score order are shifted by group_offsets [N] float32 (group index times more than the coordinate
    range), so boxes of different groups never overlap."""
    return nms(sorted_boxes + ops.expand_dims(group_offsets, 1))


def multiclass_nms(cls_scores: Tensor, bboxes: Tensor, score_thr: float, nms: SortedNms, max_per_img: int,
                   max_candidates: int, roi_valids: Optional[Tensor] = None,
                   min_bbox_size: float = 0.0) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per-class NMS of one image's detections with static shapes (GRAPH and PYNATIVE).

    Args:
        cls_scores: [K, num_classes] float32 class probabilities, column 0 the background.
        bboxes: [K, num_classes - 1, 4] class-specific boxes (x1, y1, x2, y2), or [K, 4] shared by all classes.
        score_thr: (box, class) pairs scoring <= this are dropped.
        nms: the :class:`~src.blocks.nms.SortedNms` of the IoU threshold: within one class, a box is suppressed
            when its IoU with a higher-scoring kept box is larger.
        max_per_img: M, detections returned.
        max_candidates: the highest-scoring (box, class) pairs that enter NMS (static NMS size; pairs beyond it are
            dropped, as mmdetection's ``nms_pre``); clamped to K * (num_classes - 1) and must be >= max_per_img.
            NMS being greedy by score, the dropped pairs change nothing when max_per_img candidates survive it.
        roi_valids: optional [K] bool, False for padding rows.
        min_bbox_size: pairs whose box has a side < this are dropped before NMS (torchvision's
            ``remove_small_boxes``); 0 keeps every box.
    Returns:
        bboxes [M, 4] (zeros where invalid), scores [M] (0 where invalid), labels [M] int32 in 1..num_classes-1,
        valids [M] bool; valid detections first, by decreasing score.

    One NMS call handles all classes (:func:`grouped_nms_keep`, candidates sorted by TopK first): each box is
    shifted by ``label * (max coordinate - min coordinate + 1)`` so that boxes of different classes never overlap.
    It suppresses IoU > the threshold with areas (x2 - x1) * (y2 - y1), checked by tests/blocks/test_multiclass_nms.py.
    """
    num_rois, num_classes = cls_scores.shape
    num_fg = num_classes - 1
    num_pairs = num_rois * num_fg
    num_candidates = min(int(max_candidates), num_pairs)
    if max_per_img > num_candidates:
        raise ValueError(f"multiclass_nms: max_per_img ({max_per_img}) exceeds the number of NMS candidates "
                         f"({num_candidates} = min(max_candidates, K * (num_classes - 1)))")
    if bboxes.ndim == 2:
        bboxes = ops.broadcast_to(ops.expand_dims(bboxes, 1), (num_rois, num_fg, 4))
    scores = cls_scores[:, 1:]
    if roi_valids is not None:
        scores = scores * ops.expand_dims(ops.cast(roi_valids, ms.float32), 1)
    if min_bbox_size > 0:
        big_enough = ops.logical_and(bboxes[..., 2] - bboxes[..., 0] >= min_bbox_size,
                                     bboxes[..., 3] - bboxes[..., 1] >= min_bbox_size)
        scores = ops.where(big_enough, scores, -1.0)
    scores = ops.reshape(scores, (num_pairs,))
    flat_boxes = ops.reshape(bboxes, (num_pairs, 4))
    labels = ops.tile(ops.arange(1, num_classes, dtype=ms.int32), (num_rois,))

    top_scores, top_index = ops.topk(scores, num_candidates, sorted=True)
    top_boxes = ops.gather(flat_boxes, top_index, 0)
    top_labels = ops.gather(labels, top_index, 0)
    candidate_boxes = ops.stop_gradient(top_boxes)
    class_step = candidate_boxes.max() - candidate_boxes.min() + 1.0
    keep = grouped_nms_keep(top_boxes, ops.cast(top_labels, ms.float32) * class_step, nms)
    keep = ops.logical_and(keep, top_scores > score_thr)

    kept_scores = ops.select(keep, top_scores, ops.full_like(top_scores, -1.0))
    final_index = ops.topk(kept_scores, max_per_img, sorted=True)[1]
    valid_float = ops.gather(ops.cast(keep, ms.float32), final_index, 0)
    valids = valid_float > 0
    final_boxes = ops.gather(top_boxes, final_index, 0) * ops.expand_dims(valid_float, 1)
    final_scores = ops.gather(top_scores, final_index, 0) * valid_float
    final_labels = ops.gather(top_labels, final_index, 0)
    return final_boxes, final_scores, final_labels, valids

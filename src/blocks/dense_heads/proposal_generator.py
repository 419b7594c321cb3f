"""RPN proposals: per-level top-k, decoding, clipping, size filter and NMS, with static shapes."""
from typing import Sequence, Tuple

import numpy as np
import mindspore as ms
from mindspore import Tensor, nn, ops

from src.blocks.bbox_coders import DeltaXYWHBBoxCoder
from src.blocks.utils import grouped_nms_keep
from src.model_utils.config import Config


class ProposalGenerator(nn.Cell):
    """Turns RPN outputs of one batch into a fixed number of proposals per image.

    Per image and level: the ``nms_pre`` highest objectness scores (TopK) are kept, their anchors decoded and
    clipped to the image's scaled (content) size from img_meta; boxes with a side <= ``min_bbox_size`` become
    invalid. NMS (``iou_threshold``) then runs within each level separately, as mmdetection v2's batched NMS does
    (one ``NMSWithMask`` call, boxes of level l shifted by l * (max image side + 1) so levels never overlap), and
    the ``max_per_img`` highest-scoring kept boxes of all levels are returned (:func:`grouped_nms_keep`, the
    candidates sorted by TopK first).

    Args: proposal_cfg (nms_pre, max_per_img, iou_threshold, min_bbox_size), level_anchors (one numpy [N_l, 4]
    per level), img_shape (h, w) of the network input, bbox_coder_cfg (target_means, target_stds).
    Inputs: cls_scores [B, N] objectness logits, bbox_preds [B, N, 4] deltas (N = sum of N_l, levels concatenated
    in order), img_meta [B, 6]. Outputs: proposals [B, max_per_img, 4] (x1, y1, x2, y2 input pixels, zeros where
    invalid), scores [B, max_per_img] (sigmoid objectness), valids [B, max_per_img] bool; valid ones first.
    """

    def __init__(self, proposal_cfg: Config, level_anchors: Sequence[np.ndarray], img_shape: Sequence[int],
                 bbox_coder_cfg: Config):
        super().__init__()
        self.level_sizes = [int(anchors.shape[0]) for anchors in level_anchors]
        self.level_pre = [min(int(proposal_cfg.nms_pre), size) for size in self.level_sizes]
        self.num_candidates = sum(self.level_pre)
        self.max_per_img = int(proposal_cfg.max_per_img)
        if self.max_per_img > self.num_candidates:
            raise ValueError(f"rpn_proposal.max_per_img: expected <= {self.num_candidates} (candidates after "
                             f"nms_pre), got {self.max_per_img}")
        self.anchors = [Tensor(anchors.astype(np.float32)) for anchors in level_anchors]
        self.min_bbox_size = float(proposal_cfg.min_bbox_size)
        self.level_shift = float(max(img_shape)) + 1.0
        self.nms = ops.NMSWithMask(float(proposal_cfg.iou_threshold))
        self.bbox_coder = DeltaXYWHBBoxCoder(bbox_coder_cfg.target_means, bbox_coder_cfg.target_stds)

    def _single_image(self, scores: Tensor, deltas: Tensor, meta: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        boxes, box_scores, shifts = [], [], []
        start = 0
        for level, (size, pre) in enumerate(zip(self.level_sizes, self.level_pre)):
            level_scores, index = ops.topk(scores[start:start + size], pre)
            level_deltas = ops.gather(deltas[start:start + size], index, 0)
            level_anchors = ops.gather(self.anchors[level], index, 0)
            boxes.append(self.bbox_coder.decode(level_anchors, level_deltas, meta[2:4]))
            box_scores.append(level_scores)
            shifts.append(ops.fill(ms.float32, (pre,), level * self.level_shift))
            start += size
        boxes = ops.concat(boxes, 0)
        box_scores = ops.concat(box_scores, 0)
        shifts = ops.concat(shifts, 0)
        widths = boxes[:, 2] - boxes[:, 0]
        heights = boxes[:, 3] - boxes[:, 1]
        big_enough = ops.logical_and(widths > self.min_bbox_size, heights > self.min_bbox_size)
        ranked_scores = ops.where(big_enough, box_scores, -1.0)
        sorted_scores, order = ops.topk(ranked_scores, self.num_candidates)
        sorted_boxes = ops.gather(boxes, order, 0)
        keep = grouped_nms_keep(sorted_boxes, ops.gather(shifts, order, 0), self.nms)
        keep = ops.logical_and(keep, sorted_scores >= 0.0)
        final_scores, final_index = ops.topk(ops.where(keep, sorted_scores, -1.0), self.max_per_img)
        valids = final_scores >= 0.0
        proposals = ops.gather(sorted_boxes, final_index, 0) * ops.expand_dims(ops.cast(valids, ms.float32), 1)
        return proposals, ops.where(valids, final_scores, 0.0), valids

    def construct(self, cls_scores: Tensor, bbox_preds: Tensor, img_meta: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        scores = ops.sigmoid(ops.stop_gradient(cls_scores))
        deltas = ops.stop_gradient(bbox_preds)
        proposals, proposal_scores, valids = [], [], []
        for image in range(cls_scores.shape[0]):
            image_proposals, image_scores, image_valids = self._single_image(scores[image], deltas[image],
                                                                             img_meta[image])
            proposals.append(image_proposals)
            proposal_scores.append(image_scores)
            valids.append(image_valids)
        return ops.stack(proposals), ops.stack(proposal_scores), ops.stack(valids)

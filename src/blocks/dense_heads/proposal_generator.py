"""RPN proposals: per-level top-k, decoding, clipping, size filter and NMS, with static shapes."""
from typing import Sequence, Tuple

import numpy as np
import mindspore as ms
from mindspore import Tensor, nn, ops

from src.blocks.bbox_coders import DeltaXYWHBBoxCoder
from src.blocks.nms import SortedNms
from src.model_utils.config import Config


class ProposalGenerator(nn.Cell):
    """Turns RPN outputs of one batch into a fixed number of proposals per image.

    Per image and level: the ``nms_pre`` highest objectness scores (TopK) are kept; the candidates of all levels
    are decoded together and clipped to the image's scaled (content) size from img_meta; boxes with a side <=
    ``min_bbox_size`` become invalid and move behind the valid ones of their level. NMS (``iou_threshold``) then
    runs within each level separately, as mmdetection v2's batched NMS does (:class:`~src.blocks.nms.SortedNms`:
    one call per level for the whole batch; NMS costs up to the square of its boxes, so five calls on up to
    ``nms_pre`` boxes cost a fraction of one on all of them), and the ``max_per_img`` highest-scoring kept boxes of
    all levels are returned (equal scores in level order). Every step works on the whole batch at once.

    Args: proposal_cfg (nms_pre, max_per_img, iou_threshold, min_bbox_size), level_anchors (one numpy [N_l, 4]
    per level), bbox_coder_cfg (target_means, target_stds).
    Inputs: cls_scores [B, N] objectness logits, bbox_preds [B, N, 4] deltas (N = sum of N_l, levels concatenated
    in order), img_meta [B, 6]. Outputs: proposals [B, max_per_img, 4] (x1, y1, x2, y2 input pixels, zeros where
    invalid), scores [B, max_per_img] (sigmoid objectness), valids [B, max_per_img] bool; valid ones first.
    """

    def __init__(self, proposal_cfg: Config, level_anchors: Sequence[np.ndarray], bbox_coder_cfg: Config):
        super().__init__()
        self.level_sizes = [int(anchors.shape[0]) for anchors in level_anchors]
        self.level_pre = [min(int(proposal_cfg.nms_pre), size) for size in self.level_sizes]
        self.num_candidates = sum(self.level_pre)
        self.max_per_img = int(proposal_cfg.max_per_img)
        if self.max_per_img > self.num_candidates:
            raise ValueError(f"rpn_proposal.max_per_img: expected <= {self.num_candidates} (candidates after "
                             f"nms_pre), got {self.max_per_img}")
        self.all_anchors = Tensor(np.concatenate(level_anchors).astype(np.float32))
        self.min_bbox_size = float(proposal_cfg.min_bbox_size)
        self.nms = SortedNms(float(proposal_cfg.iou_threshold))
        self.bbox_coder = DeltaXYWHBBoxCoder(bbox_coder_cfg.target_means, bbox_coder_cfg.target_stds)

    def construct(self, cls_scores: Tensor, bbox_preds: Tensor, img_meta: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        scores = ops.sigmoid(ops.stop_gradient(cls_scores))
        deltas = ops.stop_gradient(bbox_preds)
        top_scores, top_index = [], []
        start = 0
        for size, pre in zip(self.level_sizes, self.level_pre):
            level_scores, index = ops.topk(scores[:, start:start + size], pre)
            top_scores.append(level_scores)
            top_index.append(index + start)
            start += size
        candidate_index = ops.concat(top_index, 1)
        candidate_deltas = ops.gather(deltas, candidate_index, 1, batch_dims=1)
        candidate_anchors = ops.gather(self.all_anchors, candidate_index, 0)
        candidates = self.bbox_coder.decode(candidate_anchors, candidate_deltas, img_meta[:, 2:4])
        widths = candidates[..., 2] - candidates[..., 0]
        heights = candidates[..., 3] - candidates[..., 1]
        big_enough = ops.logical_and(widths > self.min_bbox_size, heights > self.min_bbox_size)
        candidate_scores = ops.where(big_enough, ops.concat(top_scores, 1), -1.0)
        boxes, box_scores, keeps = [], [], []
        start = 0
        for pre in self.level_pre:
            sorted_scores, order = ops.topk(candidate_scores[:, start:start + pre], pre)
            sorted_boxes = ops.gather(candidates[:, start:start + pre], order, 1, batch_dims=1)
            keeps.append(ops.logical_and(self.nms(sorted_boxes), sorted_scores >= 0.0))
            boxes.append(sorted_boxes)
            box_scores.append(sorted_scores)
            start += pre
        boxes = ops.concat(boxes, 1)
        keep_scores = ops.where(ops.concat(keeps, 1), ops.concat(box_scores, 1), -1.0)
        final_scores, final_index = ops.topk(keep_scores, self.max_per_img)
        valids = final_scores >= 0.0
        proposals = ops.gather(boxes, final_index, 1, batch_dims=1) * ops.expand_dims(ops.cast(valids, ms.float32), 2)
        return proposals, ops.where(valids, final_scores, 0.0), valids

"""Max-IoU assignment followed by random sampling, with static shapes."""
from typing import Tuple

import mindspore as ms
from mindspore import Tensor, nn, ops

from src.blocks.assigners_samplers.max_iou_assigner import MaxIoUAssigner
from src.blocks.assigners_samplers.random_sampler import RandomSampler
from src.model_utils.config import Config


class AssignerSampler(nn.Cell):
    """``MaxIoUAssigner`` + ``RandomSampler`` built from the ``assigner`` and ``sampler`` config sections.

    Inputs: gt_boxes [..., G, 4], gt_valids [..., G] bool, boxes [..., N, 4], box_valids [..., N] bool, priorities
    [..., N] float32 (the sampler's random priorities, from ``self.sampler.draw``); optional leading batch
    dimensions, the boxes' broadcast (one set of anchors for a batch).
    Outputs: assigned [..., N] int32 (-1 ignore, 0 negative, k + 1 gt k), pos_sampled [..., N] bool, neg_sampled
    [..., N] bool, matched_gt [..., N] int32 (index of the assigned gt, 0 where the box has none: use with
    ``pos_sampled``).
    ``seed``/``seed2`` seed the sampler's random priorities.
    """

    def __init__(self, assigner_cfg: Config, sampler_cfg: Config, seed: int, seed2: int):
        super().__init__()
        self.assigner = MaxIoUAssigner(assigner_cfg.pos_iou_thr, assigner_cfg.neg_iou_thr,
                                       assigner_cfg.min_pos_iou, assigner_cfg.match_low_quality)
        self.sampler = RandomSampler(sampler_cfg.num, sampler_cfg.pos_fraction, sampler_cfg.neg_pos_ub, seed, seed2)

    def construct(self, gt_boxes: Tensor, gt_valids: Tensor, boxes: Tensor, box_valids: Tensor,
                  priorities: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        assigned = self.assigner(gt_boxes, gt_valids, boxes, box_valids)[0]
        pos_sampled, neg_sampled = self.sampler(assigned, priorities)
        matched_gt = ops.cast(ops.maximum(assigned - 1, 0), ms.int32)
        return assigned, pos_sampled, neg_sampled, matched_gt

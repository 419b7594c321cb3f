"""R-CNN stage targets: proposal assignment and sampling, box targets, and mask / mask-area targets of positives."""
from typing import Tuple

import mindspore as ms
from mindspore import Tensor, nn, ops

from src.blocks.assigners_samplers.assigner_sampler import AssignerSampler
from src.blocks.bbox_coders import DeltaXYWHBBoxCoder
from src.blocks.roi_extractors import RoIAlign
from src.model_utils.config import Config

MASK_CROP_SAMPLING_RATIO = 2
AREA_EPS = 1e-6


class MaskAssignerSampler(nn.Cell):
    """Targets of the bbox, mask and MaskIoU heads for a whole batch at once (each image sampled on its own).

    Candidates are the proposals, plus the gt boxes when ``train_cfg.rcnn.sampler.add_gt_as_proposals``. They are
    assigned (``train_cfg.rcnn.assigner``), sampled (``train_cfg.rcnn.sampler``) and packed into ``num`` rows,
    positives first. The first ``P = mask_roi.sample_num`` rows are the mask RoIs (P >= num * pos_fraction, so every
    sampled positive is among them).

    Mask targets: the ASSIGNED gt mask (stored at 1 / mask_divider resolution) is cropped by the RoI with RoIAlign
    (aligned, 2x2 samples per bin; the gt masks [B * G, 1, Hm, Wm] are the batch and the assigned gt's row is the RoI's
    batch index), resized to mask_size x mask_size and binarised at 0.5. area_ratio = (mean of the unbinarised crop
    * RoI area in mask pixels) / (gt mask area in mask pixels): the share of the instance inside the RoI; 1 for
    padding rows, at least 1e-6 otherwise.

    Inputs (a batch of B images, all in one pass): proposals [B, M, 4], proposal_valids [B, M] bool, gt_bboxes
    [B, G, 4], gt_labels [B, G] int32, gt_valids [B, G] bool, gt_masks [B, G, Hm, Wm] uint8, priorities
    [B, M (+ G)] float32 (from ``draw``).
    Outputs: rois [B, num, 4], labels [B, num] int32 (0 = background), label_weights [B, num] float32, bbox_targets
    [B, num, 4] (encoded with bbox_head.bbox_coder), bbox_weights [B, num] float32, pos_rois [B, P, 4], pos_labels
    [B, P] int32, pos_valids [B, P] bool, mask_targets [B, P, S, S] float32 in {0, 1}, area_ratios [B, P] float32.
    """

    def __init__(self, cfg: Config, seed: int, seed2: int):
        super().__init__()
        rcnn_cfg = cfg.train_cfg.rcnn
        self.num = int(rcnn_cfg.sampler.num)
        self.num_mask_rois = int(cfg.mask_roi.sample_num)
        if self.num_mask_rois > self.num or self.num_mask_rois < int(self.num * rcnn_cfg.sampler.pos_fraction):
            raise ValueError(f"mask_roi.sample_num: expected int(train_cfg.rcnn.sampler.num * pos_fraction) <= value "
                             f"<= train_cfg.rcnn.sampler.num, got {self.num_mask_rois}")
        self.add_gt_as_proposals = bool(rcnn_cfg.sampler.add_gt_as_proposals)
        self.assigner_sampler = AssignerSampler(rcnn_cfg.assigner, rcnn_cfg.sampler, seed, seed2)
        self.bbox_coder = DeltaXYWHBBoxCoder(cfg.bbox_head.bbox_coder.target_means,
                                             cfg.bbox_head.bbox_coder.target_stds)
        self.mask_divider = float(cfg.mask_divider)
        self.mask_crop = RoIAlign(int(rcnn_cfg.mask_size), 1.0 / self.mask_divider, MASK_CROP_SAMPLING_RATIO,
                                  aligned=True, impl=cfg.mask_roi.roi_layer.impl)

    def num_candidates(self, num_proposals: int, num_gts: int) -> int:
        """Boxes sampled from per image: M + G (gt boxes added as proposals) or M."""
        return num_proposals + num_gts if self.add_gt_as_proposals else num_proposals

    def draw(self, batch_size: int, num_proposals: int, num_gts: int) -> Tensor:
        """Random sampling priorities of a batch: [B, num_candidates]."""
        return self.assigner_sampler.sampler.draw((batch_size, self.num_candidates(num_proposals, num_gts)))

    def construct(self, proposals: Tensor, proposal_valids: Tensor, gt_bboxes: Tensor, gt_labels: Tensor,
                  gt_valids: Tensor, gt_masks: Tensor, priorities: Tensor) -> Tuple[Tensor, ...]:
        if self.add_gt_as_proposals:
            candidates = ops.concat((proposals, gt_bboxes), 1)
            candidate_valids = ops.concat((proposal_valids, gt_valids), 1)
        else:
            candidates = proposals
            candidate_valids = proposal_valids
        if candidates.shape[1] < self.num:
            raise ValueError("train_cfg.rcnn.sampler.num: expected <= number of candidate proposals")
        sampled = self.assigner_sampler(gt_bboxes, gt_valids, candidates, candidate_valids, priorities)
        pos_sampled, neg_sampled, matched_gt = sampled[1], sampled[2], sampled[3]
        indices, valids = self.assigner_sampler.sampler.pack(pos_sampled, neg_sampled)
        rois = ops.stop_gradient(ops.gather(candidates, indices, 1, batch_dims=1))
        is_pos = ops.logical_and(ops.gather(pos_sampled, indices, 1, batch_dims=1), valids)
        roi_gt = ops.gather(matched_gt, indices, 1, batch_dims=1)
        labels = ops.where(is_pos, ops.gather(gt_labels, roi_gt, 1, batch_dims=1), 0)
        label_weights = ops.cast(valids, ms.float32)
        bbox_targets = self.bbox_coder.encode(rois, ops.gather(gt_bboxes, roi_gt, 1, batch_dims=1))
        bbox_weights = ops.cast(is_pos, ms.float32)
        bbox_targets = bbox_targets * ops.expand_dims(bbox_weights, 2)
        num_mask_rois = self.num_mask_rois
        pos_rois = rois[:, :num_mask_rois]
        pos_labels = labels[:, :num_mask_rois]
        pos_valids = is_pos[:, :num_mask_rois]
        batch, num_gts = gt_masks.shape[0], gt_masks.shape[1]
        pos_gt = roi_gt[:, :num_mask_rois] + ops.expand_dims(ops.arange(batch, dtype=ms.int32) * num_gts, 1)
        masks = ops.reshape(ops.cast(gt_masks, ms.float32), (batch * num_gts, 1) + gt_masks.shape[2:])
        flat_pos_gt = ops.reshape(pos_gt, (-1,))
        flat_pos_rois = ops.reshape(pos_rois, (-1, 4))
        crop_rois = ops.concat((ops.expand_dims(ops.cast(flat_pos_gt, ms.float32), 1), flat_pos_rois), 1)
        crops = self.mask_crop(masks, crop_rois)[:, 0]
        mask_targets = ops.cast(crops >= 0.5, ms.float32)
        roi_area = ((flat_pos_rois[:, 2] - flat_pos_rois[:, 0]) * (flat_pos_rois[:, 3] - flat_pos_rois[:, 1])
                    / (self.mask_divider * self.mask_divider))
        area_in_roi = crops.mean(axis=(1, 2)) * roi_area
        gt_area = ops.gather(masks.sum(axis=(1, 2, 3)), flat_pos_gt, 0)
        area_ratios = ops.maximum(area_in_roi / ops.maximum(gt_area, AREA_EPS), AREA_EPS)
        flat_pos_valids = ops.reshape(pos_valids, (-1,))
        area_ratios = ops.where(flat_pos_valids, area_ratios, 1.0)
        mask_targets = mask_targets * ops.reshape(ops.cast(flat_pos_valids, ms.float32), (-1, 1, 1))
        mask_size = mask_targets.shape[-1]
        return (rois, labels, label_weights, bbox_targets, bbox_weights, pos_rois, pos_labels, pos_valids,
                ops.stop_gradient(ops.reshape(mask_targets, (batch, num_mask_rois, mask_size, mask_size))),
                ops.stop_gradient(ops.reshape(area_ratios, (batch, num_mask_rois))))

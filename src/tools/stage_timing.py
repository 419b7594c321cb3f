"""Per-stage times of this project's Mask Scoring R-CNN for ``src.tools.benchmark --stages``.

Each stage is a small cell over the sub-modules of :class:`~src.blocks.ms_rcnn.MsRcnn` /
:class:`~src.blocks.ms_rcnn.MsRcnnInfer`, making the same calls in the same order as their ``construct``, run in the
configured execution mode (GRAPH: one graph per stage, compiled by its first, untimed call) and fed with the outputs
of the stage before (:func:`src.tools.stage_clock.time_stages`). Separate graphs lose the fusion and scheduling across
stage boundaries that the whole network's graph has, and each adds a launch, so the stages' sum is close to, not equal
to, the fused step time.
"""
from typing import Dict, Sequence, Tuple

import mindspore as ms
import numpy as np
from mindspore import Tensor, nn, ops
from mindspore.common.api import _pynative_executor

from src.blocks.ms_rcnn import MsRcnnInfer
from src.blocks.utils import select_class
from src.data.transforms import TransformParams, prepare_image
from src.eval_utils import encode_mask, postprocess_image
from src.network_define import TrainStep
from src.tools.stage_clock import Stage, time_backward, time_stages

INFER_STAGES = ("preprocess", "backbone_fpn", "rpn_proposals", "box_branch", "mask_branch", "mask_iou_branch",
                "host_postprocess")
TRAIN_STAGES = ("backbone_fpn", "rpn_head_loss", "proposals", "targets", "box_branch", "mask_branch",
                "mask_iou_branch")


class _Stage(nn.Cell):
    """A stage over the sub-modules of ``net`` (an MsRcnn or an MsRcnnInfer); ``auto_prefix=False`` keeps the
    shared parameters' names."""

    def __init__(self, net: nn.Cell) -> None:
        super().__init__(auto_prefix=False)
        self.net = net


class BackboneStage(_Stage):
    """img -> FPN features (``net``: MsRcnn)."""

    def construct(self, img: Tensor) -> Tuple[Tensor, ...]:
        return self.net.features(img)


class InferRpnStage(_Stage):
    """(features, img_meta) -> (proposals [B, P, 4], proposal_valids [B, P]) with the test-time proposal settings
    (``net``: MsRcnnInfer)."""

    def construct(self, features: Tuple[Tensor, ...], img_meta: Tensor) -> Tuple[Tensor, Tensor]:
        rpn_cls, rpn_reg = self.net.model.rpn_head(features)
        proposals, proposal_valids = self.net.test_proposals(rpn_cls, rpn_reg, img_meta)[::2]
        return proposals, proposal_valids


class InferBoxStage(_Stage):
    """RoI pooling, box head, decoding and per-class NMS -> (boxes [B, M, 4], scores, labels, valids [B, M])
    (``net``: MsRcnnInfer)."""

    def construct(self, features: Tuple[Tensor, ...], proposals: Tensor, proposal_valids: Tensor,
                  img_meta: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        return self.net.detect_boxes(features, proposals, proposal_valids, img_meta)


class InferMaskStage(_Stage):
    """Mask RoI pooling and mask head on the detections -> (mask_feats, mask_probs [B * M, S, S] of the labels)
    (``net``: MsRcnnInfer)."""

    def construct(self, features: Tuple[Tensor, ...], boxes: Tensor, labels: Tensor,
                  valids: Tensor) -> Tuple[Tensor, Tensor]:
        return self.net.segment(features, boxes, labels, valids)


class InferMaskIoUStage(_Stage):
    """MaskIoU head -> mask_ious [B * M] of the labels (``net``: MsRcnnInfer)."""

    def construct(self, mask_feats: Tensor, mask_probs: Tensor, labels: Tensor, valids: Tensor) -> Tensor:
        return self.net.score_masks(mask_feats, mask_probs, labels, valids)


class TrainRpnStage(_Stage):
    """RPN head and loss -> (rpn_cls, rpn_reg, loss_rpn_cls, loss_rpn_bbox)."""

    def construct(self, features: Tuple[Tensor, ...], gt_bboxes: Tensor, gt_valids: Tensor, img_meta: Tensor,
                  rpn_priorities: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        rpn_cls, rpn_reg = self.net.rpn_head(features)
        loss_rpn_cls, loss_rpn_bbox = self.net.rpn_head.loss(rpn_cls, rpn_reg, gt_bboxes, gt_valids, img_meta,
                                                               rpn_priorities)
        return rpn_cls, rpn_reg, loss_rpn_cls, loss_rpn_bbox


class TrainProposalStage(_Stage):
    """Training proposals -> (proposals [B, P, 4], proposal_valids [B, P])."""

    def construct(self, rpn_cls: Tensor, rpn_reg: Tensor, img_meta: Tensor) -> Tuple[Tensor, Tensor]:
        proposals, proposal_valids = self.net.train_proposals(rpn_cls, rpn_reg, img_meta)[::2]
        return proposals, proposal_valids


class TrainTargetStage(_Stage):
    """Assignment, sampling and mask targets -> the tuple of :meth:`MsRcnn.rcnn_targets`."""

    def construct(self, proposals: Tensor, proposal_valids: Tensor, gt_bboxes: Tensor, gt_labels: Tensor,
                  gt_valids: Tensor, gt_masks: Tensor, rcnn_priorities: Tensor) -> Tuple[Tensor, ...]:
        return self.net.rcnn_targets(proposals, proposal_valids, gt_bboxes, gt_labels, gt_valids, gt_masks,
                                     rcnn_priorities)


class TrainBoxStage(_Stage):
    """RoI pooling, box head and its loss -> (loss_cls, loss_bbox)."""

    def construct(self, features: Tuple[Tensor, ...], rois: Tensor, labels: Tensor, label_weights: Tensor,
                  bbox_targets: Tensor, bbox_weights: Tensor) -> Tuple[Tensor, Tensor]:
        model = self.net
        cls_score, bbox_pred = model.bbox_head(model.bbox_roi_extractor(features[:model.num_bbox_levels], rois))
        return model.bbox_head.loss(cls_score, bbox_pred, labels, label_weights, bbox_targets, bbox_weights)


class TrainMaskStage(_Stage):
    """Mask RoI pooling, mask head and its loss -> (mask_feats, mask_logits, loss_mask)."""

    def construct(self, features: Tuple[Tensor, ...], pos_rois: Tensor, mask_targets: Tensor, pos_labels: Tensor,
                  pos_weights: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        model = self.net
        mask_feats = model.mask_roi_extractor(features[:model.num_mask_levels], pos_rois)
        mask_logits = model.mask_logits(mask_feats, pos_weights)
        return mask_feats, mask_logits, model.mask_head.loss(mask_logits, mask_targets, pos_labels, pos_weights)


class TrainMaskIoUStage(_Stage):
    """MaskIoU head, its targets and loss -> loss_mask_iou."""

    def construct(self, mask_feats: Tensor, mask_logits: Tensor, mask_targets: Tensor, area_ratios: Tensor,
                  pos_labels: Tensor, pos_weights: Tensor) -> Tensor:
        head = self.net.mask_iou_head
        mask_prob = ops.stop_gradient(ops.sigmoid(select_class(mask_logits, pos_labels)))
        mask_iou_pred = self.net.mask_iou(mask_feats, mask_prob, pos_weights)
        iou_targets = ops.stop_gradient(head.get_targets(mask_prob, mask_targets, area_ratios,
                                                         self.net.mask_thr_binary))
        return head.loss(mask_iou_pred, iou_targets, pos_labels, pos_weights)


def synchronize() -> None:
    """Wait for the queued work: the device's streams, or on CPU (where ``ms.runtime.synchronize`` is unsupported)
    the asynchronous op pipeline that ``Tensor.asnumpy`` waits for."""
    if ms.get_context("device_target") == "CPU":
        _pynative_executor.sync()
    else:
        ms.runtime.synchronize()


def _named(names: Sequence[str], values: Sequence[object]) -> Dict[str, object]:
    return dict(zip(names, values))


def _nothing(_: object) -> Dict[str, object]:
    return {}


def infer_stage_times(infer_net: MsRcnnInfer, image: np.ndarray, params: TransformParams, mask_thr_binary: float,
                      mask_paste: str, steps: int) -> Dict[str, float]:
    """{INFER_STAGES name: median ms} of one BGR uint8 image, the work of ``detect_image`` + ``encode_mask``."""
    cells = [BackboneStage(infer_net.model), InferRpnStage(infer_net), InferBoxStage(infer_net),
             InferMaskStage(infer_net), InferMaskIoUStage(infer_net)]
    for cell in cells:
        cell.set_train(False)
    backbone, rpn, box, mask, mask_iou = cells

    def preprocess(values: dict) -> dict:
        img, meta = prepare_image(values["image"], params)
        return {"img": Tensor(img[None]), "img_meta": Tensor(meta[None]), "meta": meta}

    def host_postprocess(values: dict) -> dict:
        batch, size = values["boxes"].shape[:2], values["mask_probs"].shape[-1]
        outputs = [values[name].asnumpy()[0] for name in ("boxes", "labels", "scores")]
        outputs += [values["mask_probs"].asnumpy().reshape(*batch, size, size)[0],
                    values["mask_ious"].asnumpy().reshape(batch)[0], values["valids"].asnumpy()[0]]
        for detection in postprocess_image(*outputs, values["meta"], mask_thr_binary, mask_paste):
            encode_mask(detection["mask"])
        return {}

    stages: Sequence[Stage] = (
        ("preprocess", preprocess),
        ("backbone_fpn", lambda v: {"features": backbone(v["img"])}),
        ("rpn_proposals", lambda v: _named(("proposals", "proposal_valids"), rpn(v["features"], v["img_meta"]))),
        ("box_branch", lambda v: _named(("boxes", "scores", "labels", "valids"),
                                        box(v["features"], v["proposals"], v["proposal_valids"], v["img_meta"]))),
        ("mask_branch", lambda v: _named(("mask_feats", "mask_probs"),
                                         mask(v["features"], v["boxes"], v["labels"], v["valids"]))),
        ("mask_iou_branch", lambda v: {"mask_ious": mask_iou(v["mask_feats"], v["mask_probs"], v["labels"],
                                                             v["valids"])}),
        ("host_postprocess", host_postprocess),
    )
    return time_stages(stages, {"image": image}, steps, synchronize)


def train_stage_times(trainer: TrainStep, batch: Sequence[Tensor], steps: int) -> Dict[str, float]:
    """{TRAIN_STAGES name: median ms} of the forward pass of ``trainer.network`` (an :class:`MsRcnn`) on ``batch``,
    with the ground-truth columns and sampling priorities a training step would use, then ``backward_and_update``:
    the whole training step minus the whole forward pass, paired (:func:`src.tools.stage_clock.time_backward`)."""
    model = trainer.network
    fitted = trainer.fit_gts(batch)
    priorities = trainer.priorities(int(batch[0].shape[0]), int(batch[2].shape[1]), int(fitted[2].shape[1]))
    inputs = _named(("img", "img_meta", "gt_bboxes", "gt_labels", "gt_valids", "gt_masks", "rpn_priorities",
                     "rcnn_priorities"), [*fitted, *priorities])
    cells = [cell(model) for cell in (BackboneStage, TrainRpnStage, TrainProposalStage, TrainTargetStage,
                                      TrainBoxStage, TrainMaskStage, TrainMaskIoUStage)]
    for cell in cells:
        cell.set_train(True)
    backbone, rpn, proposals, targets, box, mask, mask_iou = cells
    target_names = ("rois", "labels", "label_weights", "bbox_targets", "bbox_weights", "pos_rois", "pos_labels",
                    "pos_weights", "mask_targets", "area_ratios")
    stages: Sequence[Stage] = (
        ("backbone_fpn", lambda v: {"features": backbone(v["img"])}),
        ("rpn_head_loss", lambda v: _named(("rpn_cls", "rpn_reg"), rpn(v["features"], v["gt_bboxes"], v["gt_valids"],
                                                                       v["img_meta"], v["rpn_priorities"]))),
        ("proposals", lambda v: _named(("proposals", "proposal_valids"),
                                       proposals(v["rpn_cls"], v["rpn_reg"], v["img_meta"]))),
        ("targets", lambda v: _named(target_names, targets(
            v["proposals"], v["proposal_valids"], v["gt_bboxes"], v["gt_labels"], v["gt_valids"], v["gt_masks"],
            v["rcnn_priorities"]))),
        ("box_branch", lambda v: _nothing(box(v["features"], *(v[name] for name in target_names[:5])))),
        ("mask_branch", lambda v: _named(("mask_feats", "mask_logits"), mask(
            v["features"], v["pos_rois"], v["mask_targets"], v["pos_labels"], v["pos_weights"]))),
        ("mask_iou_branch", lambda v: _nothing(mask_iou(v["mask_feats"], v["mask_logits"], v["mask_targets"],
                                                        v["area_ratios"], v["pos_labels"], v["pos_weights"]))),
    )
    medians = time_stages(stages, inputs, steps, synchronize)
    medians["backward_and_update"] = time_backward(lambda: model(*fitted, *priorities),
                                                   lambda: trainer.step(batch, 0), steps, synchronize)
    return medians

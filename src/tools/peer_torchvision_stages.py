"""Per-stage times of the torchvision peer (:mod:`src.tools.peer_torchvision`) for ``src.tools.benchmark --stages``:
the sub-modules of torchvision's Mask R-CNN called as its ``forward`` calls them, each fed with the outputs of the
stage before (:func:`src.tools.stage_clock.time_stages`).

Inference runs under ``torch.no_grad()``. Training runs the forward stages in train mode with autograd recording (as
in a training step); the mask targets, which torchvision computes inside ``maskrcnn_loss``, are timed with the other
targets, and the mask loss is that of ``maskrcnn_loss`` on them. ``preprocess`` is ``model.transform`` (resize,
normalise, batch; in training also the targets' masks).
"""
from typing import Callable, Dict, List

import torch
from torch.nn import functional
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.roi_heads import fastrcnn_loss, maskrcnn_inference, project_masks_on_boxes
from torchvision.models.detection.rpn import concat_box_prediction_layers

from src.tools.stage_clock import Stage, time_backward, time_stages

MASK_SIZE = 28  # torchvision's mask logits: 14 x 14 RoI features upsampled twice


def _original_sizes(images: List[torch.Tensor]) -> List[tuple]:
    return [tuple(image.shape[-2:]) for image in images]


def mask_iou_on(mask_iou_head: torch.nn.Module, mask_features: torch.Tensor) -> torch.Tensor:
    """The MaskIoU head on the mask branch's RoI features [R, 256, 14, 14] with random mask probabilities
    [R, 1, 28, 28] (the head's work does not depend on their values)."""
    return mask_iou_head(mask_features, torch.rand(mask_features.shape[0], 1, MASK_SIZE, MASK_SIZE))


def infer_stage_times(model: MaskRCNN, mask_iou_head: torch.nn.Module, images: List[torch.Tensor],
                      steps: int) -> Dict[str, float]:
    """{stage: median ms} of one inference step: preprocess, backbone_fpn, rpn_proposals, box_branch (RoI pooling, box
    head, decoding, per-class NMS), mask_branch, mask_iou_branch (on the mask branch's RoIs, as the step) and
    host_postprocess (``model.transform.postprocess``: boxes back to the image and mask pasting)."""
    heads = model.roi_heads

    def box_branch(values: dict) -> dict:
        image_sizes = values["image_list"].image_sizes
        box_features = heads.box_head(heads.box_roi_pool(values["features"], values["proposals"], image_sizes))
        class_logits, box_regression = heads.box_predictor(box_features)
        boxes, scores, labels = heads.postprocess_detections(class_logits, box_regression, values["proposals"],
                                                             image_sizes)
        return {"detections": [{"boxes": b, "labels": l, "scores": s} for b, s, l in zip(boxes, scores, labels)]}

    def mask_branch(values: dict) -> dict:
        detections = values["detections"]
        mask_features = heads.mask_roi_pool(values["features"], [d["boxes"] for d in detections],
                                            values["image_list"].image_sizes)
        mask_logits = heads.mask_predictor(heads.mask_head(mask_features))
        for detection, probs in zip(detections, maskrcnn_inference(mask_logits, [d["labels"] for d in detections])):
            detection["masks"] = probs
        return {"mask_features": mask_features}

    stages: List[Stage] = [
        ("preprocess", lambda v: {"image_list": model.transform(v["images"])[0]}),
        ("backbone_fpn", lambda v: {"features": model.backbone(v["image_list"].tensors)}),
        ("rpn_proposals", lambda v: {"proposals": model.rpn(v["image_list"], v["features"])[0]}),
        ("box_branch", box_branch),
        ("mask_branch", mask_branch),
        ("mask_iou_branch", lambda v: {"mask_iou": mask_iou_on(mask_iou_head, v["mask_features"])}),
        ("host_postprocess", lambda v: {"result": model.transform.postprocess(
            v["detections"], v["image_list"].image_sizes, _original_sizes(v["images"]))}),
    ]
    with torch.no_grad():
        return time_stages(stages, {"images": images}, steps)


def train_stage_times(model: MaskRCNN, mask_iou_head: torch.nn.Module, images: List[torch.Tensor],
                      targets: List[dict], steps: int, forward: Callable[[], torch.Tensor],
                      step: Callable[[], None]) -> Dict[str, float]:
    """{stage: median ms} of one training step: the forward stages preprocess, backbone_fpn, rpn_head_loss (head,
    anchors, anchor assignment, loss), proposals (decoding, NMS), targets (proposal assignment, sampling, mask
    targets), box_branch (+loss), mask_branch (+loss), mask_iou_branch (head on the positives + loss, as the step),
    then backward_and_update: ``step`` (the whole training step) minus ``forward`` (its forward pass), paired
    (:func:`src.tools.stage_clock.time_backward`)."""
    rpn, heads = model.rpn, model.roi_heads

    def rpn_head_loss(values: dict) -> dict:
        image_list, features = values["image_list"], list(values["features"].values())
        objectness, deltas = rpn.head(features)
        anchors = rpn.anchor_generator(image_list, features)
        anchors_per_level = [o[0].shape[0] * o[0].shape[1] * o[0].shape[2] for o in objectness]
        objectness, deltas = concat_box_prediction_layers(objectness, deltas)
        labels, matched_gt_boxes = rpn.assign_targets_to_anchors(anchors, values["targets"])
        rpn.compute_loss(objectness, deltas, labels, rpn.box_coder.encode(matched_gt_boxes, anchors))
        return {"objectness": objectness, "deltas": deltas, "anchors": anchors,
                "anchors_per_level": anchors_per_level}

    def proposals(values: dict) -> dict:
        decoded = rpn.box_coder.decode(values["deltas"].detach(), values["anchors"])
        boxes, _ = rpn.filter_proposals(decoded.view(len(values["anchors"]), -1, 4), values["objectness"],
                                        values["image_list"].image_sizes, values["anchors_per_level"])
        return {"proposals": boxes}

    def sample_targets(values: dict) -> dict:
        sampled, matched_idxs, labels, regression_targets = heads.select_training_samples(values["proposals"],
                                                                                          values["targets"])
        pos_proposals, mask_targets, mask_labels = [], [], []
        for image, target in enumerate(values["targets"]):
            pos = torch.where(labels[image] > 0)[0]
            pos_proposals.append(sampled[image][pos])
            mask_labels.append(target["labels"][matched_idxs[image][pos]])
            mask_targets.append(project_masks_on_boxes(target["masks"], pos_proposals[-1], matched_idxs[image][pos],
                                                       MASK_SIZE))
        return {"sampled": sampled, "labels": labels, "regression_targets": regression_targets,
                "pos_proposals": pos_proposals, "mask_targets": torch.cat(mask_targets),
                "mask_labels": torch.cat(mask_labels)}

    def box_branch(values: dict) -> dict:
        box_features = heads.box_head(heads.box_roi_pool(values["features"], values["sampled"],
                                                         values["image_list"].image_sizes))
        class_logits, box_regression = heads.box_predictor(box_features)
        fastrcnn_loss(class_logits, box_regression, values["labels"], values["regression_targets"])
        return {}

    def mask_branch(values: dict) -> dict:
        mask_features = heads.mask_roi_pool(values["features"], values["pos_proposals"],
                                            values["image_list"].image_sizes)
        mask_logits = heads.mask_predictor(heads.mask_head(mask_features))
        selected = mask_logits[torch.arange(values["mask_labels"].shape[0]), values["mask_labels"]]
        functional.binary_cross_entropy_with_logits(selected, values["mask_targets"])
        return {"mask_features": mask_features}

    stages: List[Stage] = [
        ("preprocess", lambda v: dict(zip(("image_list", "targets"),
                                          model.transform(v["images"], v["raw_targets"])))),
        ("backbone_fpn", lambda v: {"features": model.backbone(v["image_list"].tensors)}),
        ("rpn_head_loss", rpn_head_loss),
        ("proposals", proposals),
        ("targets", sample_targets),
        ("box_branch", box_branch),
        ("mask_branch", mask_branch),
        ("mask_iou_branch", lambda v: {
            "loss_mask_iou": mask_iou_on(mask_iou_head, v["mask_features"]).square().mean()}),
    ]
    medians = time_stages(stages, {"images": images, "raw_targets": targets}, steps)
    medians["backward_and_update"] = time_backward(forward, step, steps)
    return medians

"""Mask Scoring R-CNN: composition of the backbone, FPN, RPN, bbox head, mask head and MaskIoU head."""
from typing import List, Optional, Sequence, Tuple

import mindspore as ms
from mindspore import Tensor, nn, ops

from src.blocks.assigners_samplers import MaskAssignerSampler
from src.blocks.backbones import build_backbone
from src.blocks.bbox_heads import Shared2FCBBoxHead
from src.blocks.conv import conv_impl
from src.blocks.dense_heads import ProposalGenerator, RPNHead
from src.blocks.mask_heads import FCNMaskHead, MaskIoUHead
from src.blocks.necks import FPN
from src.blocks.nms import SortedNms
from src.blocks.roi_extractors import SingleLayerRoIExtractor
from src.blocks.utils import multiclass_nms, run_on_valid_chunks, select_class
from src.model_utils.config import Config

RCNN_SEED_STREAM = 2


def _with_batch_index(boxes_per_image: List[Tensor]) -> Tensor:
    """List of B tensors [K, 4] -> [B * K, 5] rows (batch_index, x1, y1, x2, y2)."""
    rows = []
    for image, boxes in enumerate(boxes_per_image):
        index = ops.fill(ms.float32, (boxes.shape[0], 1), float(image))
        rows.append(ops.concat((index, boxes), 1))
    return ops.stop_gradient(ops.concat(rows, 0))


def input_shape(cfg: Config) -> Tuple[int, int]:
    """Static (h, w) of the network input at test time: img_height x img_width."""
    return int(cfg.img_height), int(cfg.img_width)


def train_input_shape(cfg: Config) -> Tuple[int, int]:
    """Static (h, w) of the training input: the crop window when crop training is on, else the test-time size."""
    if int(cfg.crop_height) > 0:
        return int(cfg.crop_height), int(cfg.crop_width)
    return input_shape(cfg)


class MsRcnn(nn.Cell):
    """Mask Scoring R-CNN for training, built from a ``Config`` (static input size ``img_shape`` (h, w), by default
    :func:`train_input_shape`: the crop window with crop training, else img_height x img_width).

    construct(img [B, 3, H, W] float32, img_meta [B, 6], gt_bboxes [B, G, 4], gt_labels [B, G] int32,
    gt_valids [B, G] bool, gt_masks [B, G, H / mask_divider, W / mask_divider] uint8) -> (loss_rpn_cls,
    loss_rpn_bbox, loss_cls, loss_bbox, loss_mask, loss_mask_iou), float32 scalars already multiplied by their
    loss weights. The MaskIoU head sees the predicted mask without its gradient: the IoU regression trains the
    MaskIoU head and the shared features, never the mask logits it scores. The images of a batch are processed by
    Python loops over the static batch size (unrolled in GRAPH mode). The RPN and R-CNN samplers rank their
    candidates by uniform [0, 1) priorities: given as ``rpn_priorities`` and ``rcnn_priorities`` (shapes from
    :meth:`priority_shapes`; the training step draws them on the host from the seed and the step number, so a
    resumed run draws what the interrupted one would have), or drawn in the graph from ``cfg.seed`` when None (the
    same weights and batch then give the same losses in GRAPH and PYNATIVE on a freshly built model).
    """

    def __init__(self, cfg: Config, img_shape: Optional[Sequence[int]] = None):
        super().__init__()
        self.cfg = cfg
        img_shape = tuple(img_shape) if img_shape is not None else train_input_shape(cfg)
        num_classes = int(cfg.num_classes)
        self.num_classes = num_classes
        with conv_impl(str(cfg.conv_impl)):
            self.backbone = build_backbone(cfg.backbone)
            fpn_cfg = cfg.neck.fpn
            self.neck = FPN(fpn_cfg.in_channels, fpn_cfg.out_channels, fpn_cfg.num_outs, int(fpn_cfg.norm_groups))
            self.rpn_head = RPNHead(cfg, img_shape, int(cfg.seed))
            self.train_proposals = ProposalGenerator(cfg.train_cfg.rpn_proposal, self.rpn_head.level_anchors,
                                                     cfg.rpn.bbox_coder)
            self.mask_assigner_sampler = MaskAssignerSampler(cfg, int(cfg.seed), RCNN_SEED_STREAM)
            self.bbox_roi_extractor = SingleLayerRoIExtractor(cfg.roi)
            self.mask_roi_extractor = SingleLayerRoIExtractor(cfg.mask_roi)
            self.num_bbox_levels = len(cfg.roi.featmap_strides)
            self.num_mask_levels = len(cfg.mask_roi.featmap_strides)
            self.bbox_head = Shared2FCBBoxHead(cfg.bbox_head, num_classes)
            self.mask_head = FCNMaskHead(cfg.mask_head, num_classes)
            self.mask_iou_head = MaskIoUHead(cfg.mask_iou_head, num_classes)
        self.mask_thr_binary = float(cfg.train_cfg.rcnn.mask_thr_binary)
        self.mask_chunk_size = int(cfg.mask_roi.chunk_size)
        mask_size = 2 * int(cfg.mask_roi.roi_layer.out_size)
        self.mask_logits_shape = (num_classes - 1, mask_size, mask_size)

    def features(self, img: Tensor) -> Tuple[Tensor, ...]:
        """img [B, 3, H, W] -> FPN outputs (tuple of num_outs maps)."""
        return self.neck(self.backbone(img))

    def mask_logits(self, mask_feats: Tensor, valids: Tensor) -> Tensor:
        """Mask head on RoI features [K, C, S, S] -> mask logits [K, num_classes - 1, 2S, 2S]; with
        ``mask_roi.chunk_size`` > 0 only chunks holding a valid row (valids [K]) run, the others are zeros
        (:func:`run_on_valid_chunks`)."""
        if self.mask_chunk_size == 0:
            return self.mask_head(mask_feats)
        return run_on_valid_chunks(self.mask_head, (mask_feats,), valids, self.mask_chunk_size,
                                   self.mask_logits_shape)

    def mask_iou(self, mask_feats: Tensor, mask_prob: Tensor, valids: Tensor) -> Tensor:
        """MaskIoU head on RoI features [K, C, S, S] and mask probabilities [K, 2S, 2S] -> mask_iou_pred
        [K, num_classes - 1], chunked as :meth:`mask_logits`."""
        mask_prob = ops.expand_dims(mask_prob, 1)
        if self.mask_chunk_size == 0:
            return self.mask_iou_head(mask_feats, mask_prob)
        return run_on_valid_chunks(self.mask_iou_head, (mask_feats, mask_prob), valids, self.mask_chunk_size,
                                   self.mask_logits_shape[:1])

    def priority_shapes(self, batch_size: int, num_gts: int) -> Tuple[Tuple[int, int], Tuple[int, int]]:
        """Shapes of ``rpn_priorities`` ([B, anchors]) and ``rcnn_priorities`` ([B, proposals (+ gts)])."""
        return ((batch_size, int(self.rpn_head.anchors.shape[0])),
                (batch_size, self.mask_assigner_sampler.num_candidates(self.train_proposals.max_per_img, num_gts)))

    def construct(self, img: Tensor, img_meta: Tensor, gt_bboxes: Tensor, gt_labels: Tensor, gt_valids: Tensor,
                  gt_masks: Tensor, rpn_priorities: Optional[Tensor] = None,
                  rcnn_priorities: Optional[Tensor] = None) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        features = self.features(img)
        rpn_cls, rpn_reg = self.rpn_head(features)
        loss_rpn_cls, loss_rpn_bbox = self.rpn_head.loss(rpn_cls, rpn_reg, gt_bboxes, gt_valids, img_meta,
                                                         rpn_priorities)
        proposals, proposal_valids = self.train_proposals(rpn_cls, rpn_reg, img_meta)[::2]
        priorities = rcnn_priorities
        if priorities is None:
            priorities = self.mask_assigner_sampler.draw(img.shape[0], proposals.shape[1], gt_bboxes.shape[1])
        (rois, labels, label_weights, bbox_targets, bbox_weights, pos_rois, pos_labels, pos_weights, mask_targets,
         area_ratios) = self.rcnn_targets(proposals, proposal_valids, gt_bboxes, gt_labels, gt_valids, gt_masks,
                                          priorities)

        roi_feats = self.bbox_roi_extractor(features[:self.num_bbox_levels], rois)
        cls_score, bbox_pred = self.bbox_head(roi_feats)
        loss_cls, loss_bbox = self.bbox_head.loss(cls_score, bbox_pred, labels, label_weights, bbox_targets,
                                                  bbox_weights)

        mask_feats = self.mask_roi_extractor(features[:self.num_mask_levels], pos_rois)
        mask_logits = self.mask_logits(mask_feats, pos_weights)
        loss_mask = self.mask_head.loss(mask_logits, mask_targets, pos_labels, pos_weights)
        mask_prob = ops.stop_gradient(ops.sigmoid(select_class(mask_logits, pos_labels)))
        mask_iou_pred = self.mask_iou(mask_feats, mask_prob, pos_weights)
        iou_targets = ops.stop_gradient(self.mask_iou_head.get_targets(
            mask_prob, mask_targets, area_ratios, self.mask_thr_binary))
        loss_mask_iou = self.mask_iou_head.loss(mask_iou_pred, iou_targets, pos_labels, pos_weights)
        return loss_rpn_cls, loss_rpn_bbox, loss_cls, loss_bbox, loss_mask, loss_mask_iou

    def rcnn_targets(self, proposals: Tensor, proposal_valids: Tensor, gt_bboxes: Tensor, gt_labels: Tensor,
                     gt_valids: Tensor, gt_masks: Tensor, priorities: Tensor) -> Tuple[Tensor, ...]:
        """Assignment, sampling and mask targets of a batch (all images in one pass), flattened over the images:
        (rois [B * N, 5] with their batch index, labels, label_weights, bbox_targets, bbox_weights, pos_rois
        [B * M, 5], pos_labels, pos_weights float32, mask_targets, area_ratios)."""
        (rois, labels, label_weights, bbox_targets, bbox_weights, pos_rois, pos_labels, pos_valids, mask_targets,
         area_ratios) = self.mask_assigner_sampler(proposals, proposal_valids, gt_bboxes, gt_labels, gt_valids,
                                                   gt_masks, priorities)
        batch = proposals.shape[0]

        def flat(values: Tensor) -> Tensor:
            return ops.reshape(values, (-1,) + values.shape[2:])

        return (_with_batch_index([rois[image] for image in range(batch)]), flat(labels), flat(label_weights),
                flat(bbox_targets), flat(bbox_weights), _with_batch_index([pos_rois[image] for image in range(batch)]),
                flat(pos_labels), ops.cast(flat(pos_valids), ms.float32), flat(mask_targets), flat(area_ratios))


class MsRcnnInfer(nn.Cell):
    """Inference network sharing the parameters of an ``MsRcnn``, for the static input size ``img_shape`` (h, w)
    (default :func:`input_shape`, img_height x img_width; it may differ from the training model's crop size:
    anchors and proposals are made for this size, every parameter is shared).

    construct(img [B, 3, H, W], img_meta [B, 6]) -> (bboxes [B, M, 4] (x1, y1, x2, y2 in input pixels, clipped to
    the scaled content), labels [B, M] int32 (1..num_classes-1), cls_scores [B, M], mask_probs [B, M, 28, 28]
    (sigmoid of the labelled class's mask, in box coordinates), mask_ious [B, M] (predicted mask IoU of that class),
    valids [B, M] bool), M = test_cfg.rcnn.max_per_img, valid detections first by decreasing cls_score. The final
    mask score is cls_score * mask_iou (left to the caller).

    Proposals: test_cfg.rpn; the bbox head sees all of them; per-class NMS (test_cfg.rcnn) takes the
    test_cfg.rcnn.max_candidates (0: roi.sample_num) highest-scoring (box, class) pairs of an image as candidates,
    leaving out boxes with a side < test_cfg.rcnn.min_bbox_size.
    """

    def __init__(self, model: MsRcnn, img_shape: Optional[Sequence[int]] = None):
        super().__init__(auto_prefix=False)
        cfg = model.cfg
        self.model = model
        img_shape = tuple(img_shape) if img_shape is not None else input_shape(cfg)
        self.test_proposals = ProposalGenerator(cfg.test_cfg.rpn, model.rpn_head.anchors_for(img_shape),
                                                cfg.rpn.bbox_coder)
        rcnn_cfg = cfg.test_cfg.rcnn
        self.score_thr = float(rcnn_cfg.score_thr)
        self.nms = SortedNms(float(rcnn_cfg.iou_threshold))
        self.max_per_img = int(rcnn_cfg.max_per_img)
        self.max_candidates = int(rcnn_cfg.max_candidates) or int(cfg.roi.sample_num)
        self.min_bbox_size = float(rcnn_cfg.min_bbox_size)

    def construct(self, img: Tensor, img_meta: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        model = self.model
        batch = img.shape[0]
        features = model.features(img)
        rpn_cls, rpn_reg = model.rpn_head(features)
        proposals, proposal_valids = self.test_proposals(rpn_cls, rpn_reg, img_meta)[::2]
        boxes, scores, labels, valids = self.detect_boxes(features, proposals, proposal_valids, img_meta)
        mask_feats, mask_probs = self.segment(features, boxes, labels, valids)
        mask_ious = self.score_masks(mask_feats, mask_probs, labels, valids)
        mask_size = mask_probs.shape[-1]
        return (boxes, labels, scores, ops.reshape(mask_probs, (batch, self.max_per_img, mask_size, mask_size)),
                ops.reshape(mask_ious, (batch, self.max_per_img)), valids)

    def detect_boxes(self, features: Tuple[Tensor, ...], proposals: Tensor, proposal_valids: Tensor,
                     img_meta: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """Box branch: RoI pooling of the proposals [B, P, 4], box head, decoding, per-class NMS -> (boxes
        [B, M, 4], scores [B, M], labels [B, M] int32, valids [B, M] bool)."""
        model = self.model
        batch, num_proposals = proposals.shape[0], proposals.shape[1]
        rois = _with_batch_index([proposals[image] for image in range(batch)])
        cls_score, bbox_pred = model.bbox_head(model.bbox_roi_extractor(features[:model.num_bbox_levels], rois))
        cls_score = ops.reshape(cls_score, (batch, num_proposals, -1))
        bbox_pred = ops.reshape(bbox_pred, (batch, num_proposals, -1))
        boxes, scores, labels, valids = [], [], [], []
        for image in range(batch):
            cls_prob, decoded = model.bbox_head.get_bboxes(proposals[image], cls_score[image], bbox_pred[image],
                                                           img_meta[image, 2:4])
            image_boxes, image_scores, image_labels, image_valids = multiclass_nms(
                cls_prob, decoded, self.score_thr, self.nms, self.max_per_img, self.max_candidates,
                proposal_valids[image], self.min_bbox_size)
            boxes.append(image_boxes)
            scores.append(image_scores)
            labels.append(image_labels)
            valids.append(image_valids)
        return ops.stack(boxes), ops.stack(scores), ops.stack(labels), ops.stack(valids)

    def segment(self, features: Tuple[Tensor, ...], boxes: Tensor, labels: Tensor,
                valids: Tensor) -> Tuple[Tensor, Tensor]:
        """Mask branch on the detections (boxes [B, M, 4], labels [B, M], valids [B, M]) -> (mask_feats, mask_probs
        [B * M, S, S], the sigmoid of each detection's labelled class; with ``mask_roi.chunk_size`` > 0, 0.5 on
        the invalid rows of chunks without a valid detection)."""
        model = self.model
        det_rois = _with_batch_index([boxes[image] for image in range(boxes.shape[0])])
        mask_feats = model.mask_roi_extractor(features[:model.num_mask_levels], det_rois)
        mask_logits = model.mask_logits(mask_feats, ops.reshape(valids, (-1,)))
        return mask_feats, ops.sigmoid(select_class(mask_logits, ops.reshape(labels, (-1,))))

    def score_masks(self, mask_feats: Tensor, mask_probs: Tensor, labels: Tensor, valids: Tensor) -> Tensor:
        """MaskIoU branch -> mask_ious [B * M], the predicted mask IoU of each detection's labelled class."""
        return select_class(self.model.mask_iou(mask_feats, mask_probs, ops.reshape(valids, (-1,))),
                            ops.reshape(labels, (-1,)))

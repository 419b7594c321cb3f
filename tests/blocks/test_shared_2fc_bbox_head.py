"""Shared2FCBBoxHead: shapes, losses against NumPy, zero positives, decoding, parameter count."""
from pathlib import Path

import numpy as np
import pytest
import mindspore as ms
from mindspore import Tensor, nn

from src.blocks.bbox_coders import DeltaXYWHBBoxCoder
from src.blocks.bbox_heads import Shared2FCBBoxHead
from src.model_utils.config import Config, load_config

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
NUM_CLASSES = 4


def head_cfg(reg_class_agnostic=False):
    return Config.from_dict({
        "in_channels": 3, "fc_out_channels": 16, "roi_feat_size": 7, "reg_class_agnostic": reg_class_agnostic,
        "bbox_coder": {"target_means": [0.0, 0.0, 0.0, 0.0], "target_stds": [0.1, 0.1, 0.2, 0.2]},
        "loss_cls": {"loss_weight": 1.5}, "loss_bbox": {"loss_weight": 2.0}})


class HeadWithLoss(nn.Cell):
    def __init__(self, head):
        super().__init__()
        self.head = head

    def construct(self, roi_feats, labels, label_weights, bbox_targets, bbox_weights):
        cls_score, bbox_pred = self.head(roi_feats)
        loss_cls, loss_bbox = self.head.loss(cls_score, bbox_pred, labels, label_weights, bbox_targets, bbox_weights)
        return cls_score, bbox_pred, loss_cls, loss_bbox


def numpy_losses(cls_score, bbox_pred, labels, label_weights, bbox_targets, bbox_weights, agnostic):
    shifted = cls_score - cls_score.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    cross_entropy = -log_probs[np.arange(len(labels)), labels]
    loss_cls = (cross_entropy * label_weights).sum() / label_weights.sum() * 1.5
    l1_sum = 0.0
    for index, label in enumerate(labels):
        if bbox_weights[index] > 0:
            deltas = bbox_pred[index] if agnostic else bbox_pred[index, 4 * (label - 1):4 * label]
            l1_sum += np.abs(deltas - bbox_targets[index]).sum() * bbox_weights[index]
    return loss_cls, l1_sum / label_weights.sum() * 2.0


def make_batch(rng, num_rois=6):
    roi_feats = rng.normal(size=(num_rois, 3, 7, 7)).astype(np.float32)
    labels = np.array([2, 0, 3, 0, 1, 0], np.int32)[:num_rois]
    label_weights = np.array([1, 1, 1, 1, 1, 0], np.float32)[:num_rois]
    bbox_weights = (labels > 0).astype(np.float32) * label_weights
    bbox_targets = rng.normal(size=(num_rois, 4)).astype(np.float32) * bbox_weights[:, None]
    return roi_feats, labels, label_weights, bbox_targets, bbox_weights


@pytest.mark.parametrize("mode", [ms.GRAPH_MODE, ms.PYNATIVE_MODE], ids=["graph", "pynative"])
@pytest.mark.parametrize("agnostic", [False, True], ids=["class_specific", "agnostic"])
def test_outputs_and_losses_match_numpy(mode, agnostic):
    ms.set_context(mode=mode, device_target="CPU")
    ms.set_seed(1)
    rng = np.random.default_rng(0)
    head = Shared2FCBBoxHead(head_cfg(agnostic), NUM_CLASSES)
    # larger regression weights than the 0.001 init so that the L1 terms are not dominated by the targets
    head.fc_reg.weight.set_data(Tensor(rng.normal(size=head.fc_reg.weight.shape).astype(np.float32)))
    batch = make_batch(rng)
    cls_score, bbox_pred, loss_cls, loss_bbox = HeadWithLoss(head)(*(Tensor(array) for array in batch))
    assert cls_score.shape == (6, NUM_CLASSES)
    assert bbox_pred.shape == ((6, 4) if agnostic else (6, 4 * (NUM_CLASSES - 1)))
    expected_cls, expected_bbox = numpy_losses(cls_score.asnumpy(), bbox_pred.asnumpy(), *batch[1:], agnostic)
    assert float(loss_cls) == pytest.approx(expected_cls, rel=1e-5)
    assert float(loss_bbox) == pytest.approx(expected_bbox, rel=1e-5)
    # independent re-derivation of the forward pass
    feats = batch[0].reshape(6, -1)
    hidden = np.maximum(feats @ head.shared_fc1.weight.asnumpy().T + head.shared_fc1.bias.asnumpy(), 0)
    hidden = np.maximum(hidden @ head.shared_fc2.weight.asnumpy().T + head.shared_fc2.bias.asnumpy(), 0)
    np.testing.assert_allclose(cls_score.asnumpy(), hidden @ head.fc_cls.weight.asnumpy().T, rtol=1e-4, atol=1e-5)


def test_zero_positives_give_zero_box_loss():
    ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")
    rng = np.random.default_rng(1)
    roi_feats, labels, label_weights, bbox_targets, _ = make_batch(rng)
    labels[:] = 0
    bbox_weights = np.zeros(6, np.float32)
    bbox_targets[:] = np.nan
    _, _, loss_cls, loss_bbox = HeadWithLoss(Shared2FCBBoxHead(head_cfg(), NUM_CLASSES))(
        Tensor(roi_feats), Tensor(labels), Tensor(label_weights), Tensor(bbox_targets), Tensor(bbox_weights))
    assert float(loss_bbox) == 0.0
    assert np.isfinite(float(loss_cls)) and float(loss_cls) > 0


def test_get_bboxes_decodes_each_class():
    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    cfg = head_cfg()
    head = Shared2FCBBoxHead(cfg, NUM_CLASSES)
    rng = np.random.default_rng(2)
    rois = np.array([[10, 10, 50, 40], [0, 0, 20, 30]], np.float32)
    cls_score = rng.normal(size=(2, NUM_CLASSES)).astype(np.float32)
    bbox_pred = rng.normal(size=(2, 12)).astype(np.float32)
    scores, boxes = head.get_bboxes(Tensor(rois), Tensor(cls_score), Tensor(bbox_pred), (45, 60))
    expected_scores = np.exp(cls_score) / np.exp(cls_score).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(scores.asnumpy(), expected_scores, rtol=1e-5)
    assert boxes.shape == (2, 3, 4)
    coder = DeltaXYWHBBoxCoder(cfg.bbox_coder.target_means, cfg.bbox_coder.target_stds)
    class_2 = coder.decode(Tensor(rois), Tensor(bbox_pred[:, 4:8]), (45, 60))
    np.testing.assert_allclose(boxes.asnumpy()[:, 1], class_2.asnumpy(), rtol=1e-6)


def test_parameter_count_of_coco_config():
    cfg = load_config(CONFIG_DIR / "ms_rcnn_r50_caffe_fpn_1x_coco.yaml")
    head = Shared2FCBBoxHead(cfg.bbox_head, cfg.num_classes)
    count = sum(parameter.size for parameter in head.get_parameters())
    expected = (256 * 7 * 7 * 1024 + 1024) + (1024 * 1024 + 1024) + (1024 * 81 + 81) + (1024 * 320 + 320)
    assert count == expected == 14_306_705


class LossOfOutputs(nn.Cell):
    def __init__(self, head):
        super().__init__()
        self.head = head

    def construct(self, cls_score, bbox_pred, labels, label_weights, bbox_targets, bbox_weights):
        loss_cls, loss_bbox = self.head.loss(cls_score, bbox_pred, labels, label_weights, bbox_targets, bbox_weights)
        return loss_cls + loss_bbox


def test_loss_gradients_in_graph_mode():
    ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")
    rng = np.random.default_rng(8)
    _, labels, label_weights, bbox_targets, bbox_weights = make_batch(rng)
    cls_score = rng.normal(size=(6, NUM_CLASSES)).astype(np.float32)
    bbox_pred = rng.normal(size=(6, 12)).astype(np.float32)
    grad_fn = ms.grad(LossOfOutputs(Shared2FCBBoxHead(head_cfg(), NUM_CLASSES)), grad_position=(0, 1))
    grad_cls, grad_bbox = grad_fn(Tensor(cls_score), Tensor(bbox_pred), Tensor(labels), Tensor(label_weights),
                                  Tensor(bbox_targets), Tensor(bbox_weights))
    num_sampled = label_weights.sum()
    probs = np.exp(cls_score) / np.exp(cls_score).sum(axis=1, keepdims=True)
    expected_cls = (probs - np.eye(NUM_CLASSES)[labels]) * label_weights[:, None] / num_sampled * 1.5
    np.testing.assert_allclose(grad_cls.asnumpy(), expected_cls, rtol=1e-4, atol=1e-7)
    expected_bbox = np.zeros_like(bbox_pred)
    for index, label in enumerate(labels):
        if bbox_weights[index] > 0:
            columns = slice(4 * (label - 1), 4 * label)
            expected_bbox[index, columns] = np.sign(bbox_pred[index, columns] - bbox_targets[index]) / num_sampled * 2.0
    np.testing.assert_allclose(grad_bbox.asnumpy(), expected_bbox, rtol=1e-5, atol=1e-7)

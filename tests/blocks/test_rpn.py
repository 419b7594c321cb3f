"""RPNHead: output layout against the anchor order, anchor validity, and the loss against a NumPy re-derivation."""
import numpy as np
import pytest
import mindspore as ms
from mindspore import Tensor, nn

from src.blocks.dense_heads import RPNHead

IMG = 64


@pytest.fixture(autouse=True, params=[ms.PYNATIVE_MODE, ms.GRAPH_MODE], ids=["pynative", "graph"])
def mode(request):
    ms.set_context(mode=request.param, device_target="CPU")


@pytest.fixture
def rpn_cfg(tiny_cfg):
    tiny_cfg.rpn.anchor_generator.strides = [16, 32]
    tiny_cfg.rpn.anchor_generator.scales = [2]
    return tiny_cfg


class RpnWithLoss(nn.Cell):
    def __init__(self, head):
        super().__init__()
        self.head = head

    def construct(self, feature0, feature1, gt_bboxes, gt_valids, img_meta):
        cls_scores, bbox_preds = self.head((feature0, feature1))
        loss_cls, loss_bbox = self.head.loss(cls_scores, bbox_preds, gt_bboxes, gt_valids, img_meta)
        return cls_scores, bbox_preds, loss_cls, loss_bbox


def features(batch=2, channels=16):
    rng = np.random.default_rng(0)
    return [Tensor(rng.normal(size=(batch, channels, IMG // s, IMG // s)).astype(np.float32)) for s in (16, 32)]


def numpy_iou(gts, boxes):
    lt = np.maximum(gts[:, None, :2], boxes[None, :, :2])
    rb = np.minimum(gts[:, None, 2:], boxes[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    return inter / (area(gts)[:, None] + area(boxes)[None] - inter)


def numpy_encode(boxes, gts):
    bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    gw, gh = gts[:, 2] - gts[:, 0], gts[:, 3] - gts[:, 1]
    return np.stack([(gts[:, 0] + gw / 2 - boxes[:, 0] - bw / 2) / bw, (gts[:, 1] + gh / 2 - boxes[:, 1] - bh / 2) / bh,
                     np.log(gw / bw), np.log(gh / bh)], 1)


def test_output_layout_and_anchor_validity(rpn_cfg):
    head = RPNHead(rpn_cfg, (IMG, IMG), seed=0)
    assert head.anchors.shape == ((16 + 4) * 3, 4)
    feats = features()
    cls_scores, bbox_preds = head(tuple(feats))
    assert cls_scores.shape == (2, 60) and bbox_preds.shape == (2, 60, 4)
    ms.set_context(mode=ms.PYNATIVE_MODE)
    hidden = head.relu(head.rpn_conv(feats[0]))
    level0_cls = head.rpn_cls(hidden).asnumpy()           # [B, A, 4, 4]
    level0_reg = head.rpn_reg(hidden).asnumpy()           # [B, 4A, 4, 4]
    y, x, a = 2, 3, 1
    index = (y * 4 + x) * 3 + a
    np.testing.assert_allclose(cls_scores.asnumpy()[1, index], level0_cls[1, a, y, x], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bbox_preds.asnumpy()[1, index], level0_reg[1, 4 * a:4 * a + 4, y, x], rtol=1e-5,
                               atol=1e-6)
    # anchor of location (x, y) is centred at (16 x, 16 y)
    np.testing.assert_allclose(head.anchors.asnumpy()[index].reshape(2, 2).mean(0), [16 * x, 16 * y], atol=1e-4)
    valids = head.anchor_valids(Tensor(np.array([64, 64, 64, 40, 1, 1], np.float32))).asnumpy()
    level0_x = np.repeat(np.tile(np.arange(4), 4), 3)
    np.testing.assert_array_equal(valids[:48], level0_x < 3)        # ceil(40 / 16) = 3 columns
    assert valids[48:].all()                                         # ceil(40 / 32) = 2 = all columns


def test_loss_matches_numpy(rpn_cfg):
    head = RpnWithLoss(RPNHead(rpn_cfg, (IMG, IMG), seed=0))
    gt_bboxes = np.zeros((2, 4, 4), np.float32)
    gt_valids = np.zeros((2, 4), bool)
    gt_bboxes[0, :2] = [[4, 6, 30, 34], [30, 20, 60, 60]]
    gt_valids[0, :2] = True
    gt_bboxes[1, 0] = [0, 0, 40, 30]
    gt_valids[1, 0] = True
    img_meta = np.array([[64, 64, 64, 64, 1, 1], [64, 64, 64, 40, 1, 1]], np.float32)
    cls_scores, bbox_preds, loss_cls, loss_bbox = head(*features(), Tensor(gt_bboxes), Tensor(gt_valids),
                                                       Tensor(img_meta))
    anchors = head.head.anchors.asnumpy().astype(np.float64)
    logits = cls_scores.asnumpy().astype(np.float64)
    deltas = bbox_preds.asnumpy().astype(np.float64)
    cls_sum = bbox_sum = count = 0.0
    level0_x = np.repeat(np.tile(np.arange(4), 4), 3)
    for image in range(2):
        gts = gt_bboxes[image][gt_valids[image]].astype(np.float64)
        valid = np.ones(60, bool) if image == 0 else np.concatenate([level0_x < 3, np.ones(12, bool)])
        overlaps = numpy_iou(gts, anchors)
        overlaps[:, ~valid] = -1
        best_gt = overlaps.argmax(0)
        max_iou = overlaps.max(0)
        assigned = np.where(max_iou >= 0.7, best_gt + 1, np.where(max_iou < 0.3, 0, -1))
        for g in range(len(gts)):
            if overlaps[g].max() >= 0.3:
                assigned[overlaps[g] == overlaps[g].max()] = g + 1
        assigned[~valid] = -1
        positive = assigned > 0
        assert positive.any() and 0 < (assigned >= 0).sum() <= 64      # everything sampled: no randomness
        sampled = assigned >= 0
        bce = np.maximum(logits[image], 0) - logits[image] * positive + np.log1p(np.exp(-np.abs(logits[image])))
        cls_sum += bce[sampled].sum()
        targets = numpy_encode(anchors[positive], gts[assigned[positive] - 1])
        bbox_sum += np.abs(deltas[image][positive] - targets).sum()
        count += sampled.sum()
    np.testing.assert_allclose(loss_cls.asnumpy(), cls_sum / count, rtol=1e-5)
    np.testing.assert_allclose(loss_bbox.asnumpy(), bbox_sum / count, rtol=1e-5)

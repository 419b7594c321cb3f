"""ProposalGenerator on a hand-made box set against a NumPy per-level greedy NMS reference."""
import numpy as np
import pytest
import mindspore as ms
from mindspore import Tensor

from src.blocks.dense_heads import ProposalGenerator
from src.model_utils.config import Config


@pytest.fixture(autouse=True, params=[ms.PYNATIVE_MODE, ms.GRAPH_MODE], ids=["pynative", "graph"])
def mode(request):
    ms.set_context(mode=request.param, device_target="CPU")
    return request.param


CODER = Config.from_dict({"target_means": [0.0] * 4, "target_stds": [1.0] * 4})


def numpy_iou(box, boxes):
    inter_w = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    inter_h = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = inter_w * inter_h
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / ((box[2] - box[0]) * (box[3] - box[1]) + areas - inter)


def reference(level_boxes, level_scores, nms_pre, iou_thr, min_size, max_per_img, img_hw):
    """Top nms_pre per level, clip, drop small, greedy NMS within each level, then the best max_per_img."""
    kept_boxes, kept_scores = [], []
    for boxes, scores in zip(level_boxes, level_scores):
        order = np.argsort(-scores, kind="stable")[:nms_pre]
        boxes = boxes[order].copy()
        scores = scores[order]
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, img_hw[1])
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, img_hw[0])
        big = ((boxes[:, 2] - boxes[:, 0]) > min_size) & ((boxes[:, 3] - boxes[:, 1]) > min_size)
        boxes, scores = boxes[big], scores[big]
        alive = np.ones(len(boxes), bool)
        for i in range(len(boxes)):
            if not alive[i]:
                continue
            kept_boxes.append(boxes[i])
            kept_scores.append(scores[i])
            later = np.arange(len(boxes)) > i
            alive &= ~(later & (numpy_iou(boxes[i], boxes) > iou_thr))
    order = np.argsort(-np.array(kept_scores), kind="stable")[:max_per_img]
    return np.array(kept_boxes)[order], np.array(kept_scores)[order]


def logit(p):
    return np.log(p / (1 - p))


def test_hand_made_boxes():
    level0 = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 9], [30, 30, 40, 40], [31, 30, 41, 40],
                       [50, 50, 50, 60], [60, 60, 80, 80], [100, 100, 140, 140]], np.float32)
    level1 = np.array([[0, 0, 10, 10], [2, 2, 30, 30], [3, 3, 31, 31], [20, 0, 60, 20]], np.float32)
    scores0 = np.array([0.9, 0.8, 0.85, 0.7, 0.75, 0.95, 0.6, 0.99], np.float32)
    scores1 = np.array([0.5, 0.65, 0.55, 0.3], np.float32)
    # last box of level 0 lies outside the 100x120 content: clipped to zero size then dropped
    img_meta = np.array([[100, 120, 100, 120, 1, 1]], np.float32)
    cfg = Config.from_dict({"nms_pre": 6, "max_per_img": 6, "iou_threshold": 0.5, "min_bbox_size": 0})
    generator = ProposalGenerator(cfg, [level0, level1], CODER)
    cls_scores = Tensor(logit(np.concatenate([scores0, scores1]))[None].astype(np.float32))
    deltas = Tensor(np.zeros((1, 12, 4), np.float32))
    proposals, scores, valids = generator(cls_scores, deltas, Tensor(img_meta))
    expected_boxes, expected_scores = reference([level0, level1], [scores0, scores1], 6, 0.5, 0, 6, (100, 120))
    count = len(expected_boxes)
    assert valids.asnumpy()[0].tolist() == [True] * count + [False] * (6 - count)
    np.testing.assert_allclose(proposals.asnumpy()[0, :count], expected_boxes, atol=1e-4)
    np.testing.assert_allclose(scores.asnumpy()[0, :count], expected_scores, atol=1e-5)
    # by hand: level 0 keeps (after nms_pre 6 drops 0.6 and 0.7 boxes; 0.95 box has zero width; 0.99 box
    # is clipped away) 0.9 [0,0,10,10] (suppresses 0.85 IoU 0.9 and 0.8 IoU 0.68) and 0.75; level 1 keeps 0.65
    # (suppresses 0.55, IoU 0.87), 0.5 (IoU with the 0.65 box 0.13; the equal level-0 box does not suppress it
    # across levels) and 0.3 (IoU 0.13 with the 0.65 box)
    np.testing.assert_allclose(expected_scores, [0.9, 0.75, 0.65, 0.5, 0.3], atol=1e-6)


def test_random_boxes_and_decoding():
    rng = np.random.default_rng(3)
    level_boxes, level_scores = [], []
    for size in (40, 12):
        xy = rng.uniform(0, 100, (size, 2))
        level_boxes.append(np.concatenate([xy, xy + rng.uniform(2, 40, (size, 2))], 1).astype(np.float32))
        level_scores.append(rng.uniform(0.05, 0.95, size).astype(np.float32))
    deltas = rng.normal(0, 0.1, (1, 52, 4)).astype(np.float32)
    cfg = Config.from_dict({"nms_pre": 20, "max_per_img": 16, "iou_threshold": 0.6, "min_bbox_size": 4})
    generator = ProposalGenerator(cfg, level_boxes, CODER)
    img_meta = np.array([[128, 128, 110, 128, 1, 1]], np.float32)
    proposals, _, valids = generator(Tensor(logit(np.concatenate(level_scores))[None].astype(np.float32)),
                                     Tensor(deltas), Tensor(img_meta))
    decoded = []
    start = 0
    for boxes in level_boxes:
        d = deltas[0, start:start + len(boxes)].astype(np.float64)
        start += len(boxes)
        w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        cx, cy = boxes[:, 0] + w / 2 + d[:, 0] * w, boxes[:, 1] + h / 2 + d[:, 1] * h
        nw, nh = w * np.exp(d[:, 2]), h * np.exp(d[:, 3])
        decoded.append(np.stack([cx - nw / 2, cy - nh / 2, cx + nw / 2, cy + nh / 2], 1))
    expected_boxes, _ = reference(decoded, level_scores, 20, 0.6, 4, 16, (110, 128))
    count = min(len(expected_boxes), 16)
    assert valids.asnumpy()[0].sum() == count
    np.testing.assert_allclose(proposals.asnumpy()[0, :count], expected_boxes[:count], atol=1e-3)


def test_equal_scores_keep_anchor_order_within_and_across_levels():
    """Many equal scores (three values) on overlapping boxes: which box suppresses which depends on the order of
    equals, so the result must follow the anchors' order inside a level and the levels' order across them (the
    reference's stable sorts). TopK keeps the order of equals only when it returns every element, so nms_pre and
    max_per_img take all boxes here; with fewer, which of several equal boxes makes the cut is TopK's choice."""
    rng = np.random.default_rng(11)
    level_boxes, level_scores = [], []
    for size in (60, 25, 9):
        xy = rng.uniform(0, 60, (size, 2))
        level_boxes.append(np.concatenate([xy, xy + rng.uniform(10, 30, (size, 2))], 1).astype(np.float32))
        level_scores.append(rng.choice(np.array([0.3, 0.5, 0.7], np.float32), size))
    cfg = Config.from_dict({"nms_pre": 60, "max_per_img": 94, "iou_threshold": 0.3, "min_bbox_size": 12})
    generator = ProposalGenerator(cfg, level_boxes, CODER)
    img_meta = np.array([[96, 96, 96, 96, 1, 1]], np.float32)
    scores = logit(np.concatenate(level_scores).astype(np.float64))[None].astype(np.float32)
    proposals, proposal_scores, valids = generator(Tensor(scores), Tensor(np.zeros((1, 94, 4), np.float32)),
                                                   Tensor(img_meta))
    expected_boxes, expected_scores = reference(level_boxes, level_scores, 60, 0.3, 12, 94, (96, 96))
    count = len(expected_boxes)
    assert 10 < count < 60 and valids.asnumpy()[0].sum() == count
    np.testing.assert_allclose(proposals.asnumpy()[0, :count], expected_boxes, atol=1e-4)
    np.testing.assert_allclose(proposal_scores.asnumpy()[0, :count], expected_scores, atol=1e-6)

"""MaxIoUAssigner, its own CPU kernel (\"custom\") and its element-wise ops (\"builtin\"), against hand-worked cases and a
NumPy re-derivation of the mmdetection rule, and the two against each other bit for bit."""
import numpy as np
import pytest
import mindspore as ms
from mindspore import Tensor

from src.blocks.assigners_samplers import MaxIoUAssigner, bbox_overlaps


@pytest.fixture(autouse=True, params=[ms.PYNATIVE_MODE, ms.GRAPH_MODE], ids=["pynative", "graph"])
def mode(request):
    ms.set_context(mode=request.param, device_target="CPU")
    return request.param


@pytest.fixture(params=["custom", "builtin"])
def impl(request):
    return request.param


def numpy_iou(gts, boxes):
    result = np.zeros((len(gts), len(boxes)), np.float64)
    for g, gt in enumerate(gts):
        for n, box in enumerate(boxes):
            inter_w = max(min(gt[2], box[2]) - max(gt[0], box[0]), 0)
            inter_h = max(min(gt[3], box[3]) - max(gt[1], box[1]), 0)
            inter = inter_w * inter_h
            union = (gt[2] - gt[0]) * (gt[3] - gt[1]) + (box[2] - box[0]) * (box[3] - box[1]) - inter
            result[g, n] = inter / union
    return result


def numpy_assign(gts, gt_valids, boxes, box_valids, pos_thr, neg_thr, min_pos, low_quality):
    """The sequential mmdetection algorithm on the valid gts / boxes only."""
    gt_index = np.flatnonzero(gt_valids)
    box_index = np.flatnonzero(box_valids)
    assigned = np.full(len(boxes), -1, np.int64)
    if len(gt_index) == 0:
        assigned[box_index] = 0
        return assigned
    overlaps = numpy_iou(gts[gt_index], boxes[box_index])
    max_overlaps = overlaps.max(0)
    argmax = overlaps.argmax(0)
    result = np.full(len(box_index), -1, np.int64)
    result[max_overlaps < neg_thr] = 0
    pos = max_overlaps >= pos_thr
    result[pos] = gt_index[argmax[pos]] + 1
    if low_quality:
        for row, gt in enumerate(gt_index):
            best = overlaps[row].max()
            if best >= min_pos:
                result[overlaps[row] == best] = gt + 1
    assigned[box_index] = result
    return assigned


def run(assigner, gts, gt_valids, boxes, box_valids):
    assigned, max_overlaps = assigner(Tensor(gts, ms.float32), Tensor(gt_valids), Tensor(boxes, ms.float32),
                                      Tensor(box_valids))
    return assigned.asnumpy(), max_overlaps.asnumpy()


GTS = np.array([[0, 0, 10, 10], [20, 20, 40, 40], [0, 0, 1, 1]], np.float32)
BOXES = np.array([
    [0, 0, 10, 10],      # IoU 1 with gt 0 -> positive gt 0
    [0, 0, 10, 5],       # IoU 0.5 with gt 0 -> ignored (between thresholds)
    [20, 20, 40, 30],    # IoU 0.5 with gt 1 -> best box of gt 1 (low-quality match)
    [20, 30, 40, 40],    # IoU 0.5 with gt 1 too: a tie, also matched
    [50, 50, 60, 60],    # IoU 0 -> negative
    [0, 0, 10, 9],       # IoU 0.9 but invalid box -> ignored
], np.float32)
BOX_VALIDS = np.array([True, True, True, True, True, False])
GT_VALIDS = np.array([True, True, False])


def test_bbox_overlaps_matches_numpy():
    got = bbox_overlaps(Tensor(GTS), Tensor(BOXES)).asnumpy()
    np.testing.assert_allclose(got, numpy_iou(GTS, BOXES), rtol=1e-6, atol=1e-6)


def test_low_quality_on_with_ties_and_invalid_gt(impl):
    assigner = MaxIoUAssigner(0.7, 0.3, 0.3, True, impl)
    assigned, max_overlaps = run(assigner, GTS, GT_VALIDS, BOXES, BOX_VALIDS)
    np.testing.assert_array_equal(assigned, [1, -1, 2, 2, 0, -1])
    np.testing.assert_allclose(max_overlaps[:5], [1.0, 0.5, 0.5, 0.5, 0.0], atol=1e-6)


def test_low_quality_off(impl):
    assigner = MaxIoUAssigner(0.7, 0.3, 0.3, False, impl)
    assigned, _ = run(assigner, GTS, GT_VALIDS, BOXES, BOX_VALIDS)
    np.testing.assert_array_equal(assigned, [1, -1, -1, -1, 0, -1])


def test_low_quality_below_min_pos_iou_is_not_matched(impl):
    assigner = MaxIoUAssigner(0.7, 0.3, 0.6, True, impl)
    assigned, _ = run(assigner, GTS, GT_VALIDS, BOXES, BOX_VALIDS)
    np.testing.assert_array_equal(assigned, [1, -1, -1, -1, 0, -1])


def test_invalid_gt_is_never_assigned(impl):
    # gt 2 is invalid although box [0, 0, 1, 1] matches it perfectly: the box is negative (IoU 0.01 with gt 0)
    boxes = np.array([[0, 0, 1, 1], [0, 0, 10, 10]], np.float32)
    assigned, _ = run(MaxIoUAssigner(0.7, 0.3, 0.3, True, impl), GTS, GT_VALIDS, boxes, np.array([True, True]))
    np.testing.assert_array_equal(assigned, [0, 1])


def test_no_valid_gt_gives_only_negatives(impl):
    assigner = MaxIoUAssigner(0.7, 0.3, 0.3, True, impl)
    assigned, max_overlaps = run(assigner, GTS, np.zeros(3, bool), BOXES, BOX_VALIDS)
    np.testing.assert_array_equal(assigned, [0, 0, 0, 0, 0, -1])
    np.testing.assert_array_equal(max_overlaps, np.zeros(6))


def test_later_gt_wins_a_shared_best_box(impl):
    gts = np.array([[0, 0, 10, 10], [0, 0, 10, 12]], np.float32)
    boxes = np.array([[0, 0, 10, 11], [30, 30, 40, 40]], np.float32)
    assigned, _ = run(MaxIoUAssigner(0.95, 0.3, 0.3, True, impl), gts, np.ones(2, bool), boxes, np.ones(2, bool))
    np.testing.assert_array_equal(assigned, [2, 0])


@pytest.mark.parametrize("low_quality", [True, False])
def test_random_boxes_match_numpy(low_quality, impl):
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 50, (60, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 30, (60, 2))], 1).astype(np.float32)
    gts = boxes[[3, 10, 25, 40]] + rng.uniform(-4, 4, (4, 4)).astype(np.float32)
    gts[:, 2:] = np.maximum(gts[:, 2:], gts[:, :2] + 1)
    gt_valids = np.array([True, True, False, True])
    box_valids = rng.uniform(size=60) > 0.2
    assigned, _ = run(MaxIoUAssigner(0.5, 0.4, 0.3, low_quality, impl), gts, gt_valids, boxes, box_valids)
    expected = numpy_assign(gts.astype(np.float64), gt_valids, boxes.astype(np.float64), box_valids, 0.5, 0.4, 0.3,
                            low_quality)
    np.testing.assert_array_equal(assigned, expected)


@pytest.mark.parametrize("low_quality", [True, False])
def test_kernel_equals_the_elementwise_ops_bit_for_bit(low_quality):
    """A batch of 3 images x 6 gt slots against 400 shared anchors (broadcast), with exact IoU ties between gts and
    between boxes, zero-area boxes, padding gts and invalid boxes: the same assignment and the same float32 overlaps."""
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 64, (400, 2))
    anchors = np.concatenate([xy, xy + rng.uniform(0, 24, (400, 2))], 1).astype(np.float32)
    anchors[7, 2:] = anchors[7, :2]
    gts = np.concatenate([anchors[rng.choice(400, (3, 6))][..., :2] + rng.uniform(-3, 3, (3, 6, 2)),
                          anchors[rng.choice(400, (3, 6))][..., :2] + rng.uniform(4, 30, (3, 6, 2))], 2)
    gts = gts.astype(np.float32)
    gts[0, 1] = gts[0, 0]
    gts[1, 2] = anchors[11]
    anchors[12] = anchors[11]
    gt_valids = rng.uniform(size=(3, 6)) > 0.25
    gt_valids[2] = False
    box_valids = rng.uniform(size=(3, 400)) > 0.1
    args = (gts, gt_valids, anchors, box_valids)
    custom = run(MaxIoUAssigner(0.6, 0.3, 0.2, low_quality, "custom"), *args)
    builtin = run(MaxIoUAssigner(0.6, 0.3, 0.2, low_quality, "builtin"), *args)
    assert custom[0].shape == (3, 400) and custom[0].dtype == np.int32 and custom[1].dtype == np.float32
    np.testing.assert_array_equal(custom[0], builtin[0])
    np.testing.assert_array_equal(custom[1], builtin[1])
    assert (custom[0] > 0).any() and (custom[0] == 0).any() and (custom[0] == -1).any()
    np.testing.assert_array_equal(custom[0][2], np.where(box_valids[2], 0, -1))


def test_custom_is_refused_without_its_library(monkeypatch, tmp_path):
    from src.blocks.assigners_samplers import max_iou_assigner

    monkeypatch.setattr(max_iou_assigner, "LIBRARY", tmp_path / "missing.so")
    with pytest.raises(RuntimeError, match="build_custom.sh"):
        MaxIoUAssigner(0.7, 0.3, 0.3, True, "custom")
    assert MaxIoUAssigner(0.7, 0.3, 0.3, True, "auto").impl == "builtin"
    with pytest.raises(ValueError, match="expected one of"):
        MaxIoUAssigner(0.7, 0.3, 0.3, True, "fast")

"""MaskAssignerSampler: sampled RoIs, labels, box targets, and mask / area-ratio targets of a known mask pair.

Mask crop by hand (aligned RoIAlign, 2x2 samples per bin): when an RoI is 28 mask pixels wide, bin j averages
bilinear samples at x1 - 0.5 + j + {0.25, 0.75}, i.e. 0.125 * m[x1+j-1] + 0.75 * m[x1+j] + 0.125 * m[x1+j+1]
along each axis. A 0/1 rectangle therefore gives 0.875 on its border bins, 0.125 just outside and 1 or 0
elsewhere: the binarised target is the rectangle itself and the crop sum is the product of the two axis sums.
"""
import numpy as np
import pytest
import mindspore as ms
from mindspore import Tensor

from src.blocks.assigners_samplers import MaskAssignerSampler

NUM_PROPOSALS = 64
NUM_GTS = 16


@pytest.fixture(autouse=True, params=[ms.PYNATIVE_MODE, ms.GRAPH_MODE], ids=["pynative", "graph"])
def mode(request):
    ms.set_context(mode=request.param, device_target="CPU")


def encode(box, gt, stds=(0.1, 0.1, 0.2, 0.2)):
    bw, bh = box[2] - box[0], box[3] - box[1]
    gw, gh = gt[2] - gt[0], gt[3] - gt[1]
    deltas = [((gt[0] + gw / 2) - (box[0] + bw / 2)) / bw, ((gt[1] + gh / 2) - (box[1] + bh / 2)) / bh,
              np.log(gw / bw), np.log(gh / bh)]
    return np.array(deltas) / np.array(stds)


def empty_targets(mask_size: int) -> tuple:
    """All-padding inputs: gt_bboxes, gt_labels, gt_valids, gt_masks [NUM_GTS, mask_size, mask_size], proposals and
    proposal_valids, to be filled in by each test."""
    return (np.zeros((NUM_GTS, 4), np.float32), np.zeros(NUM_GTS, np.int32), np.zeros(NUM_GTS, bool),
            np.zeros((NUM_GTS, mask_size, mask_size), np.uint8), np.zeros((NUM_PROPOSALS, 4), np.float32),
            np.zeros(NUM_PROPOSALS, bool))


def test_targets_of_known_masks(tiny_cfg):
    sampler = MaskAssignerSampler(tiny_cfg, seed=0, seed2=3)
    gt_bboxes, gt_labels, gt_valids, gt_masks, proposals, proposal_valids = empty_targets(64)
    gt_bboxes[0], gt_labels[0], gt_valids[0] = [100, 100, 120, 120], 1, True
    gt_masks[0, 50:60, 50:60] = 1
    gt_bboxes[1], gt_labels[1], gt_valids[1] = [16, 20, 72, 68], 3, True
    gt_masks[1, 10:34, 8:36] = 1                     # 24 rows x 28 columns = 672 mask pixels
    proposals[0] = [16, 20, 72, 76]                  # mask px [8, 10, 36, 38], IoU 0.857 with gt 1
    proposals[1] = [16, 32, 72, 88]                  # mask px [8, 16, 36, 44], IoU 0.529 with gt 1
    proposals[2:5] = [[0, 100, 10, 110], [80, 0, 90, 10], [0, 0, 8, 8]]   # negatives
    proposal_valids[:5] = True
    inputs = (proposals, proposal_valids, gt_bboxes, gt_labels, gt_valids, gt_masks)
    priorities = sampler.draw(2, NUM_PROPOSALS, NUM_GTS)
    outputs = sampler(*(Tensor(a[None]) for a in inputs), priorities[1:])
    (rois, labels, label_weights, bbox_targets, bbox_weights, pos_rois, pos_labels, pos_valids, mask_targets,
     area_ratios) = (o.asnumpy()[0] for o in outputs)
    # the same image second in a batch (after one without objects) gets the same targets
    batched = sampler(*(Tensor(np.stack([np.zeros_like(a), a])) for a in inputs), priorities)
    for alone, in_batch in zip(outputs, batched):
        np.testing.assert_array_equal(alone.asnumpy()[0], in_batch.asnumpy()[1])
    assert not batched[7].asnumpy()[0].any()

    num, num_masks = tiny_cfg.train_cfg.rcnn.sampler.num, tiny_cfg.mask_roi.sample_num
    assert rois.shape == (num, 4) and mask_targets.shape == (num_masks, 28, 28)
    # positives first in candidate order (proposals, then the gt boxes), then the 3 negatives
    np.testing.assert_array_equal(rois[:4], [proposals[0], proposals[1], gt_bboxes[0], gt_bboxes[1]])
    np.testing.assert_array_equal(sorted(map(tuple, rois[4:7])), sorted(map(tuple, proposals[2:5])))
    np.testing.assert_array_equal(labels[:7], [3, 3, 1, 3, 0, 0, 0])
    np.testing.assert_array_equal(label_weights, [1] * 7 + [0] * (num - 7))
    np.testing.assert_array_equal(bbox_weights, [1] * 4 + [0] * (num - 4))
    for row, gt in zip(range(4), (1, 1, 0, 1)):
        np.testing.assert_allclose(bbox_targets[row], encode(rois[row], gt_bboxes[gt]), atol=1e-4)
    np.testing.assert_array_equal(bbox_targets[4:], 0)
    np.testing.assert_array_equal(pos_rois[:4], rois[:4])
    np.testing.assert_array_equal(pos_labels[:4], [3, 3, 1, 3])
    np.testing.assert_array_equal(pos_valids, [True] * 4 + [False] * (num_masks - 4))

    expected_first = np.zeros((28, 28))
    expected_first[0:24, 0:28] = 1
    np.testing.assert_array_equal(mask_targets[0], expected_first)
    expected_second = np.zeros((28, 28))
    expected_second[0:18, 0:28] = 1
    np.testing.assert_array_equal(mask_targets[1], expected_second)
    # gt 0's own box crops gt 0's mask (gt 1's mask is empty there); only the corner bins, whose samples fall
    # half outside the square, drop below 0.5
    np.testing.assert_array_equal(mask_targets[2][1:-1], 1)
    np.testing.assert_array_equal(mask_targets[2][:, 1:-1], 1)
    np.testing.assert_array_equal(mask_targets[4:], 0)
    column_sum = 0.875 + 26 + 0.875
    np.testing.assert_allclose(area_ratios[0], column_sum * (0.875 + 22 + 0.875 + 0.125) / 672, rtol=1e-4)
    np.testing.assert_allclose(area_ratios[1], column_sum * (17 + 0.875 + 0.125) / 672, rtol=1e-4)
    np.testing.assert_allclose(area_ratios[4:], 1.0)


def test_no_valid_gt_gives_no_positive(tiny_cfg):
    sampler = MaskAssignerSampler(tiny_cfg, seed=0, seed2=3)
    proposals = np.tile(np.array([[10, 10, 50, 50]], np.float32), (NUM_PROPOSALS, 1))
    outputs = sampler(Tensor(proposals[None]), Tensor(np.ones((1, NUM_PROPOSALS), bool)),
                      Tensor(np.zeros((1, NUM_GTS, 4), np.float32)), Tensor(np.zeros((1, NUM_GTS), np.int32)),
                      Tensor(np.zeros((1, NUM_GTS), bool)), Tensor(np.zeros((1, NUM_GTS, 64, 64), np.uint8)),
                      sampler.draw(1, NUM_PROPOSALS, NUM_GTS))
    labels, label_weights, bbox_targets, bbox_weights = (o.asnumpy()[0] for o in outputs[1:5])
    assert labels.sum() == 0 and bbox_weights.sum() == 0 and np.all(np.isfinite(bbox_targets))
    assert label_weights.sum() == tiny_cfg.train_cfg.rcnn.sampler.num
    assert not outputs[7].asnumpy().any() and np.all(outputs[9].asnumpy() == 1.0)


def test_full_resolution_mask_targets(tiny_cfg):
    """mask_divider 1: a 56 x 56 px RoI has 2 x 2 px bins whose 2 x 2 aligned samples fall on pixel centres, so
    each bin is the exact mean of its block. gt mask rows 20..67, cols 16..71 (48 x 56 = 2688 px)."""
    values = tiny_cfg.to_dict()
    values["mask_divider"] = 1
    sampler = MaskAssignerSampler(type(tiny_cfg).from_dict(values), seed=0, seed2=3)
    gt_bboxes, gt_labels, gt_valids, gt_masks, proposals, proposal_valids = empty_targets(128)
    gt_bboxes[0], gt_labels[0], gt_valids[0] = [16, 20, 72, 68], 2, True
    gt_masks[0, 20:68, 16:72] = 1
    proposals[0] = [16, 20, 72, 76]                  # rows 20..75: the mask fills its first 48 rows = 24 bins
    proposals[1] = [16, 32, 72, 88]                  # rows 32..87: 36 mask rows = 18 bins, 36 x 56 = 2016 px
    proposal_valids[:2] = True
    outputs = sampler(*(Tensor(a[None]) for a in (proposals, proposal_valids, gt_bboxes, gt_labels, gt_valids,
                                                  gt_masks)), sampler.draw(1, NUM_PROPOSALS, NUM_GTS))
    pos_rois, mask_targets, area_ratios = (outputs[i].asnumpy()[0] for i in (5, 8, 9))
    np.testing.assert_array_equal(pos_rois[:2], proposals[:2])
    expected_first = np.zeros((28, 28))
    expected_first[:24] = 1
    expected_second = np.zeros((28, 28))
    expected_second[:18] = 1
    np.testing.assert_array_equal(mask_targets[0], expected_first)
    np.testing.assert_array_equal(mask_targets[1], expected_second)
    np.testing.assert_allclose(area_ratios[:2], [1.0, 2016 / 2688], rtol=1e-5)

"""DeltaXYWHBBoxCoder: hand-computed deltas, round trip, clamping, clipping (GRAPH and PYNATIVE)."""
import math

import numpy as np
import pytest
import mindspore as ms
from mindspore import Tensor, nn

from src.blocks.bbox_coders import DEFAULT_MAX_RATIO, DeltaXYWHBBoxCoder

STDS = (0.1, 0.1, 0.2, 0.2)


class EncodeDecode(nn.Cell):
    """Runs encode then decode inside construct, so that GRAPH mode compiles both."""

    def __init__(self, coder):
        super().__init__()
        self.coder = coder

    def construct(self, boxes, gt_boxes, max_shape):
        deltas = self.coder.encode(boxes, gt_boxes)
        return deltas, self.coder.decode(boxes, deltas, max_shape)


@pytest.fixture(params=[ms.GRAPH_MODE, ms.PYNATIVE_MODE], ids=["graph", "pynative"])
def mode(request):
    ms.set_context(mode=request.param, device_target="CPU")
    return request.param


def test_encode_matches_hand_computed_deltas(mode):
    # box: centre (20, 40), size 20 x 40; gt: centre (35, 50), size 40 x 80
    # dx = 15 / 20 = 0.75, dy = 10 / 40 = 0.25, dw = dh = log(2); divided by stds (0.1, 0.1, 0.2, 0.2)
    coder = DeltaXYWHBBoxCoder((0.0, 0.0, 0.0, 0.0), STDS)
    boxes = Tensor(np.array([[10, 20, 30, 60]], np.float32))
    gt_boxes = Tensor(np.array([[15, 10, 55, 90]], np.float32))
    deltas, decoded = EncodeDecode(coder)(boxes, gt_boxes, Tensor(np.array([1000.0, 1000.0], np.float32)))
    expected = np.array([[7.5, 2.5, math.log(2) / 0.2, math.log(2) / 0.2]], np.float32)
    np.testing.assert_allclose(deltas.asnumpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(decoded.asnumpy(), [[15, 10, 55, 90]], atol=1e-4)


def test_means_are_subtracted():
    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    coder = DeltaXYWHBBoxCoder((0.5, -0.25, 0.0, 1.0), (1.0, 1.0, 1.0, 1.0))
    deltas = coder.encode(Tensor(np.array([[0, 0, 10, 10]], np.float32)),
                          Tensor(np.array([[5, 0, 15, 10]], np.float32)))
    # raw deltas (0.5, 0, 0, 0) minus the means
    np.testing.assert_allclose(deltas.asnumpy(), [[0.0, 0.25, 0.0, -1.0]], atol=1e-6)


def test_round_trip_on_random_boxes(mode):
    rng = np.random.default_rng(0)
    corners = rng.uniform(0, 400, (2, 64, 2)).astype(np.float32)
    sizes = rng.uniform(8, 300, (2, 64, 2))  # size ratios < 62.5: no clamping.astype(np.float32)
    boxes = np.concatenate((corners[0], corners[0] + sizes[0]), axis=1)
    gt_boxes = np.concatenate((corners[1], corners[1] + sizes[1]), axis=1)
    coder = DeltaXYWHBBoxCoder((0.0, 0.0, 0.0, 0.0), STDS)
    _, decoded = EncodeDecode(coder)(Tensor(boxes), Tensor(gt_boxes), Tensor(np.array([1e4, 1e4], np.float32)))
    np.testing.assert_allclose(decoded.asnumpy(), gt_boxes, rtol=1e-4, atol=1e-2)


def test_decode_clamps_log_size_deltas():
    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    coder = DeltaXYWHBBoxCoder()
    assert DEFAULT_MAX_RATIO == pytest.approx(math.log(1000 / 16))
    # box centre (5, 5), size 10: dw = +10 clamps to log(62.5) -> width 625, dh = -10 clamps -> height 0.16
    decoded = coder.decode(Tensor(np.array([[0, 0, 10, 10]], np.float32)),
                           Tensor(np.array([[0, 0, 10, -10]], np.float32)))
    np.testing.assert_allclose(decoded.asnumpy(), [[5 - 312.5, 5 - 0.08, 5 + 312.5, 5 + 0.08]], rtol=1e-5)


def test_decode_clips_to_max_shape_pair_and_per_image_tensor():
    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    coder = DeltaXYWHBBoxCoder()
    boxes = np.array([[-5, -5, 250, 120], [10, 20, 30, 40]], np.float32)
    zeros = np.zeros_like(boxes)
    decoded = coder.decode(Tensor(boxes), Tensor(zeros), max_shape=(100, 200))
    np.testing.assert_allclose(decoded.asnumpy(), [[0, 0, 200, 100], [10, 20, 30, 40]])
    # batch of two images, (h, w) = (100, 200) and (30, 25)
    batch_boxes = np.stack((boxes, boxes))
    max_shapes = Tensor(np.array([[100, 200], [30, 25]], np.float32))
    decoded = coder.decode(Tensor(batch_boxes), Tensor(np.zeros_like(batch_boxes)), max_shape=max_shapes)
    np.testing.assert_allclose(decoded.asnumpy()[1], [[0, 0, 25, 30], [10, 20, 25, 30]])
    np.testing.assert_allclose(decoded.asnumpy()[0], [[0, 0, 200, 100], [10, 20, 30, 40]])
    unclipped = DeltaXYWHBBoxCoder(clip_border=False).decode(Tensor(boxes), Tensor(zeros), max_shape=(100, 200))
    np.testing.assert_allclose(unclipped.asnumpy(), boxes)


def test_degenerate_boxes_encode_to_finite_deltas():
    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    deltas = DeltaXYWHBBoxCoder().encode(Tensor(np.zeros((2, 4), np.float32)), Tensor(np.zeros((2, 4), np.float32)))
    assert np.all(np.isfinite(deltas.asnumpy()))


def test_bad_stds_are_rejected():
    with pytest.raises(ValueError, match="target_stds"):
        DeltaXYWHBBoxCoder((0, 0, 0, 0), (0.1, 0.1, 0.2))

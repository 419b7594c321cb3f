"""SingleLayerRoIExtractor: level mapping boundaries, and pooling equal to RoIAlign on each RoI's own level."""
import numpy as np
import pytest
import mindspore as ms
from mindspore import Tensor

from src.blocks.roi_extractors import RoIAlign, SingleLayerRoIExtractor
from src.model_utils.config import Config

STRIDES = [4, 8, 16, 32]


def roi_cfg(finest_scale=56, sampling_ratio=2, impl="auto", scale_factor=1.0):
    return Config.from_dict({
        "roi_layer": {"type": "RoIAlign", "out_size": 3, "sampling_ratio": sampling_ratio, "aligned": False,
                      "impl": impl},
        "out_channels": 2, "featmap_strides": STRIDES, "finest_scale": finest_scale,
        "scale_factor": scale_factor, "sample_num": 8})


def square_rois(sides, aspect=1.0):
    sides = np.asarray(sides, np.float64)
    widths, heights = sides * np.sqrt(aspect), sides / np.sqrt(aspect)
    return np.stack((np.zeros_like(sides), np.full_like(sides, 3.0), np.full_like(sides, 5.0),
                     3.0 + widths, 5.0 + heights), axis=1).astype(np.float32)


def test_level_mapping_boundaries():
    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    extractor = SingleLayerRoIExtractor(roi_cfg())
    sides = [1.0, 55.9, 56.0, 111.9, 112.0, 223.9, 224.0, 447.9, 448.0, 5000.0]
    levels = extractor.map_roi_levels(Tensor(square_rois(sides))).asnumpy()
    assert levels.dtype == np.int32
    assert levels.tolist() == [0, 0, 0, 0, 1, 1, 2, 2, 3, 3]
    # scale is sqrt(w * h): a 448 x 112 box has scale 224 -> level 2
    assert extractor.map_roi_levels(Tensor(square_rois([224.0], aspect=4.0))).asnumpy().tolist() == [2]


@pytest.mark.parametrize("mode,sampling_ratio,impl",
                         [(ms.GRAPH_MODE, 2, "auto"), (ms.PYNATIVE_MODE, 2, "builtin"), (ms.GRAPH_MODE, 2, "builtin")])
def test_pooling_equals_single_level_roi_align(mode, sampling_ratio, impl):
    ms.set_context(mode=mode, device_target="CPU")
    rng = np.random.default_rng(7)
    image_size = 128
    features = tuple(Tensor(rng.normal(size=(2, 2, image_size // stride, image_size // stride)).astype(np.float32))
                     for stride in STRIDES + [64])
    # finest_scale 8: sides 10 -> level 0, 20 -> 1, 40 -> 2, 100 -> 3
    rois = np.array([[0, 5, 6, 15, 16], [1, 30, 40, 50, 60], [0, 60, 10, 100, 50], [1, 10, 12, 110, 112],
                     [1, 2, 3, 12, 13]], np.float32)
    expected_levels = [0, 1, 2, 3, 0]
    extractor = SingleLayerRoIExtractor(roi_cfg(finest_scale=8, sampling_ratio=sampling_ratio, impl=impl))
    pooled = extractor(features, Tensor(rois)).asnumpy()
    assert pooled.shape == (5, 2, 3, 3)
    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    assert extractor.map_roi_levels(Tensor(rois)).asnumpy().tolist() == expected_levels
    for index, level in enumerate(expected_levels):
        single = RoIAlign(3, 1.0 / STRIDES[level], sampling_ratio, False, impl)
        expected = single(features[level], Tensor(rois[index:index + 1])).asnumpy()
        np.testing.assert_allclose(pooled[index:index + 1], expected, rtol=1e-5, atol=2e-5)


def test_scale_factor_pools_the_enlarged_box_on_the_rois_own_level():
    ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")
    rng = np.random.default_rng(3)
    features = tuple(Tensor(rng.normal(size=(1, 2, 128 // stride, 128 // stride)).astype(np.float32))
                     for stride in STRIDES)
    # finest_scale 8: the 14 x 14 RoI maps to level 0 (scale 14 < 16) though its 1.5x box (21 x 21) would map to 1
    rois = np.array([[0, 20, 30, 34, 44], [0, 40, 50, 80, 60]], np.float32)
    enlarged = np.array([[0, 16.5, 26.5, 37.5, 47.5], [0, 30, 47.5, 90, 62.5]], np.float32)
    extractor = SingleLayerRoIExtractor(roi_cfg(finest_scale=8, scale_factor=1.5))
    pooled = extractor(features, Tensor(rois)).asnumpy()
    for index, level in enumerate([0, 1]):
        single = RoIAlign(3, 1.0 / STRIDES[level], 2, False, "auto")
        expected = single(features[level], Tensor(enlarged[index:index + 1])).asnumpy()
        np.testing.assert_allclose(pooled[index:index + 1], expected, rtol=1e-5, atol=2e-5)


def test_non_positive_scale_factor_rejected():
    with pytest.raises(ValueError, match="scale_factor"):
        SingleLayerRoIExtractor(roi_cfg(scale_factor=0.0))


def test_unknown_roi_layer_rejected():
    cfg = roi_cfg()
    cfg.roi_layer.type = "RoIPool"
    with pytest.raises(ValueError, match="roi_layer.type"):
        SingleLayerRoIExtractor(cfg)

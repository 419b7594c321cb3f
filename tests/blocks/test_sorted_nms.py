"""SortedNms: the own CPU kernel against MindSpore's NMSWithMask (the same keep masks, float32 decisions included) and
a NumPy greedy NMS, on groups of sorted boxes, in GRAPH and PYNATIVE modes."""
import numpy as np
import pytest
import mindspore as ms
from mindspore import Tensor

from src.blocks.nms import SortedNms


@pytest.fixture(autouse=True, params=[ms.PYNATIVE_MODE, ms.GRAPH_MODE], ids=["pynative", "graph"])
def mode(request):
    ms.set_context(mode=request.param, device_target="CPU")


def numpy_greedy_keep(boxes: np.ndarray, threshold: float) -> np.ndarray:
    """Greedy NMS of one group in float64: a box is kept unless an earlier kept box overlaps it by IoU > threshold."""
    boxes = boxes.astype(np.float64)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep = np.zeros(len(boxes), bool)
    for index, box in enumerate(boxes):
        kept = boxes[keep]
        inter = (np.clip(np.minimum(kept[:, 2], box[2]) - np.maximum(kept[:, 0], box[0]), 0, None)
                 * np.clip(np.minimum(kept[:, 3], box[3]) - np.maximum(kept[:, 1], box[1]), 0, None))
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = inter / (areas[keep] + areas[index] - inter)
        keep[index] = not np.any(iou > threshold)
    return keep


def random_groups(rng: np.random.Generator, groups: int, boxes: int, side: float) -> np.ndarray:
    corners = rng.random((groups, boxes, 2)) * 100.0
    sizes = rng.random((groups, boxes, 2)) * side
    return np.concatenate([corners, corners + sizes], axis=2).astype(np.float32)


@pytest.mark.parametrize("impl", ["custom", "builtin"])
def test_hand_made_group_at_the_threshold(impl):
    """IoUs exactly representable in float32: 0.5 (not > 0.5: kept), 2/3 (suppressed), 0 and a zero-area box."""
    boxes = np.array([[0, 0, 2, 1],      # kept: first
                      [0, 0, 1, 1],      # IoU 1/2 with box 0: kept at threshold 0.5
                      [0, 0, 2, 1.5],    # IoU 2/3 with box 0: suppressed
                      [0.5, 0, 1, 1],    # IoU 1/2 with box 1, 1/4 with box 0: kept
                      [5, 5, 6, 6],      # no overlap: kept
                      [5, 5, 5, 6],      # zero area, IoU 0: kept
                      [5, 5, 6, 6]],     # the same as box 4: suppressed
                     np.float32)
    keep = SortedNms(0.5, impl)(Tensor(boxes[None])).asnumpy()
    assert keep.dtype == np.bool_ and keep.shape == (1, 7)
    np.testing.assert_array_equal(keep[0], [True, True, False, True, True, True, False])


@pytest.mark.parametrize("threshold", [0.3, 0.7])
def test_the_kernel_keeps_what_nms_with_mask_keeps(threshold):
    """Groups of 600 random boxes (dense: many suppressed; sparse: most kept) and a batch of groups with a leading
    batch dimension: the kernel's keep mask equals NMSWithMask's and the float64 NumPy greedy NMS's."""
    rng = np.random.default_rng(int(threshold * 10))
    for side in (60.0, 8.0):
        boxes = random_groups(rng, 3, 600, side).reshape(3, 1, 600, 4)
        custom = SortedNms(threshold, "custom")(Tensor(boxes)).asnumpy()
        builtin = SortedNms(threshold, "builtin")(Tensor(boxes)).asnumpy()
        assert custom.shape == (3, 1, 600)
        np.testing.assert_array_equal(custom, builtin)
        for group in range(3):
            np.testing.assert_array_equal(custom[group, 0], numpy_greedy_keep(boxes[group, 0], threshold))
        assert 0 < custom.sum() < custom.size


def test_custom_is_refused_off_cpu_or_without_its_library(monkeypatch, tmp_path):
    from src.blocks.nms import sorted_nms

    monkeypatch.setattr(sorted_nms, "LIBRARY", tmp_path / "missing.so")
    with pytest.raises(RuntimeError, match="build_custom.sh"):
        SortedNms(0.5, "custom")
    assert sorted_nms.resolve_impl("auto") == "builtin"
    with pytest.raises(ValueError, match="expected one of"):
        sorted_nms.resolve_impl("fast")

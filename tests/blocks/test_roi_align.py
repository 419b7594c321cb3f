"""RoIAlign (custom kernels and the built-in workaround) against an independent NumPy re-derivation."""
import importlib
import logging
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest
import mindspore as ms
from mindspore import Tensor, ops

from src.blocks import kernel_choice
from src.blocks.roi_extractors.roi_align import MultiLevelRoIAlign, RoIAlign, roi_align

# The package exports the function roi_align, which shadows the module's attribute name.
roi_align_module = importlib.import_module("src.blocks.roi_extractors.roi_align")

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session", autouse=True)
def built_kernels():
    """Builds the custom kernels with the project script when the CPU library is missing."""
    if not (roi_align_module.LIBRARY_DIR / roi_align_module.LIBRARY_NAMES["CPU"]).is_file():
        subprocess.run(["bash", str(REPO_ROOT / "scripts" / "build_custom.sh")], check=True)


# ---------------------------------------------------------------- NumPy reference (float64)
def bilinear_taps(height, width, y, x):
    """(row, col, weight) of one bilinear sample; empty beyond one pixel outside the map, border value inside it."""
    if y < -1.0 or y > height or x < -1.0 or x > width:
        return []
    y, x = max(y, 0.0), max(x, 0.0)
    y0, x0 = int(y), int(x)
    if y0 >= height - 1:
        y0 = y1 = height - 1
        y = float(y0)
    else:
        y1 = y0 + 1
    if x0 >= width - 1:
        x0 = x1 = width - 1
        x = float(x0)
    else:
        x1 = x0 + 1
    wy, wx = y - y0, x - x0
    return [(y0, x0, (1 - wy) * (1 - wx)), (y0, x1, (1 - wy) * wx), (y1, x0, wy * (1 - wx)), (y1, x1, wy * wx)]


def roi_weight_matrix(roi, scale, out, sampling_ratio, aligned, height, width):
    """[out, out, H, W] matrix M with output[ph, pw] = sum M[ph, pw] * feature."""
    offset = 0.5 if aligned else 0.0
    x1, y1, x2, y2 = (float(v) * scale - offset for v in roi[1:])
    roi_w, roi_h = x2 - x1, y2 - y1
    if not aligned:
        roi_w, roi_h = max(roi_w, 1.0), max(roi_h, 1.0)
    bin_w, bin_h = roi_w / out, roi_h / out
    grid_h = sampling_ratio if sampling_ratio > 0 else max(math.ceil(roi_h / out), 0)
    grid_w = sampling_ratio if sampling_ratio > 0 else max(math.ceil(roi_w / out), 0)
    count = max(grid_h * grid_w, 1)
    matrix = np.zeros((out, out, height, width))
    for ph in range(out):
        for pw in range(out):
            for iy in range(grid_h):
                y = y1 + ph * bin_h + (iy + 0.5) * bin_h / grid_h
                for ix in range(grid_w):
                    x = x1 + pw * bin_w + (ix + 0.5) * bin_w / grid_w
                    for row, col, weight in bilinear_taps(height, width, y, x):
                        matrix[ph, pw, row, col] += weight / count
    return matrix


def reference_forward(features, rois, out, scale, sampling_ratio, aligned):
    _, channels, height, width = features.shape
    result = np.zeros((len(rois), channels, out, out))
    for k, roi in enumerate(rois):
        matrix = roi_weight_matrix(roi, scale, out, sampling_ratio, aligned, height, width)
        result[k] = np.einsum("pqyx,cyx->cpq", matrix, features[int(roi[0])].astype(np.float64))
    return result


def reference_backward(shape, rois, grad_out, out, scale, sampling_ratio, aligned):
    grad = np.zeros(shape)
    for k, roi in enumerate(rois):
        matrix = roi_weight_matrix(roi, scale, out, sampling_ratio, aligned, shape[2], shape[3])
        grad[int(roi[0])] += np.einsum("pqyx,cpq->cyx", matrix, grad_out[k].astype(np.float64))
    return grad


# ---------------------------------------------------------------- data
IMAGE_H, IMAGE_W = 64, 80  # input pixels; a stride-4 map is 16 x 20


def features_and_grad_out(num_rois, out, seed=0, shape=(2, 3, 16, 20)):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape).astype(np.float32),
            rng.standard_normal((num_rois, shape[1], out, out)).astype(np.float32))


def in_image_rois(seed=1, count=6):
    """Random boxes inside the image plus boxes touching its borders."""
    rng = np.random.default_rng(seed)
    x1 = rng.uniform(0, IMAGE_W - 8, count)
    y1 = rng.uniform(0, IMAGE_H - 8, count)
    x2 = np.minimum(x1 + rng.uniform(4, 60, count), IMAGE_W)
    y2 = np.minimum(y1 + rng.uniform(4, 50, count), IMAGE_H)
    random_boxes = np.stack([rng.integers(0, 2, count), x1, y1, x2, y2], axis=1)
    border_boxes = np.array([[1, 0, 0, IMAGE_W, IMAGE_H], [0, 0, 20, 30, IMAGE_H], [1, 50, 0, IMAGE_W, 40]])
    return np.concatenate([random_boxes, border_boxes]).astype(np.float32)


def all_rois():
    """In-image boxes, boxes partly outside the map, a far-outside box, empty and tiny boxes."""
    special = np.array([
        [0, -20.0, -10.0, 30.0, 25.0],      # partly outside top-left
        [1, 60.0, 50.0, 110.0, 90.0],       # partly outside bottom-right
        [0, 200.0, 200.0, 260.0, 240.0],    # entirely outside
        [1, 33.0, 21.0, 33.0, 21.0],        # empty box
        [0, 10.0, 40.0, 10.5, 41.0],        # smaller than one feature pixel
        [1, 78.0, 60.0, 80.0, 64.0],        # tiny box at the bottom-right corner
    ], np.float32)
    return np.concatenate([in_image_rois(), special])


def run_forward_and_grad(cell, features, rois, grad_out, mode):
    """Forward output and d(sum(output * grad_out))/d(features) in the given mode; GRAPH uses jit(value_and_grad)."""
    ms.set_context(mode=mode, device_target="CPU")
    rois_tensor, weights = Tensor(rois), Tensor(grad_out)

    def weighted_sum(feature_tensor):
        return (cell(feature_tensor, rois_tensor) * weights).sum()

    grad_fn = ms.value_and_grad(weighted_sum)
    if mode == ms.GRAPH_MODE:
        grad_fn = ms.jit(grad_fn)
    _, grad = grad_fn(Tensor(features))
    return cell(Tensor(features), rois_tensor).asnumpy(), grad.asnumpy()


# ---------------------------------------------------------------- custom kernels
@pytest.mark.parametrize("mode", [ms.PYNATIVE_MODE, ms.GRAPH_MODE])
@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [0, 2])
def test_custom_matches_reference(mode, aligned, sampling_ratio):
    rois = all_rois()
    features, grad_out = features_and_grad_out(len(rois), 5)
    cell = RoIAlign(5, 0.25, sampling_ratio, aligned, impl="custom")
    output, grad = run_forward_and_grad(cell, features, rois, grad_out, mode)
    expected = reference_forward(features, rois, 5, 0.25, sampling_ratio, aligned)
    expected_grad = reference_backward(features.shape, rois, grad_out, 5, 0.25, sampling_ratio, aligned)
    np.testing.assert_allclose(output, expected, atol=2e-5)
    np.testing.assert_allclose(grad, expected_grad, atol=5e-5)
    assert np.abs(expected[len(rois) - 4]).max() == 0.0  # the far-outside box samples nothing


def assert_gradient_matches_finite_differences(cell, features, rois, grad_out, direction_seed):
    """The gradient of sum(cell(features, rois) * grad_out) along a random direction equals a central difference.

    RoIAlign is linear in the features, so a central difference with a large step is exact up to rounding.
    """
    direction = np.random.default_rng(direction_seed).standard_normal(features.shape).astype(np.float32)

    def weighted_sum(feature_array):
        return float((cell(Tensor(feature_array), Tensor(rois)).asnumpy().astype(np.float64) * grad_out).sum())

    step = 0.5
    finite_difference = (weighted_sum(features + step * direction) - weighted_sum(features - step * direction)) / (
        2 * step)
    grad = ms.grad(lambda x: (cell(x, Tensor(rois)) * Tensor(grad_out)).sum())(Tensor(features)).asnumpy()
    assert abs(float((grad.astype(np.float64) * direction).sum()) - finite_difference) < 1e-3 * max(
        1.0, abs(finite_difference))


def test_custom_gradient_matches_finite_differences():
    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    rois = all_rois()
    features, grad_out = features_and_grad_out(len(rois), 4, seed=3)
    cell = RoIAlign(4, 0.25, 0, False, impl="custom")
    assert_gradient_matches_finite_differences(cell, features, rois, grad_out, direction_seed=4)


@pytest.mark.parametrize("mode", [ms.PYNATIVE_MODE, ms.GRAPH_MODE])
def test_scalar_parameters_reach_the_kernel(mode):
    """Different spatial scales / sampling ratios / conventions give the reference's distinct values."""
    ms.set_context(mode=mode, device_target="CPU")
    rois = in_image_rois()
    features, _ = features_and_grad_out(len(rois), 3, shape=(2, 3, 32, 40))
    outputs = []
    for scale, sampling_ratio, aligned in [(0.25, 0, False), (0.5, 0, False), (0.5, 3, True)]:
        output = RoIAlign(3, scale, sampling_ratio, aligned, impl="custom")(Tensor(features), Tensor(rois)).asnumpy()
        np.testing.assert_allclose(output, reference_forward(features, rois, 3, scale, sampling_ratio, aligned),
                                   atol=2e-5)
        outputs.append(output)
    assert np.abs(outputs[0] - outputs[1]).max() > 0.1
    assert np.abs(outputs[1] - outputs[2]).max() > 0.1


def test_functional_roi_align():
    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    rois = in_image_rois()
    features, _ = features_and_grad_out(len(rois), 2)
    output = roi_align(Tensor(features), Tensor(rois), 2, 0.25, 0, True, impl="custom").asnumpy()
    np.testing.assert_allclose(output, reference_forward(features, rois, 2, 0.25, 0, True), atol=2e-5)


# ---------------------------------------------------------------- built-in op through the workaround
@pytest.mark.parametrize("mode", [ms.PYNATIVE_MODE, ms.GRAPH_MODE])
@pytest.mark.parametrize("aligned", [False, True])
def test_builtin_matches_reference(mode, aligned):
    rois = in_image_rois()
    features, grad_out = features_and_grad_out(len(rois), 4)
    cell = RoIAlign(4, 0.25, 2, aligned, impl="builtin")
    output, grad = run_forward_and_grad(cell, features, rois, grad_out, mode)
    np.testing.assert_allclose(output, reference_forward(features, rois, 4, 0.25, 2, aligned), atol=2e-5)
    np.testing.assert_allclose(grad, reference_backward(features.shape, rois, grad_out, 4, 0.25, 2, aligned),
                               atol=5e-5)


@pytest.mark.parametrize("aligned", [False, True])
def test_builtin_gradient_matches_finite_differences(aligned):
    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    rois = in_image_rois()
    features, grad_out = features_and_grad_out(len(rois), 4, seed=5)
    cell = RoIAlign(4, 0.25, 2, aligned, impl="builtin")
    assert_gradient_matches_finite_differences(cell, features, rois, grad_out, direction_seed=6)


def test_builtin_rejects_adaptive_sampling():
    with pytest.raises(ValueError, match="sampling_ratio=0"):
        RoIAlign(7, 0.25, 0, False, impl="builtin")


# ---------------------------------------------------------------- multi-level
STRIDES = (4, 8, 16)


def pyramid(seed=7, channels=3):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((2, channels, IMAGE_H // s, IMAGE_W // s)).astype(np.float32) for s in STRIDES]


@pytest.mark.parametrize("mode", [ms.PYNATIVE_MODE, ms.GRAPH_MODE])
@pytest.mark.parametrize("impl,sampling_ratio,aligned", [("custom", 0, False), ("custom", 2, True),
                                                         ("builtin", 2, False), ("builtin", 2, True)])
def test_multi_level_matches_single_level_calls(mode, impl, sampling_ratio, aligned):
    ms.set_context(mode=mode, device_target="CPU")
    levels = pyramid()
    rois = in_image_rois(seed=8, count=9)
    roi_levels = (np.arange(len(rois)) % len(STRIDES)).astype(np.int32)
    grad_out = np.random.default_rng(9).standard_normal((len(rois), 3, 3, 3)).astype(np.float32)
    cell = MultiLevelRoIAlign(3, STRIDES, sampling_ratio, aligned, impl=impl)
    feature_tensors = tuple(Tensor(level) for level in levels)

    def weighted_sum(*features):
        return (cell(features, Tensor(rois), Tensor(roi_levels)) * Tensor(grad_out)).sum()

    grad_fn = ms.value_and_grad(weighted_sum, grad_position=(0, 1, 2))
    if mode == ms.GRAPH_MODE:
        grad_fn = ms.jit(grad_fn)
    _, grads = grad_fn(*feature_tensors)
    output = cell(feature_tensors, Tensor(rois), Tensor(roi_levels)).asnumpy()
    for level, stride in enumerate(STRIDES):
        selected = roi_levels == level
        single = RoIAlign(3, 1.0 / stride, sampling_ratio, aligned, impl=impl)
        np.testing.assert_allclose(output[selected],
                                   single(Tensor(levels[level]), Tensor(rois[selected])).asnumpy(), atol=1e-5)
        np.testing.assert_allclose(output[selected], reference_forward(
            levels[level], rois[selected], 3, 1.0 / stride, sampling_ratio, aligned), atol=2e-5)
        np.testing.assert_allclose(grads[level].asnumpy(), reference_backward(
            levels[level].shape, rois[selected], grad_out[selected], 3, 1.0 / stride, sampling_ratio, aligned),
                                   atol=5e-5)


def test_multi_level_skips_invalid_levels():
    """A RoI with a level outside [0, L) yields zeros and no gradient (custom kernels)."""
    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    levels = pyramid()
    rois = in_image_rois(count=2)[:2]
    output = MultiLevelRoIAlign(2, STRIDES, 0, False, impl="custom")(
        tuple(Tensor(level) for level in levels), Tensor(rois), Tensor(np.array([0, 5], np.int32))).asnumpy()
    assert np.abs(output[1]).max() == 0.0
    np.testing.assert_allclose(output[0], reference_forward(levels[0], rois[:1], 2, 0.25, 0, False)[0], atol=2e-5)


# ---------------------------------------------------------------- implementation selection
def test_custom_without_library_names_the_build_script(monkeypatch, tmp_path):
    monkeypatch.setattr(roi_align_module, "LIBRARY_DIR", tmp_path)
    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    with pytest.raises(RuntimeError, match="scripts/build_custom.sh"):
        RoIAlign(7, 0.25, 2, False, impl="custom")


def test_auto_picks_builtin_without_library_and_logs_once(monkeypatch, tmp_path, caplog):
    monkeypatch.setattr(roi_align_module, "LIBRARY_DIR", tmp_path)
    monkeypatch.setattr(kernel_choice, "_AUTO_CHOICES_LOGGED", {})
    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    with caplog.at_level(logging.INFO, logger=kernel_choice.__name__):
        first = RoIAlign(7, 0.25, 2, False, impl="auto")
        RoIAlign(7, 0.25, 2, False, impl="auto")
    assert type(first.impl_cell).__name__ == "_BuiltinAtlasRoIAlign"
    messages = [record.getMessage() for record in caplog.records]
    assert sum(f"RoIAlign impl 'auto': {tmp_path / 'libroi_align_cpu.so'} not found, using MindSpore's ops" in message
               for message in messages) == 1


def test_auto_picks_custom_when_built():
    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    assert type(RoIAlign(7, 0.25, 0, False, impl="auto").impl_cell).__name__ == "_CustomRoIAlign"


def test_unknown_impl_is_rejected():
    with pytest.raises(ValueError, match="impl"):
        RoIAlign(7, 0.25, 0, False, impl="fast")


def test_raw_builtin_mode_0_backward_still_differs():
    """The defect worked around in _BuiltinAtlasRoIAlign (docs/roi_align.md): when this test
    fails, MindSpore's roi_end_mode=0 backward has been fixed and the workaround can be revisited."""
    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    features, grad_out = features_and_grad_out(1, 7, seed=0, shape=(1, 1, 32, 40))
    rois = np.array([[0, 56.7, 31.0, 110.9, 99.3]], np.float32)
    builtin = ops.ROIAlign(7, 7, 0.25, 2, 0)
    np.testing.assert_allclose(builtin(Tensor(features), Tensor(rois)).asnumpy(),
                               reference_forward(features, rois, 7, 0.25, 2, False), atol=2e-5)
    grad = ms.grad(lambda x: (builtin(x, Tensor(rois)) * Tensor(grad_out)).sum())(Tensor(features)).asnumpy()
    expected = reference_backward(features.shape, rois, grad_out, 7, 0.25, 2, False)
    assert np.abs(grad - expected).max() > 1e-2

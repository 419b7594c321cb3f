"""RoIAlign for MindSpore: own C++/CUDA kernels ("custom") or MindSpore's ``ops.ROIAlign`` ("builtin").

Conventions (both implementations, same as torchvision ``roi_align``):
- ``rois [K, 5]`` float32 rows ``[batch_index, x1, y1, x2, y2]`` in input-image pixels; ``spatial_scale`` maps them
  onto the feature map (1 / stride).
- ``aligned=False`` (legacy): box on the map is ``[x1 * s, x2 * s]``, its size is ``max((x2 - x1) * s, 1)``.
- ``aligned=True``: both ends are shifted by half a feature pixel, ``x * s - 0.5``; no minimum size.
- Each of the ``out x out`` bins averages ``g_h x g_w`` bilinear samples placed at the bin's sub-cell centres;
  ``g = sampling_ratio`` or, when ``sampling_ratio == 0``, ``ceil(roi_size / out)`` per RoI (adaptive).
- A sample farther than one pixel outside the map contributes zero; within that pixel it reads the border value.

Implementation choice: ``impl="custom"`` runs the kernels compiled by ``bash scripts/build_custom.sh`` (CPU .so when
``device_target`` is CPU, CUDA .so when GPU); ``"builtin"`` uses ``ops.ROIAlign``; ``"auto"`` picks custom when its
library file exists, builtin otherwise, and logs the choice once.
"""
import os
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import mindspore as ms
from mindspore import Tensor, nn, ops

from src.blocks.kernel_choice import resolve_kernel_impl

LIBRARY_DIR = Path(__file__).resolve().parent / "lib"
LIBRARY_NAMES = {"CPU": "libroi_align_cpu.so", "GPU": "libroi_align_cuda.so"}


def custom_library_path(device_target: Optional[str] = None) -> Path:
    """Path of the compiled kernel library for ``device_target`` (default: the current MindSpore context)."""
    target = device_target or ms.get_context("device_target")
    if target not in LIBRARY_NAMES:
        raise ValueError(f"roi_align: impl 'custom' supports device_target CPU or GPU, got '{target}'")
    return LIBRARY_DIR / LIBRARY_NAMES[target]


def resolve_impl(impl: str) -> str:
    """``impl`` ("auto", "custom", "builtin") -> the implementation that runs, "custom" or "builtin"; "custom" needs
    device_target CPU or GPU and that device's compiled library (a RuntimeError names the build script otherwise)."""
    library = LIBRARY_DIR / LIBRARY_NAMES.get(ms.get_context("device_target"), LIBRARY_NAMES["CPU"])
    return resolve_kernel_impl(impl, library, "RoIAlign", device_targets=tuple(LIBRARY_NAMES))


def _check_settings(out_size: int, sampling_ratio: int, spatial_scales: Sequence[float]) -> None:
    if int(out_size) != out_size or out_size < 1:
        raise ValueError(f"roi_layer.out_size: expected a positive int, got {out_size!r}")
    if int(sampling_ratio) != sampling_ratio or sampling_ratio < 0:
        raise ValueError(f"roi_layer.sampling_ratio: expected an int >= 0, got {sampling_ratio!r}")
    if not spatial_scales or any(scale <= 0 for scale in spatial_scales):
        raise ValueError(f"roi_layer: spatial scales must be positive, got {list(spatial_scales)}")


MAX_LEVELS = 5


class _CustomRoIAlign(nn.Cell):
    """Own kernels, all levels in one call: (features tuple of L [N,C,H_l,W_l], rois [K,5], levels [K] int32)
    -> [K,C,out,out]. Scalars travel as a float32 tensor ``[sampling_ratio, aligned, scale_0 .. scale_{L-1}]``,
    not as primitive attributes (the AOT attribute reader of MindSpore 2.7.1 returns wrong values). The output
    size comes from the shape of ``out_template [out, out]``: MindSpore keeps the shape function of the first
    Custom op created for an AOT symbol, so shape functions here depend on input shapes only.

    The kernels always receive ``MAX_LEVELS`` feature inputs (unused ones are [N, C, 1, 1] zeros that no RoI
    selects): a custom op's ``bprop`` needs a fixed parameter list, and a Cell ``bprop`` with a tuple input fails
    under PyNative grad in MindSpore 2.7.1."""

    def __init__(self, out_size: int, spatial_scales: Sequence[float], sampling_ratio: int, aligned: bool):
        super().__init__()
        if len(spatial_scales) > MAX_LEVELS:
            raise ValueError(f"roi.featmap_strides: at most {MAX_LEVELS} levels are supported, "
                             f"got {len(spatial_scales)}")
        library = custom_library_path()
        self.num_levels = len(spatial_scales)
        padded_scales = list(spatial_scales) + [1.0] * (MAX_LEVELS - len(spatial_scales))
        self.scalars = Tensor(np.array([sampling_ratio, float(aligned), *padded_scales], np.float32))

        self.out_template = Tensor(np.zeros((out_size, out_size), np.float32))

        def forward_shape(*shapes):
            return [shapes[MAX_LEVELS][0], shapes[0][1], shapes[MAX_LEVELS + 3][0], shapes[MAX_LEVELS + 3][1]]

        def forward_dtype(*dtypes):
            return dtypes[0]

        def backward_shape(*shapes):
            return tuple(list(shape) for shape in shapes[4:])

        def backward_dtype(*dtypes):
            return tuple(dtypes[4:])

        backward = ops.Custom(f"{library}:RoIAlignBackward", out_shape=backward_shape, out_dtype=backward_dtype,
                              func_type="aot")
        zeros_like = ops.ZerosLike()

        def bprop(feature_0, feature_1, feature_2, feature_3, feature_4, rois, roi_levels, scalars, out_template,
                  out, dout):
            grads = backward(dout, rois, roi_levels, scalars, feature_0, feature_1, feature_2, feature_3, feature_4)
            return (grads[0], grads[1], grads[2], grads[3], grads[4], zeros_like(rois), zeros_like(roi_levels),
                    zeros_like(scalars), zeros_like(out_template))

        self.forward_op = ops.Custom(f"{library}:RoIAlignForward", out_shape=forward_shape,
                                     out_dtype=forward_dtype, func_type="aot", bprop=bprop)

    def construct(self, features: Tuple[Tensor, ...], rois: Tensor, roi_levels: Tensor) -> Tensor:
        inputs = list(features)
        unused_level = ops.zeros((features[0].shape[0], features[0].shape[1], 1, 1), features[0].dtype)
        for _ in range(MAX_LEVELS - self.num_levels):
            inputs.append(unused_level)
        return self.forward_op(*inputs, ops.stop_gradient(rois), ops.stop_gradient(roi_levels), self.scalars,
                               self.out_template)


class _BuiltinAtlasRoIAlign(nn.Cell):
    """``ops.ROIAlign`` on an "atlas": the L levels of each image side by side in one map, so that one call samples
    each RoI on its own level only. Same inputs and output as ``_CustomRoIAlign``.

    Atlas layout (per image): level l is framed by a one-pixel border that replicates its edge pixels, and the framed
    levels are concatenated along the width (shorter levels zero-padded at the bottom). Level l's pixel (x, y) sits
    at atlas (x + offset_l + 1, y + 1). The frame reproduces the reference border rule exactly for every sample
    within one pixel of a level (value clamped to the edge, gradient back to the edge pixel). Samples farther out
    (only RoIs reaching more than one feature pixel outside the image) read the neighbouring level's frame instead of
    zero: clip boxes to the image, as the detector does.

    Workaround for a MindSpore 2.x CPU defect (docs/roi_align.md;
    ``test_raw_builtin_mode_0_backward_still_differs``): the backward of ``ops.ROIAlign(roi_end_mode=0)`` is the
    gradient of ``roi_end_mode=1``. This class therefore uses ``roi_end_mode=1`` (box end ``x2 + 1``, no minimum
    size), whose forward and backward agree, and passes
    ``x2' = x1 + size - 1`` with the size of the wanted convention (legacy: ``max(x2 - x1, 1)``; aligned: both ends
    shifted by -0.5), so the sampled positions equal the legacy/aligned ones. Coordinates are in atlas pixels
    (``spatial_scale=1``), which also keeps ``x1`` away from 0 where the built-in kernel skips a RoI whose
    ``x1`` and ``x2`` are both within 0.001 of zero and leaves its output unwritten.
    The built-in adaptive sampling (``sample_num=0``) uses ``floor`` instead of ``ceil`` and divides by zero for
    RoIs smaller than the output, so it cannot reproduce ``sampling_ratio=0``: that setting raises a ValueError.
    """

    def __init__(self, out_size: int, spatial_scales: Sequence[float], sampling_ratio: int, aligned: bool):
        super().__init__()
        if sampling_ratio == 0:
            raise ValueError("roi_layer.sampling_ratio=0 (adaptive) cannot be reproduced by mindspore.ops.ROIAlign "
                             "(it uses floor(roi_size / out_size), 0 samples for small RoIs); set sampling_ratio > 0 "
                             "or use impl 'custom' (build it with `bash scripts/build_custom.sh`)")
        self.num_levels = len(spatial_scales)
        self.aligned = aligned
        self.level_scales = Tensor(np.array(spatial_scales, np.float32))
        self.roi_align = ops.ROIAlign(out_size, out_size, 1.0, sampling_ratio, 1)
        self.concat_width = ops.Concat(axis=3)
        self.concat_height = ops.Concat(axis=2)

    def _framed(self, feature: Tensor, atlas_height: int) -> Tensor:
        """Level with a one-pixel replicated border, zero-padded at the bottom to ``atlas_height`` rows."""
        height = feature.shape[2]
        framed = self.concat_width((feature[:, :, :, :1], feature, feature[:, :, :, -1:]))
        rows = [framed[:, :, :1], framed, framed[:, :, height - 1:]]
        missing_rows = atlas_height - (height + 2)
        if missing_rows > 0:
            rows.append(ops.zeros((framed.shape[0], framed.shape[1], missing_rows, framed.shape[3]),
                                  framed.dtype))
        return self.concat_height(tuple(rows))

    def construct(self, features: Tuple[Tensor, ...], rois: Tensor, roi_levels: Tensor) -> Tensor:
        atlas_height = 2
        for feature in features:
            atlas_height = max(atlas_height, feature.shape[2] + 2)
        framed_levels = []
        x_offset = ops.zeros(roi_levels.shape, ms.float32)
        level_start = 1
        for level, feature in enumerate(features):
            framed_levels.append(self._framed(feature, atlas_height))
            x_offset = x_offset + ops.cast(roi_levels == level, ms.float32) * level_start
            level_start = level_start + feature.shape[3] + 2
        atlas = self.concat_width(tuple(framed_levels))

        rois = ops.stop_gradient(rois)
        scale = ops.gather(self.level_scales, roi_levels, 0)
        x1 = rois[:, 1] * scale
        y1 = rois[:, 2] * scale
        width = rois[:, 3] * scale - x1
        height = rois[:, 4] * scale - y1
        if self.aligned:
            x1 = x1 - 0.5
            y1 = y1 - 0.5
        else:
            width = ops.maximum(width, 1.0)
            height = ops.maximum(height, 1.0)
        x1 = x1 + x_offset
        y1 = y1 + 1.0
        atlas_rois = ops.stack((rois[:, 0], x1, y1, x1 + width - 1.0, y1 + height - 1.0), axis=1)
        return self.roi_align(atlas, atlas_rois)


def _make_impl(out_size: int, spatial_scales: Sequence[float], sampling_ratio: int, aligned: bool,
               impl: str) -> nn.Cell:
    _check_settings(out_size, sampling_ratio, spatial_scales)
    chosen = resolve_impl(impl)
    cell_class = _CustomRoIAlign if chosen == "custom" else _BuiltinAtlasRoIAlign
    return cell_class(int(out_size), [float(scale) for scale in spatial_scales], int(sampling_ratio), bool(aligned))


class RoIAlign(nn.Cell):
    """RoIAlign on one feature map.

    Args: out_size (side of the output), spatial_scale (feature pixels per input pixel), sampling_ratio (samples per
    bin side, 0 = adaptive), aligned (half-pixel convention), impl ("auto", "custom", "builtin").
    Inputs: features [N, C, H, W] float32, rois [K, 5] float32 ``[batch_index, x1, y1, x2, y2]`` (input pixels).
    Output: [K, C, out_size, out_size] float32. Differentiable w.r.t. features (not rois).
    """

    def __init__(self, out_size: int, spatial_scale: float, sampling_ratio: int = 0, aligned: bool = False,
                 impl: str = "auto"):
        super().__init__()
        self.impl_cell = _make_impl(out_size, [spatial_scale], sampling_ratio, aligned, impl)

    def construct(self, features: Tensor, rois: Tensor) -> Tensor:
        roi_levels = ops.zeros((rois.shape[0],), ms.int32)
        return self.impl_cell((features,), rois, roi_levels)


class MultiLevelRoIAlign(nn.Cell):
    """RoIAlign over FPN levels, each RoI sampled only on its own level, in one kernel call (static shapes).

    Args: out_size, featmap_strides (one per level, e.g. [4, 8, 16, 32]), sampling_ratio, aligned, impl.
    Inputs: features tuple of L tensors [N, C, H_l, W_l], rois [K, 5] ``[batch_index, x1, y1, x2, y2]`` (input
    pixels), roi_levels [K] int32 in [0, L). Output: [K, C, out_size, out_size].
    """

    def __init__(self, out_size: int, featmap_strides: Sequence[float], sampling_ratio: int = 0,
                 aligned: bool = False, impl: str = "auto"):
        super().__init__()
        if not featmap_strides or any(stride <= 0 for stride in featmap_strides):
            raise ValueError(f"roi.featmap_strides: expected positive strides, got {list(featmap_strides)}")
        self.num_levels = len(featmap_strides)
        self.impl_cell = _make_impl(out_size, [1.0 / stride for stride in featmap_strides], sampling_ratio, aligned,
                                    impl)

    def construct(self, features: Tuple[Tensor, ...], rois: Tensor, roi_levels: Tensor) -> Tensor:
        return self.impl_cell(features, rois, roi_levels)


_FUNCTIONAL_CELLS: Dict[Tuple, RoIAlign] = {}


def roi_align(features: Tensor, rois: Tensor, out_size: int, spatial_scale: float, sampling_ratio: int = 0,
              aligned: bool = False, impl: str = "auto") -> Tensor:
    """Functional RoIAlign (PyNative / eager use; inside a Cell's construct use ``RoIAlign``).

    features [N, C, H, W] float32, rois [K, 5] ``[batch_index, x1, y1, x2, y2]`` in input pixels
    -> [K, C, out_size, out_size].
    """
    key = (int(out_size), float(spatial_scale), int(sampling_ratio), bool(aligned), impl,
           ms.get_context("device_target"), os.fspath(LIBRARY_DIR))
    if key not in _FUNCTIONAL_CELLS:
        _FUNCTIONAL_CELLS[key] = RoIAlign(out_size, spatial_scale, sampling_ratio, aligned, impl)
    return _FUNCTIONAL_CELLS[key](features, rois)

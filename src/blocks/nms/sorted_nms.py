"""Greedy NMS of boxes sorted by decreasing score: the own C++ kernel on CPU ("custom") or MindSpore's
``ops.NMSWithMask`` ("builtin").

Both suppress a box when an earlier kept box of its group overlaps it by IoU > ``iou_threshold``, with areas
(x2 - x1) * (y2 - y1) and NMSWithMask's float32 arithmetic, so they keep the same boxes (tested). ``NMSWithMask``
decides every pair of its N boxes (N x N work, one call per group); the kernel (``src/blocks/nms/cpu/sorted_nms.cpp``,
built by ``bash scripts/build_custom.sh``) compares each box with the boxes kept so far only and handles all groups of a
batch in one call. ``impl="auto"`` takes the kernel when MindSpore runs on CPU and the library exists, the built-in op
otherwise (GPU included), and logs the choice once.
"""
from pathlib import Path

import numpy as np
import mindspore as ms
from mindspore import Tensor, nn, ops

from src.blocks.kernel_choice import resolve_kernel_impl

LIBRARY = Path(__file__).resolve().parent / "lib" / "libsorted_nms_cpu.so"


def resolve_impl(impl: str) -> str:
    """``impl`` ("auto", "custom", "builtin") -> the implementation that runs, "custom" or "builtin"; "custom" needs
    device_target CPU and the compiled library (a RuntimeError names the build script otherwise)."""
    return resolve_kernel_impl(impl, LIBRARY, "NMS")


class SortedNms(nn.Cell):
    """Keep mask of greedy NMS within groups of score-sorted boxes.

    Args: iou_threshold (a box is suppressed by an earlier kept box overlapping it by IoU > this), impl ("auto",
    "custom", "builtin").
    Input: sorted_boxes [..., N, 4] float32 (x1, y1, x2, y2); each group (one index of the leading dimensions) is
    sorted by decreasing score and suppressed on its own. Output: keep [..., N] bool. No gradient flows through it.
    """

    def __init__(self, iou_threshold: float, impl: str = "auto"):
        super().__init__()
        self.impl = resolve_impl(impl)
        if self.impl == "custom":
            self.threshold = Tensor(np.array([iou_threshold], np.float32))
            self.kernel = ops.Custom(f"{LIBRARY}:SortedNmsKeep", out_shape=lambda boxes, threshold: boxes[:2],
                                     out_dtype=lambda boxes, threshold: ms.float32, func_type="aot")
        else:
            self.nms_with_mask = ops.NMSWithMask(float(iou_threshold))

    def _builtin_keep(self, groups: Tensor) -> Tensor:
        """``NMSWithMask`` returns its keep mask in its own score-sorted order (MindSpore 2.x, CPU and GPU), so it
        gets the strictly decreasing scores N, ..., 1 in place of the real ones: its sort keeps the input order, ties
        included. One call per group."""
        num_boxes = groups.shape[1]
        rank_scores = ops.expand_dims(ops.arange(num_boxes, 0, -1, dtype=ms.float32), 1)
        keeps = [self.nms_with_mask(ops.concat((groups[group], rank_scores), axis=1))[2]
                 for group in range(groups.shape[0])]
        return ops.stack(keeps)

    def construct(self, sorted_boxes: Tensor) -> Tensor:
        leading = sorted_boxes.shape[:-2]
        num_boxes = sorted_boxes.shape[-2]
        groups = ops.reshape(ops.stop_gradient(sorted_boxes), (-1, num_boxes, 4))
        if self.impl == "custom":
            keep = self.kernel(groups, self.threshold) > 0.5
        else:
            keep = self._builtin_keep(groups)
        return ops.reshape(keep, leading + (num_boxes,))

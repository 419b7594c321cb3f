"""Anchor boxes for each FPN level, computed on the host (NumPy) once, since the input size is static."""
import math
from typing import List, Sequence, Tuple

import numpy as np


class AnchorGenerator:
    """Anchors of a feature pyramid.

    Base anchors of a level (stride s): for each ratio r (h / w) and, inside it, each scale k, a box of width
    ``s * k / sqrt(r)`` and height ``s * k * sqrt(r)`` centred at the origin (x1, y1, x2, y2 = -w/2, -h/2, w/2, h/2).
    Grid anchors: the base anchors shifted to every feature location (x * s, y * s), i.e. the centre offset is 0
    (the mmdetection v2 convention): the anchor of location (x, y) is centred on its top-left input pixel corner.
    Order per level: locations row-major (y, then x), and for each location its A = len(ratios) * len(scales) base
    anchors in the order above.

    With ``round_base`` the base anchor coordinates are rounded to integers (halves to even), as torchvision's
    ``AnchorGenerator`` does: e.g. the ratio-0.5 anchor of stride 4, scale 8 becomes (-23, -11, 23, 11) instead of
    (-22.63, -11.31, 22.63, 11.31).

    Args: strides (one per level, e.g. [4, 8, 16, 32, 64]), ratios (h / w), scales (side in units of the stride),
    round_base (bool, default False).
    """

    def __init__(self, strides: Sequence[int], ratios: Sequence[float], scales: Sequence[float],
                 round_base: bool = False):
        if not strides or any(stride <= 0 for stride in strides):
            raise ValueError(f"anchor_generator.strides: expected positive strides, got {list(strides)}")
        if not ratios or any(ratio <= 0 for ratio in ratios):
            raise ValueError(f"anchor_generator.ratios: expected positive ratios, got {list(ratios)}")
        if not scales or any(scale <= 0 for scale in scales):
            raise ValueError(f"anchor_generator.scales: expected positive scales, got {list(scales)}")
        self.strides = [int(stride) for stride in strides]
        self.ratios = np.asarray(ratios, np.float64)
        self.scales = np.asarray(scales, np.float64)
        self.round_base = bool(round_base)
        self.base_anchors = [self._base_anchors(stride) for stride in self.strides]

    @property
    def num_base_anchors(self) -> int:
        """A: anchors per feature location (the same on every level)."""
        return len(self.ratios) * len(self.scales)

    def _base_anchors(self, stride: int) -> np.ndarray:
        """[A, 4] float32 base anchors of one level, centred at (0, 0) (rounded with ``round_base``)."""
        height_ratios = np.sqrt(self.ratios)
        widths = (stride / height_ratios[:, None] * self.scales[None, :]).reshape(-1)
        heights = (stride * height_ratios[:, None] * self.scales[None, :]).reshape(-1)
        base = np.stack((-0.5 * widths, -0.5 * heights, 0.5 * widths, 0.5 * heights), axis=1)
        return (np.round(base) if self.round_base else base).astype(np.float32)

    def _check_sizes(self, featmap_sizes: Sequence[Tuple[int, int]]) -> None:
        if len(featmap_sizes) != len(self.strides):
            raise ValueError(f"anchor_generator: expected {len(self.strides)} feature map sizes (one per stride), "
                             f"got {len(featmap_sizes)}")

    def grid_anchors(self, featmap_sizes: Sequence[Tuple[int, int]]) -> List[np.ndarray]:
        """featmap_sizes: one (h, w) per level -> list of float32 arrays [h * w * A, 4] (x1, y1, x2, y2)."""
        self._check_sizes(featmap_sizes)
        anchors = []
        for (height, width), stride, base in zip(featmap_sizes, self.strides, self.base_anchors):
            shift_x = np.arange(width, dtype=np.float32) * stride
            shift_y = np.arange(height, dtype=np.float32) * stride
            grid_x, grid_y = np.meshgrid(shift_x, shift_y)
            shifts = np.stack((grid_x, grid_y, grid_x, grid_y), axis=-1).reshape(-1, 1, 4)
            anchors.append((shifts + base[None]).reshape(-1, 4).astype(np.float32))
        return anchors

    def valid_flags(self, featmap_sizes: Sequence[Tuple[int, int]], pad_shape: Tuple[int, int]) -> List[np.ndarray]:
        """featmap_sizes: one (h, w) per level; pad_shape: (h, w) of the valid image area in input pixels
        -> list of bool arrays [h * w * A]: True where the anchor's location (x, y) has x < ceil(w / stride) and
        y < ceil(h / stride), i.e. lies on the feature cells that cover the valid area."""
        self._check_sizes(featmap_sizes)
        flags = []
        for (height, width), stride in zip(featmap_sizes, self.strides):
            valid_height = min(int(math.ceil(pad_shape[0] / stride)), height)
            valid_width = min(int(math.ceil(pad_shape[1] / stride)), width)
            valid_rows = np.arange(height) < valid_height
            valid_cols = np.arange(width) < valid_width
            location_flags = (valid_rows[:, None] & valid_cols[None, :]).reshape(-1)
            flags.append(np.repeat(location_flags, self.num_base_anchors))
        return flags

"""Delta-XYWH box coder: boxes <-> normalised (dx, dy, dw, dh) regression targets."""
import math
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import mindspore as ms
from mindspore import Tensor, nn, ops

DEFAULT_MAX_RATIO = abs(math.log(16.0 / 1000.0))
MIN_SIDE = 1e-6


def _check_four(name: str, values: Sequence[float]) -> Tuple[float, ...]:
    values = tuple(float(value) for value in values)
    if len(values) != 4:
        raise ValueError(f"bbox_coder.{name}: expected 4 values (dx, dy, dw, dh), got {list(values)}")
    return values


class DeltaXYWHBBoxCoder(nn.Cell):
    """Encodes a box ``gt`` relative to a reference box ``p`` (both x1, y1, x2, y2; width = x2 - x1) as

        dx = (gx - px) / pw,  dy = (gy - py) / ph,  dw = log(gw / pw),  dh = log(gh / ph)

    with (x, y) the box centre, then normalises ``(d - target_means) / target_stds``. Decoding inverts this, with
    dw, dh clamped to ``[-max_ratio, max_ratio]`` (default |log(16 / 1000)|, so a box grows or shrinks at most
    1000 / 16 times) and, when ``clip_border`` and a ``max_shape`` (h, w) are given, x clipped to [0, w] and y to
    [0, h].

    Widths and heights are floored at 1e-6 when encoding so that degenerate (padding) boxes give finite deltas: a
    NaN target would survive multiplication by a zero sample weight.

    All methods take tensors ``[..., 4]`` (any matching or broadcastable leading dimensions) and run inside
    ``construct`` in GRAPH and PYNATIVE modes. Calling the cell itself decodes.
    """

    def __init__(self, target_means: Sequence[float] = (0.0, 0.0, 0.0, 0.0),
                 target_stds: Sequence[float] = (1.0, 1.0, 1.0, 1.0), clip_border: bool = True,
                 max_ratio: float = DEFAULT_MAX_RATIO):
        super().__init__()
        if max_ratio <= 0:
            raise ValueError(f"bbox_coder.max_ratio: expected a positive value, got {max_ratio}")
        stds = _check_four("target_stds", target_stds)
        if any(std <= 0 for std in stds):
            raise ValueError(f"bbox_coder.target_stds: expected positive values, got {list(stds)}")
        self.means = Tensor(np.array(_check_four("target_means", target_means), np.float32))
        self.stds = Tensor(np.array(stds, np.float32))
        self.clip_border = clip_border
        self.max_ratio = float(max_ratio)

    def encode(self, boxes: Tensor, gt_boxes: Tensor) -> Tensor:
        """boxes [..., 4], gt_boxes [..., 4] (x1, y1, x2, y2) -> normalised deltas [..., 4] (dx, dy, dw, dh)."""
        box_w = ops.maximum(boxes[..., 2] - boxes[..., 0], MIN_SIDE)
        box_h = ops.maximum(boxes[..., 3] - boxes[..., 1], MIN_SIDE)
        box_x = boxes[..., 0] + 0.5 * box_w
        box_y = boxes[..., 1] + 0.5 * box_h
        gt_w = ops.maximum(gt_boxes[..., 2] - gt_boxes[..., 0], MIN_SIDE)
        gt_h = ops.maximum(gt_boxes[..., 3] - gt_boxes[..., 1], MIN_SIDE)
        gt_x = gt_boxes[..., 0] + 0.5 * gt_w
        gt_y = gt_boxes[..., 1] + 0.5 * gt_h
        deltas = ops.stack(((gt_x - box_x) / box_w, (gt_y - box_y) / box_h,
                            ops.log(gt_w / box_w), ops.log(gt_h / box_h)), axis=-1)
        return (deltas - self.means) / self.stds

    def decode(self, boxes: Tensor, deltas: Tensor,
               max_shape: Optional[Union[Tuple[float, float], Tensor]] = None) -> Tensor:
        """boxes [..., 4] (x1, y1, x2, y2), deltas [..., 4] (normalised) -> decoded boxes [..., 4].

        max_shape: None (no clipping), a (h, w) pair, or a float32 Tensor [..., 2] of (h, w) per leading index
        (e.g. [B, 2] for boxes [B, N, 4]).
        """
        deltas = deltas * self.stds + self.means
        delta_w = ops.clip_by_value(deltas[..., 2], -self.max_ratio, self.max_ratio)
        delta_h = ops.clip_by_value(deltas[..., 3], -self.max_ratio, self.max_ratio)
        box_w = boxes[..., 2] - boxes[..., 0]
        box_h = boxes[..., 3] - boxes[..., 1]
        centre_x = boxes[..., 0] + 0.5 * box_w + deltas[..., 0] * box_w
        centre_y = boxes[..., 1] + 0.5 * box_h + deltas[..., 1] * box_h
        half_w = 0.5 * box_w * ops.exp(delta_w)
        half_h = 0.5 * box_h * ops.exp(delta_h)
        x1 = centre_x - half_w
        y1 = centre_y - half_h
        x2 = centre_x + half_w
        y2 = centre_y + half_h
        if self.clip_border and max_shape is not None:
            if isinstance(max_shape, Tensor):
                max_h = ops.expand_dims(max_shape[..., 0], -1) if max_shape.ndim > 1 else max_shape[0]
                max_w = ops.expand_dims(max_shape[..., 1], -1) if max_shape.ndim > 1 else max_shape[1]
                max_h = ops.cast(max_h, ms.float32)
                max_w = ops.cast(max_w, ms.float32)
            else:
                max_h = float(max_shape[0])
                max_w = float(max_shape[1])
            x1 = ops.maximum(ops.minimum(x1, max_w), 0.0)
            y1 = ops.maximum(ops.minimum(y1, max_h), 0.0)
            x2 = ops.maximum(ops.minimum(x2, max_w), 0.0)
            y2 = ops.maximum(ops.minimum(y2, max_h), 0.0)
        return ops.stack((x1, y1, x2, y2), axis=-1)

    def construct(self, boxes: Tensor, deltas: Tensor,
                  max_shape: Optional[Union[Tensor, Tuple[float, float]]] = None) -> Tensor:
        return self.decode(boxes, deltas, max_shape)

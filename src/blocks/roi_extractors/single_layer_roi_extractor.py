"""RoI feature extractor: pools each RoI from the one FPN level that matches its size."""
from typing import Sequence, Tuple

import numpy as np
import mindspore as ms
from mindspore import Tensor, nn, ops

from src.blocks.roi_extractors.roi_align import MultiLevelRoIAlign
from src.model_utils.config import Config

LEVEL_EPS = 1e-6


class SingleLayerRoIExtractor(nn.Cell):
    """Maps each RoI to an FPN level by its scale sqrt(w * h) and RoIAligns it there.

    level = floor(log2(scale / finest_scale + 1e-6)), clipped to [0, L - 1] with L = len(featmap_strides); with
    finest_scale 56: scale < 112 -> 0, [112, 224) -> 1, [224, 448) -> 2, >= 448 -> 3. It is computed exactly as
    the number of thresholds ``finest_scale * (2^k - 1e-6)``, k = 1..L-1, that the scale reaches (no float log).
    With ``scale_factor`` s != 1 each RoI is then pooled from a box s times its width and height about the same
    centre (the level still follows the RoI's own size): s > 1 lets a head see the surroundings of small objects.

    Args: roi_cfg (the ``roi`` or ``mask_roi`` config: roi_layer.type/out_size/sampling_ratio/aligned/impl,
    featmap_strides, finest_scale, scale_factor).
    Inputs: features, a tuple of FPN maps [N, C, H_l, W_l] (only the first L are used); rois [K, 5]
    (batch_index, x1, y1, x2, y2) in input pixels. Output: [K, C, out_size, out_size].
    """

    def __init__(self, roi_cfg: Config):
        super().__init__()
        layer_cfg = roi_cfg.roi_layer
        if layer_cfg.type != "RoIAlign":
            raise ValueError(f"roi_layer.type: only 'RoIAlign' is implemented, got '{layer_cfg.type}'")
        if roi_cfg.finest_scale <= 0:
            raise ValueError(f"finest_scale: expected a positive value, got {roi_cfg.finest_scale}")
        if roi_cfg.scale_factor <= 0:
            raise ValueError(f"scale_factor: expected a positive value, got {roi_cfg.scale_factor}")
        self.scale_factor = float(roi_cfg.scale_factor)
        featmap_strides: Sequence[float] = roi_cfg.featmap_strides
        self.num_levels = len(featmap_strides)
        self.level_thresholds = Tensor(np.array(
            [roi_cfg.finest_scale * (2.0 ** level - LEVEL_EPS) for level in range(1, self.num_levels)],
            np.float32).reshape(1, -1))
        self.roi_align = MultiLevelRoIAlign(layer_cfg.out_size, featmap_strides, layer_cfg.sampling_ratio,
                                            layer_cfg.aligned, layer_cfg.impl)

    def map_roi_levels(self, rois: Tensor) -> Tensor:
        """rois [K, 5] -> level index [K] int32 in [0, L)."""
        widths = rois[:, 3] - rois[:, 1]
        heights = rois[:, 4] - rois[:, 2]
        scales = ops.sqrt(ops.maximum(widths * heights, 0.0))
        reached = ops.cast(ops.expand_dims(scales, 1) >= self.level_thresholds, ms.int32)
        return reached.sum(axis=1).astype(ms.int32)

    def rescale(self, rois: Tensor) -> Tensor:
        """rois [K, 5] -> the same RoIs with width and height times scale_factor about their centres."""
        centres = (rois[:, 1:3] + rois[:, 3:5]) * 0.5
        half_sizes = (rois[:, 3:5] - rois[:, 1:3]) * (0.5 * self.scale_factor)
        return ops.concat((rois[:, :1], centres - half_sizes, centres + half_sizes), axis=1)

    def construct(self, features: Tuple[Tensor, ...], rois: Tensor) -> Tensor:
        rois = ops.stop_gradient(rois)
        levels = self.map_roi_levels(rois)
        if self.scale_factor != 1.0:
            rois = self.rescale(rois)
        return self.roi_align(features[:self.num_levels], rois, levels)

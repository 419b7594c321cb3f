"""Mask head: a small fully convolutional network predicting a 28x28 mask per foreground class."""
from mindspore import Tensor, nn, ops

from src.blocks.conv import Conv2d
from src.blocks.initialization import kaiming_init
from src.blocks.layers import ConvModule
from src.blocks.utils import masked_mean, select_class
from src.model_utils.config import Config


def binary_cross_entropy_with_logits(logits: Tensor, targets: Tensor) -> Tensor:
    """Elementwise sigmoid BCE, stable for large |logits|: max(x, 0) - x * t + log(1 + exp(-|x|))."""
    return ops.relu(logits) - logits * targets + ops.log1p(ops.exp(-ops.abs(logits)))


class FCNMaskHead(nn.Cell):
    """num_convs x (3x3 conv, padding 1, ReLU) -> 2x2 stride-2 transposed conv -> ReLU -> 1x1 conv.

    Input mask_feats [P, in_channels, S, S] (S = 14) -> mask_logits [P, num_classes - 1, 2S, 2S], one channel per
    foreground class (label l in channel l - 1).
    Args: head_cfg (the ``mask_head`` config: num_convs, in_channels, conv_out_channels, norm_groups,
    loss_mask.loss_weight), num_classes (with background). With ``norm_groups`` > 0 each 3x3 conv is followed by a
    GroupNorm of that many groups before its ReLU (and has no bias); GroupNorm keeps every RoI's output independent of
    the other RoIs and of padding slots. Initialisation: Kaiming normal (fan_out, ReLU) for every conv, zero biases.
    """

    def __init__(self, head_cfg: Config, num_classes: int):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes: expected >= 2 (background and at least one class), got {num_classes}")
        self.num_classes = num_classes
        self.loss_weight = float(head_cfg.loss_mask.loss_weight)
        channels = head_cfg.conv_out_channels
        layers = []
        norm_groups = int(head_cfg.norm_groups)
        for index in range(head_cfg.num_convs):
            in_channels = head_cfg.in_channels if index == 0 else channels
            if norm_groups:
                layers.append(ConvModule(in_channels, channels, 3, padding=1, with_bn=False, norm_groups=norm_groups))
                continue
            layers.append(kaiming_init(Conv2d(in_channels, channels, 3, pad_mode="pad", padding=1,
                                              has_bias=True)))
            layers.append(nn.ReLU())
        last_channels = channels if head_cfg.num_convs > 0 else head_cfg.in_channels
        layers.append(kaiming_init(nn.Conv2dTranspose(last_channels, channels, 2, stride=2, pad_mode="valid",
                                                      has_bias=True)))
        layers.append(nn.ReLU())
        layers.append(kaiming_init(Conv2d(channels, num_classes - 1, 1, has_bias=True)))
        self.layers = nn.SequentialCell(layers)

    def construct(self, mask_feats: Tensor) -> Tensor:
        """mask_feats [P, C, S, S] -> mask_logits [P, num_classes - 1, 2S, 2S]."""
        return self.layers(mask_feats)

    def loss(self, mask_logits: Tensor, mask_targets: Tensor, labels: Tensor, weights: Tensor) -> Tensor:
        """Sigmoid BCE of each RoI's gt-class channel against its target.

        Inputs: mask_logits [P, num_classes - 1, M, M], mask_targets [P, M, M] f32 in {0, 1}, labels [P] int32
        (1..num_classes - 1), weights [P] f32 (1 for valid positives, 0 for padding). Returns the BCE averaged over
        the pixels of the valid positives, times loss_mask.loss_weight; exactly 0 without valid positives.
        """
        logits = select_class(mask_logits, labels)
        per_roi = binary_cross_entropy_with_logits(logits, mask_targets).mean(axis=(1, 2))
        return masked_mean(per_roi, weights) * self.loss_weight

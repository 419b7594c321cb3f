"""Feature Pyramid Network."""
from typing import Sequence, Tuple

from mindspore import Tensor, nn, ops

from src.blocks.conv import Conv2d
from src.blocks.initialization import xavier_init
from src.blocks.layers import ConvModule


class FPN(nn.Cell):
    """FPN: 1x1 lateral convs (with bias), top-down nearest upsampling to each lateral's size and addition, 3x3
    output convs, then ``num_outs - len(in_channels)`` extra levels, each a max-pool (kernel 1, stride 2) of the
    previous last output. With ``norm_groups`` > 0 every lateral and output conv is followed by a GroupNorm of that
    many groups (and has no bias), as in Mask R-CNN trained from scratch (He et al., "Rethinking ImageNet
    Pre-training", 2019).

    Input: tuple of L maps [N, in_channels[i], H_i, W_i] (strides increasing) -> tuple of ``num_outs`` maps
    [N, out_channels, H_i, W_i].
    """

    def __init__(self, in_channels: Sequence[int], out_channels: int, num_outs: int, norm_groups: int = 0):
        super().__init__()
        if num_outs < len(in_channels):
            raise ValueError(f"neck.fpn.num_outs: expected >= {len(in_channels)} (len(in_channels)), got {num_outs}")
        self.num_ins = len(in_channels)
        self.num_extra = num_outs - self.num_ins
        if norm_groups:
            self.lateral_convs = nn.CellList([ConvModule(channels, out_channels, 1, with_bn=False, with_relu=False,
                                                         norm_groups=norm_groups) for channels in in_channels])
            self.fpn_convs = nn.CellList([ConvModule(out_channels, out_channels, 3, padding=1, with_bn=False,
                                                     with_relu=False, norm_groups=norm_groups) for _ in in_channels])
            convs = [module.conv for module in list(self.lateral_convs) + list(self.fpn_convs)]
        else:
            self.lateral_convs = nn.CellList([Conv2d(channels, out_channels, 1, has_bias=True, pad_mode="valid")
                                              for channels in in_channels])
            self.fpn_convs = nn.CellList([Conv2d(out_channels, out_channels, 3, pad_mode="pad", padding=1,
                                                 has_bias=True) for _ in in_channels])
            convs = list(self.lateral_convs) + list(self.fpn_convs)
        for conv in convs:
            xavier_init(conv, distribution="uniform")
        self.extra_pool = nn.MaxPool2d(kernel_size=1, stride=2)

    def construct(self, inputs: Tuple[Tensor, ...]) -> Tuple[Tensor, ...]:
        laterals = [conv(feature) for conv, feature in zip(self.lateral_convs, inputs)]
        for level in range(self.num_ins - 1, 0, -1):
            target_shape = laterals[level - 1].shape[2:]
            laterals[level - 1] = laterals[level - 1] + ops.interpolate(laterals[level], size=target_shape,
                                                                        mode="nearest")
        outputs = [conv(lateral) for conv, lateral in zip(self.fpn_convs, laterals)]
        for _ in range(self.num_extra):
            outputs.append(self.extra_pool(outputs[-1]))
        return tuple(outputs)

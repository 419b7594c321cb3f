"""Convolution + optional BatchNorm + optional ReLU, the building unit of the backbone and heads."""
from mindspore import Tensor, nn

from src.blocks.conv import Conv2d
from src.blocks.initialization import kaiming_init


def freeze_batch_norm(batch_norm: nn.BatchNorm2d) -> None:
    """Make ``batch_norm`` use its moving statistics in training too and stop training its gamma and beta."""
    batch_norm.use_batch_statistics = False
    batch_norm.gamma.requires_grad = False
    batch_norm.beta.requires_grad = False


class ConvModule(nn.Cell):
    """conv (k x k, explicit symmetric padding) -> BatchNorm2d (if ``with_bn``) or GroupNorm of ``norm_groups``
    groups (if > 0) -> ReLU (if ``with_relu``).

    Input [N, in_channels, H, W] float32 -> [N, out_channels, H', W'] with H' = (H + 2 * padding - k) // stride + 1.
    The convolution has a bias only when ``bias`` is True (by default only without a normalisation). Weights: Kaiming
    normal (fan_out, relu), BN / GN gamma 1 and beta 0. GroupNorm normalises each sample on its own, so a sample's
    output does not depend on the rest of the batch (RoIs, padding slots included).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 bias: bool = None, with_bn: bool = True, with_relu: bool = True, norm_groups: int = 0):
        super().__init__()
        if with_bn and norm_groups:
            raise ValueError("ConvModule: BatchNorm and GroupNorm are exclusive")
        if norm_groups < 0 or (norm_groups and out_channels % norm_groups):
            raise ValueError(f"norm_groups: expected 0 (none) or a divisor of the {out_channels} channels, "
                             f"got {norm_groups}")
        has_bias = (not with_bn and not norm_groups) if bias is None else bias
        self.conv = Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                           pad_mode="pad" if padding else "valid", padding=padding, has_bias=has_bias)
        kaiming_init(self.conv, mode="fan_out", nonlinearity="relu")
        self.with_bn = with_bn
        self.with_relu = with_relu
        self.bn = nn.BatchNorm2d(out_channels, momentum=0.9) if with_bn else None
        self.with_gn = norm_groups > 0
        self.gn = nn.GroupNorm(norm_groups, out_channels) if self.with_gn else None
        self.relu = nn.ReLU() if with_relu else None

    def construct(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        if self.with_bn:
            x = self.bn(x)
        if self.with_gn:
            x = self.gn(x)
        if self.with_relu:
            x = self.relu(x)
        return x

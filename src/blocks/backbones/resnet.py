"""ResNet 18/34/50/101 backbone with caffe/pytorch stride placement, frozen stages and frozen BatchNorm."""
from typing import Sequence, Tuple

from mindspore import Tensor, nn

from src.blocks.layers import ConvModule, freeze_batch_norm
from src.model_utils.config import Config

STYLES = ("caffe", "pytorch")


class BasicBlock(nn.Cell):
    """Two 3x3 convs (stride on the first) + identity or 1x1 projection shortcut. [N,C_in,H,W] -> [N,planes,H/s,W/s].
    ``style`` is accepted for a uniform block signature and changes nothing here."""

    expansion = 1

    def __init__(self, in_channels: int, planes: int, stride: int, style: str):
        super().__init__()
        self.conv1 = ConvModule(in_channels, planes, 3, stride=stride, padding=1)
        self.conv2 = ConvModule(planes, planes, 3, padding=1, with_relu=False)
        self.downsample = None
        if stride != 1 or in_channels != planes:
            self.downsample = ConvModule(in_channels, planes, 1, stride=stride, with_relu=False)
        self.relu = nn.ReLU()

    def construct(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(self.conv2(self.conv1(x)) + identity)


class Bottleneck(nn.Cell):
    """1x1 -> 3x3 -> 1x1 (x4 channels) + shortcut. ``style`` caffe puts the stride on the first 1x1, pytorch on the
    3x3. [N,C_in,H,W] -> [N,4*planes,H/s,W/s]."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int, style: str):
        super().__init__()
        stride_1x1, stride_3x3 = (stride, 1) if style == "caffe" else (1, stride)
        out_channels = planes * self.expansion
        self.conv1 = ConvModule(in_channels, planes, 1, stride=stride_1x1)
        self.conv2 = ConvModule(planes, planes, 3, stride=stride_3x3, padding=1)
        self.conv3 = ConvModule(planes, out_channels, 1, with_relu=False)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = ConvModule(in_channels, out_channels, 1, stride=stride, with_relu=False)
        self.relu = nn.ReLU()

    def construct(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(self.conv3(self.conv2(self.conv1(x))) + identity)


ARCHITECTURES = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
}


class ResNet(nn.Cell):
    """ResNet: stem (7x7/2 conv + BN + ReLU + 3x3/2 max-pool) and ``num_stages`` residual stages.

    Stage i (0-based) has width ``base_channels * 2**i`` (x4 at the output of bottlenecks) and stride 1 for i = 0,
    2 otherwise, so its output stride is 4 * 2**i. Input [N,3,H,W] float32 -> tuple of the outputs of the stages in
    ``out_indices``. ``frozen_stages`` k >= 0 freezes the stem and stages 1..k (parameters not trained, BN on moving
    statistics); ``norm_eval`` freezes every BatchNorm the same way.
    """

    def __init__(self, depth: int = 50, base_channels: int = 64, num_stages: int = 4,
                 out_indices: Sequence[int] = (0, 1, 2, 3), style: str = "caffe", frozen_stages: int = -1,
                 norm_eval: bool = True):
        super().__init__()
        if depth not in ARCHITECTURES:
            raise ValueError(f"backbone.depth: expected one of {sorted(ARCHITECTURES)}, got {depth}")
        if style not in STYLES:
            raise ValueError(f"backbone.style: expected one of {STYLES}, got '{style}'")
        if not 1 <= num_stages <= 4:
            raise ValueError(f"backbone.num_stages: expected 1..4, got {num_stages}")
        if not out_indices or any(not 0 <= index < num_stages for index in out_indices):
            raise ValueError(f"backbone.out_indices: expected indices in [0, {num_stages}), got {list(out_indices)}")
        if not -1 <= frozen_stages <= num_stages:
            raise ValueError(f"backbone.frozen_stages: expected -1..{num_stages}, got {frozen_stages}")
        block, stage_blocks = ARCHITECTURES[depth]
        self.out_indices = tuple(int(index) for index in out_indices)
        self.stem = ConvModule(3, base_channels, 7, stride=2, padding=3)
        self.max_pool = nn.MaxPool2d(kernel_size=3, stride=2, pad_mode="pad", padding=1)
        stages = []
        in_channels = base_channels
        for stage_index in range(num_stages):
            planes = base_channels * 2 ** stage_index
            stride = 1 if stage_index == 0 else 2
            blocks = []
            for block_index in range(stage_blocks[stage_index]):
                blocks.append(block(in_channels, planes, stride if block_index == 0 else 1, style))
                in_channels = planes * block.expansion
            stages.append(nn.SequentialCell(blocks))
        self.stages = nn.CellList(stages)
        self.out_channels = [base_channels * 2 ** index * block.expansion for index in self.out_indices]
        self._freeze(frozen_stages, norm_eval)

    def _freeze(self, frozen_stages: int, norm_eval: bool) -> None:
        frozen_cells = ([self.stem] if frozen_stages >= 0 else []) + list(self.stages)[:max(frozen_stages, 0)]
        for cell in frozen_cells:
            for parameter in cell.get_parameters():
                parameter.requires_grad = False
            for _, sub_cell in cell.cells_and_names():
                if isinstance(sub_cell, nn.BatchNorm2d):
                    freeze_batch_norm(sub_cell)
        if norm_eval:
            for _, sub_cell in self.cells_and_names():
                if isinstance(sub_cell, nn.BatchNorm2d):
                    freeze_batch_norm(sub_cell)

    def construct(self, x: Tensor) -> Tuple[Tensor, ...]:
        x = self.max_pool(self.stem(x))
        outputs = ()
        for stage_index, stage in enumerate(self.stages):
            x = stage(x)
            if stage_index in self.out_indices:
                outputs = outputs + (x,)
        return outputs


def build_backbone(backbone_cfg: Config) -> ResNet:
    """ResNet from the ``backbone`` config section (depth, base_channels, num_stages, out_indices, style,
    frozen_stages, norm_eval)."""
    if backbone_cfg.type != "resnet":
        raise ValueError(f"backbone.type: only 'resnet' is implemented, got '{backbone_cfg.type}'")
    return ResNet(depth=backbone_cfg.depth, base_channels=backbone_cfg.base_channels,
                  num_stages=backbone_cfg.num_stages, out_indices=backbone_cfg.out_indices,
                  style=backbone_cfg.style, frozen_stages=backbone_cfg.frozen_stages,
                  norm_eval=backbone_cfg.norm_eval)

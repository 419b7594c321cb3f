"""ResNet: output shapes and strides, stride placement of the two styles, frozen stages and frozen BatchNorm."""
import numpy as np
import pytest
import mindspore as ms
from mindspore import Tensor, nn

from src.blocks.backbones import ResNet


@pytest.fixture(autouse=True)
def pynative():
    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")


def image(size=64, batch=2):
    return Tensor(np.random.default_rng(0).normal(size=(batch, 3, size, size)).astype(np.float32))


@pytest.mark.parametrize("depth, expansion", [(18, 1), (50, 4)])
def test_output_shapes_and_strides(depth, expansion):
    backbone = ResNet(depth, base_channels=4, style="pytorch", norm_eval=False)
    outputs = backbone(image(64))
    assert [tuple(o.shape) for o in outputs] == [(2, 4 * 2 ** i * expansion, 64 // (4 * 2 ** i), 64 // (4 * 2 ** i))
                                                 for i in range(4)]
    assert backbone.out_channels == [4 * 2 ** i * expansion for i in range(4)]


def test_graph_mode_and_out_indices():
    ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")
    outputs = ResNet(18, base_channels=4, out_indices=(1, 3))(image(64, batch=1))
    assert [tuple(o.shape) for o in outputs] == [(1, 8, 8, 8), (1, 32, 2, 2)]


def test_block_counts():
    def blocks(depth):
        return [len(stage) for stage in ResNet(depth, base_channels=2).stages]

    assert blocks(18) == [2, 2, 2, 2] and blocks(34) == [3, 4, 6, 3]
    assert blocks(50) == [3, 4, 6, 3] and blocks(101) == [3, 4, 23, 3]


@pytest.mark.parametrize("style, conv1_stride, conv2_stride", [("caffe", 2, 1), ("pytorch", 1, 2)])
def test_stride_placement(style, conv1_stride, conv2_stride):
    first_block = ResNet(50, base_channels=4, style=style).stages[1][0]
    assert first_block.conv1.conv.stride == (conv1_stride, conv1_stride)
    assert first_block.conv2.conv.stride == (conv2_stride, conv2_stride)
    assert first_block.downsample.conv.stride == (2, 2)


def test_frozen_stages():
    backbone = ResNet(18, base_channels=4, frozen_stages=1, norm_eval=False)
    frozen = [p for p in backbone.get_parameters() if p.name.startswith(("stem.", "stages.0."))]
    trained = [p for p in backbone.get_parameters() if p.name.startswith(("stages.1.", "stages.3."))]
    assert frozen and all(not p.requires_grad for p in frozen)
    assert all(p.requires_grad for p in trained if "moving" not in p.name)
    batch_norms = dict((name, cell) for name, cell in backbone.cells_and_names() if isinstance(cell, nn.BatchNorm2d))
    assert all(not cell.use_batch_statistics for name, cell in batch_norms.items()
               if name.startswith(("stem.", "stages.0.")))
    assert all(cell.use_batch_statistics is None for name, cell in batch_norms.items()
               if name.startswith("stages.1."))


def test_no_frozen_stage_and_stem_only():
    assert all(p.requires_grad for p in ResNet(18, base_channels=4, frozen_stages=-1, norm_eval=False)
               .trainable_params())
    stem_frozen = ResNet(18, base_channels=4, frozen_stages=0, norm_eval=False)
    assert {p.name.split(".")[0] for p in stem_frozen.get_parameters()
            if not p.requires_grad and "moving" not in p.name} == {"stem"}


def test_norm_eval_uses_moving_statistics_in_training():
    backbone = ResNet(18, base_channels=4, norm_eval=True)
    assert not any("gamma" in p.name or "beta" in p.name for p in backbone.trainable_params())
    x = image(64)
    backbone.set_train(True)
    train_out = backbone(x)[-1].asnumpy()
    backbone.set_train(False)
    np.testing.assert_allclose(train_out, backbone(x)[-1].asnumpy(), rtol=1e-5, atol=1e-6)
    not_frozen = ResNet(18, base_channels=4, norm_eval=False)
    not_frozen.set_train(True)
    assert not np.allclose(not_frozen(x)[-1].asnumpy(), not_frozen.set_train(False)(x)[-1].asnumpy())


def test_bad_settings_raise():
    with pytest.raises(ValueError, match="backbone.depth"):
        ResNet(42)
    with pytest.raises(ValueError, match="backbone.style"):
        ResNet(18, style="keras")

"""FPN: output shapes, extra level = max-pool(1, stride 2) of the last output, top-down path by NumPy, and the\nGroupNorm option against a NumPy group normalisation."""
import numpy as np
import pytest
import mindspore as ms
from mindspore import Tensor

from src.blocks.necks import FPN


@pytest.fixture(autouse=True, params=[ms.PYNATIVE_MODE, ms.GRAPH_MODE], ids=["pynative", "graph"])
def mode(request):
    ms.set_context(mode=request.param, device_target="CPU")


def inputs(channels=(4, 8, 16, 32), size=32):
    rng = np.random.default_rng(0)
    return tuple(Tensor(rng.normal(size=(2, c, size >> i, size >> i)).astype(np.float32))
                 for i, c in enumerate(channels))


def test_shapes_and_extra_level():
    outputs = FPN([4, 8, 16, 32], 8, 5)(inputs())
    assert [tuple(o.shape) for o in outputs] == [(2, 8, 32 >> i, 32 >> i) for i in range(5)]
    np.testing.assert_array_equal(outputs[4].asnumpy(), outputs[3].asnumpy()[:, :, ::2, ::2])


def conv1x1(x, conv):
    weight = conv.weight.asnumpy()[:, :, 0, 0]
    return np.einsum("oc,nchw->nohw", weight, x) + conv.bias.asnumpy()[None, :, None, None]


def test_top_down_path_matches_numpy():
    fpn = FPN([4, 8], 6, 2)
    features = inputs((4, 8), 8)
    outputs = fpn(features)
    lateral_fine = conv1x1(features[0].asnumpy(), fpn.lateral_convs[0])
    lateral_coarse = conv1x1(features[1].asnumpy(), fpn.lateral_convs[1])
    merged = lateral_fine + lateral_coarse.repeat(2, axis=2).repeat(2, axis=3)
    expected = fpn.fpn_convs[0](Tensor(merged.astype(np.float32))).asnumpy()
    np.testing.assert_allclose(outputs[0].asnumpy(), expected, rtol=1e-4, atol=1e-5)


def test_num_outs_too_small():
    with pytest.raises(ValueError, match="neck.fpn.num_outs"):
        FPN([4, 8, 16], 8, 2)


def numpy_group_norm(x: np.ndarray, groups: int, eps: float = 1e-5) -> np.ndarray:
    """Per sample and group of channels: (x - mean) / sqrt(var + eps) (gamma 1, beta 0)."""
    n, c, h, w = x.shape
    grouped = x.reshape(n, groups, c // groups * h * w).astype(np.float64)
    normalised = (grouped - grouped.mean(axis=2, keepdims=True)) / np.sqrt(grouped.var(axis=2, keepdims=True) + eps)
    return normalised.reshape(n, c, h, w)


def test_group_norm_follows_every_conv():
    """norm_groups 2: the convs lose their bias and each lateral / output conv is group-normalised; the finest
    output equals the NumPy group norm of its conv applied to the merged laterals (each group-normalised)."""
    fpn = FPN([4, 8], 6, 3, norm_groups=2)
    names = {param.name for param in fpn.get_parameters()}
    assert "lateral_convs.0.conv.weight" in names and "fpn_convs.1.gn.gamma" in names
    assert not any(name.endswith("conv.bias") for name in names)
    features = inputs((4, 8), 8)
    outputs = fpn(features)
    lateral_fine = numpy_group_norm(np.einsum("oc,nchw->nohw", fpn.lateral_convs[0].conv.weight.asnumpy()[:, :, 0, 0],
                                              features[0].asnumpy()), 2)
    lateral_coarse = numpy_group_norm(np.einsum("oc,nchw->nohw",
                                                fpn.lateral_convs[1].conv.weight.asnumpy()[:, :, 0, 0],
                                                features[1].asnumpy()), 2)
    merged = lateral_fine + lateral_coarse.repeat(2, axis=2).repeat(2, axis=3)
    conv_out = fpn.fpn_convs[0].conv(Tensor(merged.astype(np.float32))).asnumpy()
    np.testing.assert_allclose(outputs[0].asnumpy(), numpy_group_norm(conv_out, 2), rtol=1e-4, atol=1e-4)
    assert [tuple(o.shape) for o in outputs] == [(2, 6, 8, 8), (2, 6, 4, 4), (2, 6, 2, 2)]

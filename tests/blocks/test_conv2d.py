"""Conv2d: the own oneDNN kernels against a NumPy convolution (float64) and MindSpore's Conv2D, forward and both
gradients, for the geometries the detector uses (3x3 and 1x1, strides 1 and 2, the 7x7 stem, asymmetric padding,
odd sizes); the choice of implementation; and a whole detector's losses and gradients with either."""
import numpy as np
import pytest
import mindspore as ms
from mindspore import Tensor, nn

from src.blocks.conv import Conv2d, conv_impl
from src.blocks.conv.conv2d import LIBRARY

pytestmark = pytest.mark.skipif(not LIBRARY.is_file(), reason="convolution kernels not built (scripts/build_custom.sh)")


@pytest.fixture(autouse=True, params=[ms.GRAPH_MODE, ms.PYNATIVE_MODE], ids=["graph", "pynative"])
def mode(request):
    ms.set_context(mode=request.param, device_target="CPU")


def numpy_conv(x: np.ndarray, weight: np.ndarray, stride: int, pads) -> np.ndarray:
    """Cross-correlation in float64: x [N, C, H, W], weight [O, C, KH, KW], pads (top, bottom, left, right)."""
    top, bottom, left, right = pads
    padded = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (top, bottom), (left, right)))
    _, _, kh, kw = weight.shape
    out_h = (padded.shape[2] - kh) // stride + 1
    out_w = (padded.shape[3] - kw) // stride + 1
    out = np.zeros((x.shape[0], weight.shape[0], out_h, out_w))
    for i in range(kh):
        for j in range(kw):
            window = padded[:, :, i:i + stride * out_h:stride, j:j + stride * out_w:stride]
            out += np.einsum("nchw,oc->nohw", window, weight[:, :, i, j].astype(np.float64))
    return out


def numpy_conv_grads(x, weight, stride, pads, dout):
    """(d x, d weight) of sum(conv(x, weight) * dout), by the chain rule over the same windows (float64)."""
    top, bottom, left, right = pads
    padded = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (top, bottom), (left, right)))
    grad_padded = np.zeros_like(padded)
    grad_weight = np.zeros(weight.shape)
    _, _, kh, kw = weight.shape
    out_h, out_w = dout.shape[2:]
    dout = dout.astype(np.float64)
    for i in range(kh):
        for j in range(kw):
            rows = slice(i, i + stride * out_h, stride)
            cols = slice(j, j + stride * out_w, stride)
            grad_weight[:, :, i, j] = np.einsum("nchw,nohw->oc", padded[:, :, rows, cols], dout)
            grad_padded[:, :, rows, cols] += np.einsum("nohw,oc->nchw", dout, weight[:, :, i, j].astype(np.float64))
    grad_x = grad_padded[:, :, top:top + x.shape[2], left:left + x.shape[3]]
    return grad_x, grad_weight


def forward_and_grads(cell: nn.Cell, x: np.ndarray, dout: np.ndarray):
    """(output, d x, d parameters...) of sum(cell(x) * dout)."""
    dout_tensor = Tensor(dout)

    def loss(inputs):
        return (cell(inputs) * dout_tensor).sum()

    grad_fn = ms.value_and_grad(loss, 0, cell.trainable_params())
    if ms.get_context("mode") == ms.GRAPH_MODE:
        grad_fn = ms.jit(grad_fn)
    _, (grad_x, grad_params) = grad_fn(Tensor(x))
    return [cell(Tensor(x)).asnumpy(), grad_x.asnumpy()] + [grad.asnumpy() for grad in grad_params]


GEOMETRIES = [
    # (batch, in, out, height, width, kernel, stride, padding) ; padding int or (top, bottom, left, right)
    (2, 16, 24, 13, 11, 3, 1, 1),
    (2, 16, 24, 13, 11, 3, 2, 1),
    (1, 3, 16, 19, 17, 7, 2, 3),
    (3, 32, 8, 9, 10, 1, 1, 0),
    (2, 8, 16, 12, 12, 1, 2, 0),
    (2, 5, 7, 9, 8, 3, 2, (0, 2, 1, 0)),
]


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=lambda g: "x".join(str(v) for v in g))
def test_matches_numpy_forward_and_gradients(geometry):
    batch, channels, out_channels, height, width, kernel, stride, padding = geometry
    rng = np.random.default_rng(sum(geometry[:6]))
    pads = padding if isinstance(padding, tuple) else (padding,) * 4
    cell = Conv2d(channels, out_channels, kernel, stride=stride, pad_mode="pad" if padding else "valid",
                  padding=padding, has_bias=False, impl="custom")
    assert cell.impl == "custom"
    x = rng.standard_normal((batch, channels, height, width)).astype(np.float32)
    weight = cell.weight.asnumpy()
    expected = numpy_conv(x, weight, stride, pads)
    dout = rng.standard_normal(expected.shape).astype(np.float32)
    output, grad_x, grad_weight = forward_and_grads(cell, x, dout)
    expected_grad_x, expected_grad_weight = numpy_conv_grads(x, weight, stride, pads, dout)
    assert output.shape == expected.shape
    np.testing.assert_allclose(output, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grad_x, expected_grad_x, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grad_weight, expected_grad_weight, rtol=1e-5, atol=2e-5)


@pytest.mark.parametrize("stride", [1, 2])
def test_matches_mindspore_conv_with_bias(stride):
    """The same parameters in both cells; a batch of 8 feature maps of the damage backbone's first stage."""
    rng = np.random.default_rng(stride)
    builtin = Conv2d(64, 32, 3, stride=stride, pad_mode="pad", padding=1, has_bias=True, bias_init="normal",
                     impl="builtin")
    custom = Conv2d(64, 32, 3, stride=stride, pad_mode="pad", padding=1, has_bias=True, impl="custom")
    custom.weight.set_data(builtin.weight.data.copy())
    custom.bias.set_data(builtin.bias.data.copy())
    x = rng.standard_normal((8, 64, 32, 32)).astype(np.float32)
    dout = rng.standard_normal((8, 32, 32 // stride, 32 // stride)).astype(np.float32)
    for expected, actual in zip(forward_and_grads(builtin, x, dout), forward_and_grads(custom, x, dout)):
        scale = np.abs(expected).max()
        np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-5 * scale)


def test_same_outputs_on_repeated_calls():
    """Cached primitives and buffers: the same input gives bit-identical outputs, also after another shape ran."""
    rng = np.random.default_rng(3)
    cell = Conv2d(8, 8, 3, pad_mode="pad", padding=1, impl="custom")
    first = rng.standard_normal((2, 8, 10, 10)).astype(np.float32)
    other = rng.standard_normal((1, 8, 6, 7)).astype(np.float32)
    dout = rng.standard_normal((2, 8, 10, 10)).astype(np.float32)
    reference = forward_and_grads(cell, first, dout)
    cell(Tensor(other))
    for expected, actual in zip(reference, forward_and_grads(cell, first, dout)):
        np.testing.assert_array_equal(actual, expected)


def test_parameters_and_initialisation_are_those_of_nn_conv2d():
    ms.set_seed(5)
    reference = nn.Conv2d(4, 6, 3, pad_mode="pad", padding=1, has_bias=True)
    ms.set_seed(5)
    cell = Conv2d(4, 6, 3, pad_mode="pad", padding=1, has_bias=True, impl="custom")
    assert [p.name for p in cell.get_parameters()] == [p.name for p in reference.get_parameters()]
    for expected, actual in zip(reference.get_parameters(), cell.get_parameters()):
        np.testing.assert_array_equal(actual.asnumpy(), expected.asnumpy())


@pytest.mark.parametrize("kernel", [1, 3, 4])
def test_same_padding_with_stride_one(kernel):
    """``pad_mode`` "same" (nn.Conv2d's default; the RPN's and the mask head's 1x1 convolutions) as MindSpore pads it,
    an even kernel included (the extra pixel at the bottom / right)."""
    rng = np.random.default_rng(kernel)
    builtin = Conv2d(6, 5, kernel, impl="builtin")
    custom = Conv2d(6, 5, kernel, impl="custom")
    custom.weight.set_data(builtin.weight.data.copy())
    x = rng.standard_normal((2, 6, 9, 7)).astype(np.float32)
    dout = rng.standard_normal((2, 5, 9, 7)).astype(np.float32)
    for expected, actual in zip(forward_and_grads(builtin, x, dout), forward_and_grads(custom, x, dout)):
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)


def test_implementation_choice():
    with conv_impl("builtin"):
        assert Conv2d(4, 4, 3).impl == "builtin"
        assert Conv2d(4, 4, 3, impl="custom").impl == "custom"
    with conv_impl("custom"):
        assert Conv2d(4, 4, 3).impl == "custom"
    assert Conv2d(4, 4, 3).impl == "custom"  # "auto" on CPU with the library built
    assert Conv2d(4, 4, 3, group=2, impl="auto").impl == "builtin"
    assert Conv2d(4, 4, 3, stride=2).impl == "builtin"  # "same" padding that depends on the input size
    with pytest.raises(ValueError, match="group 1, dilation 1"):
        Conv2d(4, 4, 3, dilation=2, impl="custom")
    for unsupported_or_not in ({}, {"group": 2}):
        with pytest.raises(ValueError, match="impl: expected one of"):
            Conv2d(4, 4, 3, impl="fast", **unsupported_or_not)

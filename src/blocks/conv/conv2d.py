"""``Conv2d``: MindSpore's ``nn.Conv2d`` (same parameters, initialisation and checkpoint names) whose convolution
runs, on CPU, in the own oneDNN kernels on all cores ("custom") instead of MindSpore's ``Conv2D`` ("builtin").

MindSpore 2.7.1 runs its CPU convolutions and their gradients on one core, through oneDNN's im2col + GEMM path on
plain NCHW memory. The kernels (``src/blocks/conv/cpu/dnnl_conv2d.cpp``, built by ``bash scripts/build_custom.sh``)
call the same oneDNN library with its blocked layouts and a thread pool of their own: at the damage model's shapes a
3x3 convolution forward + backward takes about half the built-in time on two cores
(``python -m src.tools.bench_conv``). Their results equal the built-in op's up to float32 rounding (another
summation order), tested against it and against a NumPy reference.

Which implementation the convolutions of a network take is decided when they are built: ``conv_impl(impl)`` sets
it for the ``Conv2d`` cells created inside its ``with`` block (the detector builder passes the config's
``conv_impl``); outside one, "auto". "auto" takes the kernels on CPU when the library exists. Convolutions with
groups, dilation, a non-NCHW layout, ``pad_mode`` "same" with a stride above 1 or a non-float32 input always take
the built-in op.
"""
import contextlib
from pathlib import Path
from typing import Iterator, Tuple

import numpy as np
import mindspore as ms
from mindspore import Tensor, nn, ops

from src.blocks.kernel_choice import IMPLS, resolve_kernel_impl

LIBRARY = Path(__file__).resolve().parent / "lib" / "libdnnl_conv2d_cpu.so"
_DEFAULT_IMPL = ["auto"]


@contextlib.contextmanager
def conv_impl(impl: str) -> Iterator[None]:
    """Within the block, new ``Conv2d`` cells take ``impl`` ("auto", "custom" or "builtin")."""
    previous = _DEFAULT_IMPL[0]
    _DEFAULT_IMPL[0] = impl
    try:
        yield
    finally:
        _DEFAULT_IMPL[0] = previous


def explicit_padding(pad_mode: str, padding, kernel_size: Tuple[int, int]) -> Tuple[int, int, int, int]:
    """(top, bottom, left, right) padding of ``nn.Conv2d``'s ``pad_mode`` and ``padding``; "same" for stride 1 only
    (the output keeps the input size; an odd padding puts the extra pixel at the bottom / right, as MindSpore)."""
    if pad_mode == "valid":
        return 0, 0, 0, 0
    if pad_mode == "same":
        total_h, total_w = kernel_size[0] - 1, kernel_size[1] - 1
        return total_h // 2, total_h - total_h // 2, total_w // 2, total_w - total_w // 2
    if isinstance(padding, int):
        return padding, padding, padding, padding
    return tuple(int(value) for value in padding)


class _DnnlConvolution(nn.Cell):
    """x [N, C, H, W] float32, weight [O, C, KH, KW] float32 -> [N, O, OH, OW] through the own kernels, with their
    gradients (both) as the backward; ``pads`` = (top, bottom, left, right)."""

    def __init__(self, stride: Tuple[int, int], pads: Tuple[int, int, int, int], kernel_size: Tuple[int, int]):
        super().__init__()
        self.stride = stride
        self.pads = pads
        self.kernel_size = kernel_size
        self.geometry = Tensor(np.array([*stride, *pads], np.float32))

        def forward_shape(x_shape, weight_shape, geometry_shape, template_shape):
            return [x_shape[0], weight_shape[0], template_shape[0], template_shape[1]]

        def template_shape_of(first_shape, second_shape, geometry_shape, template_shape):
            return list(template_shape)

        def first_dtype(*dtypes):
            return dtypes[0]

        backward_data = ops.Custom(f"{LIBRARY}:Conv2dBackwardData", out_shape=template_shape_of,
                                   out_dtype=first_dtype, func_type="aot")
        backward_weights = ops.Custom(f"{LIBRARY}:Conv2dBackwardWeights", out_shape=template_shape_of,
                                      out_dtype=first_dtype, func_type="aot")
        zeros_like = ops.ZerosLike()

        def bprop(x, weight, geometry, out_template, out, dout):
            return (backward_data(dout, weight, geometry, x), backward_weights(x, dout, geometry, weight),
                    zeros_like(geometry), zeros_like(out_template))

        self.forward_op = ops.Custom(f"{LIBRARY}:Conv2dForward", out_shape=forward_shape, out_dtype=first_dtype,
                                     func_type="aot", bprop=bprop)

    def construct(self, x: Tensor, weight: Tensor) -> Tensor:
        out_height = (x.shape[2] + self.pads[0] + self.pads[1] - self.kernel_size[0]) // self.stride[0] + 1
        out_width = (x.shape[3] + self.pads[2] + self.pads[3] - self.kernel_size[1]) // self.stride[1] + 1
        out_template = ops.zeros((out_height, out_width), ms.float32)
        return self.forward_op(x, weight, self.geometry, out_template)


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` (the same arguments, parameters ``weight`` [O, C, KH, KW] and ``bias`` [O], the same
    initialisation) that runs on the own CPU kernels when its implementation resolves to "custom".

    Input [N, in_channels, H, W] float32 -> [N, out_channels, H', W'], as ``nn.Conv2d``. ``impl`` (None = the
    enclosing ``conv_impl`` block's, "auto" outside one) is one of "auto", "custom", "builtin"."""

    def __init__(self, *args, impl: str = None, **kwargs):
        super().__init__(*args, **kwargs)
        supported = (self.group == 1 and tuple(self.dilation[-2:]) == (1, 1) and self.data_format == "NCHW"
                     and (self.pad_mode in ("pad", "valid") or tuple(self.stride[-2:]) == (1, 1)))
        requested = impl if impl is not None else _DEFAULT_IMPL[0]
        if requested not in IMPLS:
            raise ValueError(f"Conv2d impl: expected one of {IMPLS}, got '{requested}'")
        if requested == "custom" and not supported:
            raise ValueError("Conv2d impl 'custom' supports group 1, dilation 1, NCHW and pad_mode 'same' with "
                             "stride 1 only")
        self.impl = resolve_kernel_impl(requested if supported else "builtin", LIBRARY, "Conv2d")
        if self.impl == "custom":
            self.dnnl_convolution = _DnnlConvolution(tuple(self.stride[-2:]),
                                                     explicit_padding(self.pad_mode, self.padding,
                                                                      tuple(self.kernel_size)),
                                                     tuple(self.kernel_size))

    def construct(self, x: Tensor) -> Tensor:
        if self.impl == "custom" and x.dtype == ms.float32:
            output = self.dnnl_convolution(x, self.weight)
            if self.has_bias:
                output = self.bias_add(output, self.bias)
            return output
        return super().construct(x)

"""Weight initialisation schemes, applied in place to a Cell's ``weight`` and ``bias`` Parameters.

Where the detector uses them (the mmdetection v2 choices):
- ``normal_init(std=0.01)``: RPN convolutions and objectness/box convs, bbox head classifier, MaskIoU output fc;
  ``normal_init(std=0.001)``: bbox head box regressor.
- ``xavier_init(distribution="uniform")``: FPN convolutions and the bbox head's shared fcs.
- ``kaiming_init(mode="fan_out", nonlinearity="relu")`` (normal): backbone convs, mask head convs, deconv and
  logits conv, MaskIoU head convs.
- ``kaiming_init(mode="fan_in", nonlinearity="leaky_relu", negative_slope=1, distribution="uniform")``: MaskIoU
  head fcs.

Biases are set to ``bias`` (default 0) when the cell has one. Fans follow the weight layout: ``[out, in, kh, kw]``
for Conv2d and Dense; Conv2dTranspose stores ``[in, out, kh, kw]``, so its "fan_in" is the output side, as in
other frameworks' conventions.
"""
from typing import Optional, Tuple

from mindspore import Parameter, nn
from mindspore.common.initializer import (Constant, HeNormal, HeUniform, Initializer, Normal, XavierNormal,
                                          XavierUniform, initializer)

DISTRIBUTIONS = ("normal", "uniform")


def _weight_and_bias(cell: nn.Cell) -> Tuple[Parameter, Optional[Parameter]]:
    weight = getattr(cell, "weight", None)
    if weight is None:
        raise ValueError(f"initialization: {type(cell).__name__} has no 'weight' parameter to initialise")
    return weight, getattr(cell, "bias", None)


def _fill(parameter: Parameter, init: Initializer) -> None:
    parameter.set_data(initializer(init, parameter.shape, parameter.dtype))


def _set_bias(cell: nn.Cell, bias: float) -> None:
    _, bias_parameter = _weight_and_bias(cell)
    if bias_parameter is not None:
        _fill(bias_parameter, Constant(bias))


def _check_distribution(distribution: str) -> None:
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"initialization: distribution must be one of {DISTRIBUTIONS}, got '{distribution}'")


def normal_init(cell: nn.Cell, std: float = 0.01, mean: float = 0.0, bias: float = 0.0) -> nn.Cell:
    """Weight ~ N(mean, std^2), bias = ``bias``. Returns the cell."""
    weight, _ = _weight_and_bias(cell)
    _fill(weight, Normal(sigma=std, mean=mean))
    _set_bias(cell, bias)
    return cell


def constant_init(cell: nn.Cell, value: float, bias: float = 0.0) -> nn.Cell:
    """Weight = ``value``, bias = ``bias``. Returns the cell."""
    weight, _ = _weight_and_bias(cell)
    _fill(weight, Constant(value))
    _set_bias(cell, bias)
    return cell


def xavier_init(cell: nn.Cell, gain: float = 1.0, distribution: str = "uniform", bias: float = 0.0) -> nn.Cell:
    """Glorot: uniform in +-gain*sqrt(6/(fan_in+fan_out)) or normal with std gain*sqrt(2/(fan_in+fan_out))."""
    _check_distribution(distribution)
    weight, _ = _weight_and_bias(cell)
    _fill(weight, XavierUniform(gain) if distribution == "uniform" else XavierNormal(gain))
    _set_bias(cell, bias)
    return cell


def kaiming_init(cell: nn.Cell, mode: str = "fan_out", nonlinearity: str = "relu", negative_slope: float = 0.0,
                 distribution: str = "normal", bias: float = 0.0) -> nn.Cell:
    """He: std = gain / sqrt(fan) (normal) or bound = gain * sqrt(3 / fan) (uniform), gain from the nonlinearity
    (relu: sqrt(2); leaky_relu: sqrt(2 / (1 + negative_slope^2)))."""
    _check_distribution(distribution)
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"initialization: kaiming mode must be 'fan_in' or 'fan_out', got '{mode}'")
    weight, _ = _weight_and_bias(cell)
    scheme = HeNormal if distribution == "normal" else HeUniform
    _fill(weight, scheme(negative_slope=negative_slope, mode=mode, nonlinearity=nonlinearity))
    _set_bias(cell, bias)
    return cell

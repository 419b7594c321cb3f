"""Initialisation schemes: empirical statistics of the initialised weights and zero biases."""
import math

import numpy as np
import pytest
import mindspore as ms
from mindspore import nn

from src.blocks.initialization import constant_init, kaiming_init, normal_init, xavier_init


@pytest.fixture(autouse=True)
def seeded():
    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    ms.set_seed(0)
    np.random.seed(0)


@pytest.mark.parametrize("std", [0.01, 0.001])
def test_normal_init_std_and_zero_bias(std):
    layer = normal_init(nn.Dense(256, 512), std=std)
    weight = layer.weight.asnumpy()
    assert weight.std() == pytest.approx(std, rel=0.02)
    assert abs(weight.mean()) < 5 * std / math.sqrt(weight.size)
    assert np.all(layer.bias.asnumpy() == 0)


def test_normal_init_custom_bias_and_conv_without_bias():
    layer = normal_init(nn.Dense(16, 8), std=0.1, bias=-2.0)
    assert np.all(layer.bias.asnumpy() == -2.0)
    conv = normal_init(nn.Conv2d(4, 4, 3, has_bias=False), std=0.1)
    assert conv.bias is None and conv.weight.shape == (4, 4, 3, 3)


def test_kaiming_normal_fan_out_relu():
    conv = kaiming_init(nn.Conv2d(64, 128, 3, has_bias=True))
    # fan_out = 128 * 3 * 3, std = sqrt(2 / fan_out)
    assert conv.weight.asnumpy().std() == pytest.approx(math.sqrt(2 / (128 * 9)), rel=0.02)
    assert np.all(conv.bias.asnumpy() == 0)


def test_kaiming_uniform_fan_in_slope_one():
    layer = kaiming_init(nn.Dense(400, 300), mode="fan_in", nonlinearity="leaky_relu", negative_slope=1.0,
                         distribution="uniform")
    # gain sqrt(2 / (1 + 1)) = 1, bound sqrt(3 / fan_in)
    bound = math.sqrt(3 / 400)
    weight = layer.weight.asnumpy()
    assert np.abs(weight).max() <= bound
    assert weight.std() == pytest.approx(bound / math.sqrt(3), rel=0.02)


def test_xavier_uniform_bound():
    layer = xavier_init(nn.Dense(300, 500))
    bound = math.sqrt(6 / (300 + 500))
    weight = layer.weight.asnumpy()
    assert np.abs(weight).max() <= bound and np.abs(weight).max() > 0.95 * bound
    assert weight.std() == pytest.approx(bound / math.sqrt(3), rel=0.02)
    assert np.all(layer.bias.asnumpy() == 0)


def test_constant_init_and_bad_arguments():
    layer = constant_init(nn.Dense(3, 2), 0.5, bias=1.0)
    assert np.all(layer.weight.asnumpy() == 0.5) and np.all(layer.bias.asnumpy() == 1.0)
    with pytest.raises(ValueError, match="distribution"):
        xavier_init(nn.Dense(3, 2), distribution="triangular")
    with pytest.raises(ValueError, match="weight"):
        normal_init(nn.ReLU())

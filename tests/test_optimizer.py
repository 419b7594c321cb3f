"""build_optimizer's AdamW (decoupled weight decay) against the update rule written out in NumPy."""
import mindspore as ms
import numpy as np
import pytest
from mindspore import Parameter, Tensor, nn

from src.model_utils.config import load_config
from src.network_define import AdamW, build_optimizer

BETA1, BETA2, EPS = 0.9, 0.999, 1e-8


class ApplyGradients(nn.Cell):
    """One optimizer update from the gradients given as inputs (compiled like the training step)."""

    def __init__(self, optimizer: nn.Optimizer):
        super().__init__()
        self.optimizer = optimizer

    def construct(self, *gradients):
        return self.optimizer(gradients)


def numpy_adamw(values, gradients, lrs, decay):
    """The AdamW rule (Loshchilov and Hutter, Algorithm 2, with PyTorch's order: decay, then the bias-corrected Adam
    step) applied to one array for each (gradient, lr) pair, in float64."""
    value, first, second = values.astype(np.float64), 0.0, 0.0
    for step, (gradient, lr) in enumerate(zip(gradients, lrs), start=1):
        value = value * (1.0 - lr * decay)
        first = BETA1 * first + (1.0 - BETA1) * gradient
        second = BETA2 * second + (1.0 - BETA2) * gradient ** 2
        value = value - lr * (first / (1.0 - BETA1 ** step)) / (np.sqrt(second / (1.0 - BETA2 ** step)) + EPS)
    return value


def test_adamw_decays_the_weights_apart_from_the_adam_step():
    ms.set_context(mode=ms.GRAPH_MODE)
    rng = np.random.default_rng(3)
    weight_init = rng.normal(size=(3, 4)).astype(np.float32)
    bias_init = rng.normal(size=(4,)).astype(np.float32)
    weight, bias = Parameter(Tensor(weight_init), name="weight"), Parameter(Tensor(bias_init), name="bias")
    lrs = np.array([0.1, 0.05, 0.02], np.float32)
    optimizer = AdamW([{"params": [weight], "weight_decay": 0.3}, {"params": [bias], "weight_decay": 0.0}],
                      Tensor(lrs))
    step = ApplyGradients(optimizer)
    weight_grads = [rng.normal(size=(3, 4)).astype(np.float32) for _ in lrs]
    bias_grads = [rng.normal(size=(4,)).astype(np.float32) for _ in lrs]
    for weight_grad, bias_grad in zip(weight_grads, bias_grads):
        step(Tensor(weight_grad), Tensor(bias_grad))

    np.testing.assert_allclose(weight.asnumpy(), numpy_adamw(weight_init, weight_grads, lrs, 0.3), atol=2e-5)
    np.testing.assert_allclose(bias.asnumpy(), numpy_adamw(bias_init, bias_grads, lrs, 0.0), atol=2e-5)
    without_decay = numpy_adamw(weight_init, weight_grads, lrs, 0.0)
    assert np.abs(weight.asnumpy() - without_decay).max() > 1e-2  # the decay did act


def test_build_optimizer_adamw_decays_weights_only():
    cfg = load_config("configs/tiny_parts.yaml", ["--opt_type", "adamw", "--weight_decay", "0.05"])
    weight = Parameter(Tensor(np.ones((2, 2), np.float32)), name="weight")
    bias = Parameter(Tensor(np.ones((2,), np.float32)), name="bias")
    optimizer = build_optimizer(cfg, [weight, bias], np.full(4, 0.1, np.float32))
    assert isinstance(optimizer, AdamW)
    assert dict(zip((param.name for param in optimizer.parameters), optimizer.decay_factors)) == {
        "weight": pytest.approx(0.05), "bias": 0.0}

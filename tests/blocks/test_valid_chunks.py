"""run_on_valid_chunks: the head's output on valid rows equals the head on all rows, the rows of chunks without a
valid row are zeros, the rows keep their order, and gradients through it equal those of the head on all rows
(padding rows weighted 0). Checked by hand on the order and against running the head on everything."""
import numpy as np
import pytest
import mindspore as ms
from mindspore import Tensor, nn, ops

from src.blocks.utils import run_on_valid_chunks, valid_first_order


@pytest.fixture(autouse=True, params=[ms.PYNATIVE_MODE, ms.GRAPH_MODE], ids=["pynative", "graph"])
def mode(request):
    ms.set_context(mode=request.param, device_target="CPU")
    return request.param


class TwoInputHead(nn.Cell):
    """[K, 3] and [K, 2] -> [K, 4]: a dense layer on the concatenation, then tanh."""

    def __init__(self) -> None:
        super().__init__()
        self.dense = nn.Dense(5, 4, weight_init="normal", bias_init="normal")

    def construct(self, first: Tensor, second: Tensor) -> Tensor:
        return ops.tanh(self.dense(ops.concat((first, second), 1)))


class Chunked(nn.Cell):
    def __init__(self, head: nn.Cell, chunk_size: int) -> None:
        super().__init__()
        self.head = head
        self.chunk_size = chunk_size

    def construct(self, first: Tensor, second: Tensor, valids: Tensor) -> Tensor:
        return run_on_valid_chunks(self.head, (first, second), valids, self.chunk_size, (4,))


class WeightedLoss(nn.Cell):
    def __init__(self, net: nn.Cell, chunked: bool) -> None:
        super().__init__()
        self.net = net
        self.chunked = chunked

    def construct(self, first: Tensor, second: Tensor, valids: Tensor) -> Tensor:
        if self.chunked:
            output = self.net(first, second, valids)
        else:
            output = self.net.head(first, second)
        weights = ops.expand_dims(ops.cast(valids, ms.float32), 1)
        return ops.select(weights > 0, output * weights, ops.zeros_like(output)).sum()


def test_valid_first_order_by_hand():
    order, inverse, count = valid_first_order(Tensor(np.array([0, 1, 0, 0, 1, 1, 0], np.float32)))
    assert order.asnumpy().tolist() == [1, 4, 5, 0, 2, 3, 6]
    assert inverse.asnumpy().tolist() == [3, 0, 4, 5, 1, 2, 6]
    assert int(count.asnumpy()) == 3


def test_outputs_of_valid_rows_and_zero_chunks():
    rng = np.random.default_rng(0)
    first, second = rng.normal(size=(10, 3)).astype(np.float32), rng.normal(size=(10, 2)).astype(np.float32)
    valids = np.zeros(10, bool)
    valids[[2, 7, 9]] = True  # three valid rows: one chunk of 4 runs, the other two (4 + 2 rows) are skipped
    net = Chunked(TwoInputHead(), 4)
    output = net(Tensor(first), Tensor(second), Tensor(valids)).asnumpy()
    everything = net.head(Tensor(first), Tensor(second)).asnumpy()
    np.testing.assert_allclose(output[valids], everything[valids], rtol=1e-6, atol=1e-7)
    # the first chunk holds rows 2, 7, 9 and the first invalid row, 0; every other invalid row is zero
    np.testing.assert_allclose(output[0], everything[0], rtol=1e-6, atol=1e-7)
    assert not output[[1, 3, 4, 5, 6, 8]].any()


def test_every_chunk_runs_when_all_rows_are_valid_and_none_when_none_is():
    rng = np.random.default_rng(1)
    first, second = rng.normal(size=(7, 3)).astype(np.float32), rng.normal(size=(7, 2)).astype(np.float32)
    net = Chunked(TwoInputHead(), 3)
    everything = net.head(Tensor(first), Tensor(second)).asnumpy()
    output = net(Tensor(first), Tensor(second), Tensor(np.ones(7, bool))).asnumpy()
    np.testing.assert_allclose(output, everything, rtol=1e-6, atol=1e-7)
    assert not net(Tensor(first), Tensor(second), Tensor(np.zeros(7, bool))).asnumpy().any()


def test_gradients_equal_those_of_the_head_on_all_rows():
    rng = np.random.default_rng(2)
    first, second = rng.normal(size=(9, 3)).astype(np.float32), rng.normal(size=(9, 2)).astype(np.float32)
    valids = Tensor(np.array([1, 0, 0, 1, 0, 0, 0, 0, 1], bool))
    net = Chunked(TwoInputHead(), 2)
    results = []
    for chunked in (True, False):
        loss = WeightedLoss(net, chunked)
        grad = ms.value_and_grad(loss, (0, 1), net.trainable_params())
        value, (input_grads, param_grads) = grad(Tensor(first), Tensor(second), valids)
        results.append([value.asnumpy(), *(g.asnumpy() for g in input_grads), *(g.asnumpy() for g in param_grads)])
    for chunked_value, reference in zip(*results):
        np.testing.assert_allclose(chunked_value, reference, rtol=1e-5, atol=1e-6)
    assert np.abs(results[0][1]).sum() > 0

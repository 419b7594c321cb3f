"""RandomSampler counts, neg_pos_ub, determinism for a seed, and packing."""
import numpy as np
import pytest
import mindspore as ms
from mindspore import Tensor

from src.blocks.assigners_samplers import RandomSampler


@pytest.fixture(autouse=True, params=[ms.PYNATIVE_MODE, ms.GRAPH_MODE], ids=["pynative", "graph"])
def mode(request):
    ms.set_context(mode=request.param, device_target="CPU")
    return request.param


def make_assigned(num_pos, num_neg, num_ignored):
    assigned = np.array([3] * num_pos + [0] * num_neg + [-1] * num_ignored, np.int32)
    return np.random.default_rng(1).permutation(assigned)


def sample(sampler, assigned):
    pos, neg = sampler(Tensor(assigned), sampler.draw((len(assigned),)))
    return pos.asnumpy(), neg.asnumpy()


@pytest.mark.parametrize("num_pos, num_neg, expected_pos, expected_neg", [
    (50, 100, 8, 24),   # plenty of both: 32 * 0.25 positives, the rest negatives
    (3, 100, 3, 29),    # few positives: negatives fill up to num
    (3, 10, 3, 10),     # few of both: everything
    (0, 100, 0, 32),    # no positive
])
def test_counts(num_pos, num_neg, expected_pos, expected_neg):
    assigned = make_assigned(num_pos, num_neg, 20)
    pos, neg = sample(RandomSampler(32, 0.25, -1, seed=5, seed2=1), assigned)
    assert pos.sum() == expected_pos and neg.sum() == expected_neg
    assert np.all(assigned[pos] > 0) and np.all(assigned[neg] == 0)


@pytest.mark.parametrize("num_pos, neg_pos_ub, expected_neg", [(2, 3, 6), (0, 3, 3), (5, 0, 0), (5, 10, 27)])
def test_neg_pos_ub(num_pos, neg_pos_ub, expected_neg):
    pos, neg = sample(RandomSampler(32, 0.25, neg_pos_ub, seed=5, seed2=1), make_assigned(num_pos, 100, 0))
    assert pos.sum() == num_pos and neg.sum() == expected_neg


def test_same_seed_same_samples_and_sampling_is_spread():
    assigned = make_assigned(40, 400, 0)
    first = sample(RandomSampler(64, 0.25, -1, seed=7, seed2=2), assigned)
    second = sample(RandomSampler(64, 0.25, -1, seed=7, seed2=2), assigned)
    other = sample(RandomSampler(64, 0.25, -1, seed=8, seed2=2), assigned)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert not np.array_equal(first[1], other[1])
    negative_positions = np.flatnonzero(first[1])
    assert negative_positions.max() - negative_positions.min() > 200


def test_pack_puts_positives_first():
    sampler = RandomSampler(6, 0.5, -1, seed=1, seed2=1)
    pos = np.zeros(10, bool)
    pos[[7, 2]] = True
    neg = np.zeros(10, bool)
    neg[[1, 9, 4]] = True
    indices, valids = sampler.pack(Tensor(pos), Tensor(neg))
    np.testing.assert_array_equal(indices.asnumpy()[:5], [2, 7, 1, 4, 9])
    np.testing.assert_array_equal(valids.asnumpy(), [True] * 5 + [False])

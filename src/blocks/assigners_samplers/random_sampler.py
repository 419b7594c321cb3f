"""Random sampling of positive and negative boxes with static shapes."""
from typing import Tuple

import mindspore as ms
from mindspore import Tensor, nn, ops


class RandomSampler(nn.Cell):
    """Draws up to ``num`` boxes from an assignment: positives (assigned > 0) and negatives (assigned == 0).

    num_pos = min(#positives, int(num * pos_fraction)); num_neg = min(#negatives, num - num_pos) and, when
    ``neg_pos_ub >= 0``, also <= neg_pos_ub * max(num_pos, 1). Each candidate gets a uniform random priority from a
    seeded ``ops.UniformReal`` (same stream in GRAPH and PYNATIVE for the same ``seed``/``seed2``); the ``num_pos``
    (``num_neg``) positives (negatives) with the highest priorities are kept: a box is kept when its priority is at
    least the k-th largest one (TopK), so the counts are exact unless two priorities are exactly equal.
    ``draw(shape)`` draws the priorities; a batch draws them for all its images in one call, since one random
    primitive called several times in a graph need not advance its stream as it does in PYNATIVE.

    Inputs: assigned [..., N] int32 (-1 ignore, 0 negative, k + 1 gt k), priorities [..., N] float32 in [0, 1)
    (from ``draw``); leading dimensions (a batch) are sampled row by row. Outputs: pos_sampled [..., N] bool,
    neg_sampled [..., N] bool. ``pack`` turns each row into ``num`` indices (positives first, in index order) with a
    validity mask.
    """

    def __init__(self, num: int, pos_fraction: float, neg_pos_ub: float, seed: int, seed2: int):
        super().__init__()
        if num < 1 or not 0.0 <= pos_fraction <= 1.0:
            raise ValueError(f"sampler: expected num >= 1 and 0 <= pos_fraction <= 1, got {num}, {pos_fraction}")
        self.num = int(num)
        self.num_expected_pos = int(num * pos_fraction)
        self.neg_pos_ub = float(neg_pos_ub)
        self.uniform = ops.UniformReal(seed=int(seed), seed2=int(seed2))

    def _keep_top(self, priorities: Tensor, candidates: Tensor, wanted: Tensor, max_wanted: int) -> Tensor:
        """candidates among the ``wanted`` (tensor <= max_wanted) with the highest priorities."""
        ranked = ops.where(candidates, priorities, -1.0)
        top_values = ops.topk(ranked, max_wanted)[0]
        last_index = ops.expand_dims(ops.maximum(wanted - 1, 0), -1)
        threshold = ops.gather_elements(top_values, top_values.ndim - 1, last_index)
        return ops.logical_and(ops.logical_and(candidates, ranked >= threshold), ops.expand_dims(wanted > 0, -1))

    def draw(self, shape: Tuple[int, ...]) -> Tensor:
        """Uniform [0, 1) priorities of the given static shape, e.g. (B, N) for a batch."""
        return self.uniform(shape)

    def construct(self, assigned: Tensor, priorities: Tensor) -> Tuple[Tensor, Tensor]:
        num_boxes = assigned.shape[-1]
        positives = assigned > 0
        negatives = assigned == 0
        num_pos = ops.minimum(ops.cast(positives, ms.int32).sum(axis=-1), self.num_expected_pos)
        pos_sampled = self._keep_top(priorities, positives, num_pos, max(min(self.num_expected_pos, num_boxes), 1))
        num_neg = ops.minimum(ops.cast(negatives, ms.int32).sum(axis=-1), self.num - num_pos)
        if self.neg_pos_ub >= 0:
            neg_bound = ops.cast(self.neg_pos_ub * ops.cast(ops.maximum(num_pos, 1), ms.float32), ms.int32)
            num_neg = ops.minimum(num_neg, neg_bound)
        neg_sampled = self._keep_top(priorities, negatives, num_neg, min(self.num, num_boxes))
        return pos_sampled, neg_sampled

    def pack(self, pos_sampled: Tensor, neg_sampled: Tensor) -> Tuple[Tensor, Tensor]:
        """pos_sampled, neg_sampled [..., N] bool -> indices [..., num] int32 (positives first, then negatives, each
        in index order; padding after them) and valid [..., num] bool. Needs N >= num."""
        num_boxes = pos_sampled.shape[-1]
        order = 1.0 - ops.arange(num_boxes, dtype=ms.float32) / num_boxes
        keys = 4.0 * ops.cast(pos_sampled, ms.float32) + 2.0 * ops.cast(neg_sampled, ms.float32) + order
        top_keys, indices = ops.topk(keys, self.num)
        return ops.cast(indices, ms.int32), top_keys >= 2.0

"""Run a head only on the chunks of rows that hold valid entries, with static shapes (GRAPH and PYNATIVE).

The mask and MaskIoU heads get a fixed number of RoI slots per image (positives in training, detections at
inference), most of them padding when an image has few objects. Here the valid rows are moved to the front (their
order kept), cut into chunks of ``chunk_size`` rows, and each chunk runs through the head only when it holds at least
one valid row: a branch taken at run time, so a batch with 5 valid rows of 128 pays for one chunk instead of four. The
rows of skipped chunks come back as zeros; the outputs are put back in the rows' original order.
"""
from typing import Sequence, Tuple

import mindspore as ms
from mindspore import Tensor, nn, ops


def valid_first_order(valids: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """valids [K] (bool or 0/1) -> (order [K] int32: valid rows first, each group in its original order; inverse [K]
    int32 with ``order[inverse] == arange(K)``; count, the number of valid rows, int32 scalar)."""
    num_rows = valids.shape[0]
    is_valid = ops.cast(valids, ms.float32) > 0
    rank = ops.arange(num_rows, 0, -1, dtype=ms.float32) + ops.cast(is_valid, ms.float32) * num_rows
    order = ops.topk(rank, num_rows)[1]
    inverse = ops.topk(-ops.cast(order, ms.float32), num_rows)[1]
    return order, inverse, ops.cast(is_valid, ms.int32).sum()


def run_on_valid_chunks(head: nn.Cell, inputs: Sequence[Tensor], valids: Tensor, chunk_size: int,
                        out_shape: Sequence[int]) -> Tensor:
    """``head(*inputs)`` on the valid rows only: inputs each [K, ...] (the same K), valids [K], out_shape the shape
    of one row of the head's output -> [K, *out_shape], zeros on the rows of chunks without a valid row. Rows are
    computed in batches of ``chunk_size`` (the last one shorter when it does not divide K)."""
    num_rows = valids.shape[0]
    order, inverse, count = valid_first_order(valids)
    ordered = [ops.gather(values, order, 0) for values in inputs]
    chunks = []
    for start in range(0, num_rows, chunk_size):
        stop = min(start + chunk_size, num_rows)
        output = ops.zeros((stop - start,) + tuple(out_shape), ms.float32)
        if count > start:
            output = head(*[values[start:stop] for values in ordered])
        chunks.append(output)
    return ops.gather(ops.concat(chunks, 0), inverse, 0)

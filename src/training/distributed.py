"""Collectives of a data-parallel run beyond the gradient all-reduce, built on the one operation MindSpore's CPU and GPU
backends both support for any launcher: a float32 ``AllReduce`` (sum, :class:`src.network_define.AllReduceSum`).

:func:`all_gather_bytes` gives every process the byte strings of all processes (each byte is one float32 in a buffer
where only its owner writes, so the sum is exact); the evaluation during training uses it to gather the predictions
of each process's shard of the validation set. No MPI Python binding is needed: ranks and sizes come from
``mindspore.communication`` (under ``mpirun`` or ``msrun`` alike).
"""
from typing import List

import numpy as np
from mindspore import Tensor

from src.network_define import AllReduceSum

LENGTH_BASE = 65536  # lengths travel as two float32 digits, exact up to 2**32 bytes


def all_gather_bytes(payload: bytes, rank: int, size: int) -> List[bytes]:
    """The ``payload`` of every process, in rank order (every process must call this with its own)."""
    summing = AllReduceSum()
    lengths = np.zeros((size, 2), np.float32)
    lengths[rank] = divmod(len(payload), LENGTH_BASE)
    lengths = summing(Tensor(lengths)).asnumpy().astype(np.int64)
    sizes = [int(high) * LENGTH_BASE + int(low) for high, low in lengths]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    buffer = np.zeros(max(int(offsets[-1]), 1), np.float32)
    buffer[offsets[rank]:offsets[rank + 1]] = np.frombuffer(payload, np.uint8)
    gathered = summing(Tensor(buffer)).asnumpy()
    return [gathered[offsets[index]:offsets[index + 1]].astype(np.uint8).tobytes() for index in range(size)]

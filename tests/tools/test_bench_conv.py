"""bench_conv: shape parsing, and a run that times every implementation and thread count in its own MindSpore
process."""
import argparse

import pytest

from src.blocks.conv.conv2d import LIBRARY
from src.tools import bench_conv


def test_parse_shape():
    assert bench_conv.parse_shape("8x64x32") == (8, 64, 32)
    assert bench_conv.parse_shape("1X3X5") == (1, 3, 5)
    for bad in ("8x64", "8x0x4", "axbxc"):
        with pytest.raises(argparse.ArgumentTypeError, match=bad):
            bench_conv.parse_shape(bad)


@pytest.mark.skipif(not LIBRARY.is_file(), reason="convolution kernels not built (scripts/build_custom.sh)")
def test_one_row_per_implementation_thread_count_and_shape(capsys):
    bench_conv.main(["--threads", "1", "2", "--shapes", "1x4x8", "2x8x4", "--repeats", "1", "--no-peer"])
    lines = capsys.readouterr().out.strip().splitlines()
    rows = [line.split() for line in lines[2:]]
    assert [(row[0], row[1], row[2]) for row in rows] == [
        (impl, threads, shape) for impl in ("ms-builtin", "ms-own") for threads in ("1", "2")
        for shape in ("1x4x8", "2x8x4")]
    assert all(float(row[4]) > 0.0 and float(row[5]) > 0.0 for row in rows)

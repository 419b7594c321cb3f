"""The benchmark tool: one JSON line, and with --peer torchvision the interleaved peer numbers and their ratio."""
import importlib.util
import json

import pytest

from src.tools import benchmark
from tests.conftest import TINY_CONFIG


@pytest.mark.parametrize("mode", ["infer", "train"])
def test_benchmark_against_the_torchvision_peer(mode, capsys):
    if importlib.util.find_spec("torchvision") is None:
        pytest.skip("torch and torchvision are needed for --peer torchvision")
    assert benchmark.main([str(TINY_CONFIG), "--mode", mode, "--size", "128", "128", "--batch", "1", "--steps", "2",
                           "--peer", "torchvision", "--exec_mode", "pynative"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["mode"] == mode and result["size"] == [128, 128] and result["steps"] == 2
    assert result["peer"] == "torchvision" and result["peer_median_ms"] > 0 and result["median_ms"] > 0
    assert result["ratio"] == pytest.approx(result["median_ms"] / result["peer_median_ms"], abs=1e-3)

"""The benchmark tool: one JSON line, with --peer torchvision the interleaved peer numbers and their ratio, and with
--stages every stage's time (ours, and the peer's with --peer). The peer needs torch and torchvision: without them
its test is skipped, except on CI (``CI=true``), where it fails."""
import importlib.util
import json
import os

import pytest

from src.tools import benchmark
from src.tools.stage_timing import INFER_STAGES, TRAIN_STAGES
from tests.conftest import TINY_CONFIG

PEER_INFER_STAGES = INFER_STAGES
PEER_TRAIN_STAGES = ("preprocess",) + TRAIN_STAGES


def run_benchmark(capsys: pytest.CaptureFixture, mode: str, steps: int, *options: str) -> dict:
    """The JSON line of the tiny config at 128 x 128, batch 1, in PYNATIVE mode (no compilation to wait for)."""
    assert benchmark.main([str(TINY_CONFIG), "--mode", mode, "--size", "128", "128", "--batch", "1", "--steps",
                           str(steps), "--exec_mode", "pynative", *options]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def assert_stages(stages: dict, names: tuple, mode: str) -> None:
    expected = names + (("backward_and_update",) if mode == "train" else ())
    assert tuple(stages) == expected
    assert all(value > 0 for value in stages.values()), stages


@pytest.mark.parametrize("mode", ["infer", "train"])
def test_stages_time_every_stage_of_our_model(mode, capsys):
    result = run_benchmark(capsys, mode, 2, "--stages")
    assert_stages(result["stages_ms"], INFER_STAGES if mode == "infer" else TRAIN_STAGES, mode)
    forward = [value for name, value in result["stages_ms"].items() if name != "backward_and_update"]
    assert result["stages_sum_ms"] == pytest.approx(sum(forward), abs=0.05)


@pytest.mark.parametrize("mode", ["infer", "train"])
def test_benchmark_against_the_torchvision_peer(mode, capsys):
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("torchvision") is None:
        message = "torch and torchvision are needed for --peer torchvision (pip install -r requirements-dev.txt)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    result = run_benchmark(capsys, mode, 2, "--peer", "torchvision", "--stages")
    assert result["mode"] == mode and result["size"] == [128, 128] and result["steps"] == 2
    assert result["peer"] == "torchvision" and result["peer_median_ms"] > 0 and result["median_ms"] > 0
    assert result["ratio"] == pytest.approx(result["median_ms"] / result["peer_median_ms"], abs=1e-3)
    assert_stages(result["peer_stages_ms"], PEER_INFER_STAGES if mode == "infer" else PEER_TRAIN_STAGES, mode)
    assert "stages_ms" in result and result["peer_stages_sum_ms"] > 0

"""The console of a real training run with evaluation: the project's lines only, no MindSpore log lines.

Two tiny runs of train.py in subprocesses: with the default environment no MindSpore log line reaches stdout or
stderr while a deliberate project warning (more instances than ``num_gts``) still does; with MindSpore's warnings
switched back on (``GLOG_v=2``) the warnings whose cause was in this project's graphs (unused outputs of
multi-output operations, dropped as "side effect nodes"; functions compiled again) do not come back.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from src.tools.make_synthetic_car_damage import main as make_synthetic
from tests.conftest import PROJECT_ROOT

MINDSPORE_LOG_LINE = re.compile(r"^\[(WARNING|INFO|DEBUG)\] [A-Z_]+\(\d+", re.MULTILINE)
PROJECT_WARNING = "have more than num_gts=1 instances"


@pytest.fixture(scope="module")
def tiny_parts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 generated 128x128 images (seed 5), parts task."""
    out = tmp_path_factory.mktemp("console") / "data"
    make_synthetic(["--out", str(out), "--seed", "5", "--num-images", "8", "--size", "128", "128", "--workers", "1"])
    return out / "parts"


def run_training(data: Path, out: Path, **env: str) -> str:
    """stdout + stderr of one epoch of configs/tiny_parts.yaml with evaluation, num_gts 1."""
    environment = {key: value for key, value in os.environ.items() if key != "GLOG_v"}
    environment.update(env)
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "train.py"), "--config_path", str(PROJECT_ROOT / "configs" /
                                                                              "tiny_parts.yaml"),
         "--train_dataset", str(data / "train"), "--val_dataset", str(data / "validation"),
         "--train_outputs", str(out), "--epoch_size", "1", "--run_eval", "1", "--num_gts", "1",
         "--img_width", "128", "--img_height", "128", "--num_parallel_workers", "1"],
        cwd=out.parent, env=environment, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr


def test_default_console_holds_only_the_projects_lines(tiny_parts: Path, tmp_path: Path):
    console = run_training(tiny_parts, tmp_path / "out")
    assert MINDSPORE_LOG_LINE.findall(console) == []
    assert PROJECT_WARNING in console
    assert "Result metrics for epoch 1" in console


def test_warnings_caused_by_the_graphs_are_gone_at_mindspore_warning_level(tiny_parts: Path, tmp_path: Path):
    console = run_training(tiny_parts, tmp_path / "out", GLOG_v="2")
    assert "side effect nodes were eliminated" not in console
    assert "compiled again" not in console
    assert PROJECT_WARNING in console

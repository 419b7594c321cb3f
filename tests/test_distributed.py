"""Data-parallel training on 2 CPU processes (msrun): the averaged-gradient step equals one process's step on the
same global batch, and the project's launch script trains and evaluates with only rank 0 writing."""
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from src.tools.make_synthetic_car_damage import main as make_synthetic
from tests.conftest import PROJECT_ROOT

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def environment() -> dict:
    return {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}


def test_two_processes_step_like_one_on_the_global_batch(tmp_path: Path):
    helper = PROJECT_ROOT / "tests" / "helpers" / "distributed_step.py"
    launched = subprocess.run(
        [str(BIN / "msrun"), "--worker_num=2", "--local_worker_num=2", f"--master_port={free_port()}",
         f"--log_dir={tmp_path / 'msrun'}", "--join=True", "python", str(helper), str(tmp_path)],
        cwd=PROJECT_ROOT, env=environment(), capture_output=True, text=True, timeout=300)
    logs = "".join(path.read_text() for path in sorted((tmp_path / "msrun").glob("worker_*.log")))
    assert launched.returncode == 0, logs[-3000:]
    subprocess.run([sys.executable, str(helper), str(tmp_path), "--single"], cwd=PROJECT_ROOT, check=True,
                   timeout=300)
    assert sorted(path.name for path in tmp_path.glob("rank-*.txt")) == [
        "rank-0-distributed.txt", "rank-0-single.txt", "rank-1-distributed.txt"]
    assert (tmp_path / "rank-1-distributed.txt").read_text() == "1 of 2\n"
    distributed, single = np.load(tmp_path / "step-distributed.npz"), np.load(tmp_path / "step-single.npz")
    assert float(distributed["total_loss"]) == pytest.approx(float(single["total_loss"]), rel=1e-6)
    assert not np.allclose(single["weight"], 0.0)  # the step moved the weights
    np.testing.assert_allclose(distributed["weight"], single["weight"], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(distributed["bias"], single["bias"], rtol=1e-5, atol=1e-7)


def test_launch_script_trains_and_evaluates_on_two_processes(tmp_path: Path):
    make_synthetic(["--out", str(tmp_path / "data"), "--seed", "2", "--num-images", "10", "--size", "128", "128",
                    "--workers", "1"])
    parts = tmp_path / "data" / "parts"
    result = subprocess.run(
        ["bash", str(PROJECT_ROOT / "scripts" / "run_distribute_train_gpu.sh"), str(PROJECT_ROOT / "configs" /
                                                                                      "tiny_parts.yaml"), "2",
         str(parts / "train"), str(parts / "validation"), str(tmp_path / "out"), "dist", "--epoch_size", "2",
         "--run_eval", "1", "--img_width", "128", "--img_height", "128", "--batch_size", "1"],
        cwd=tmp_path, env={**environment(), "DEVICE_TARGET": "CPU", "MASTER_PORT": str(free_port())},
        capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    experiments = list((tmp_path / "out").iterdir())
    assert len(experiments) == 1 and experiments[0].name.endswith("_MSRCNN_dist_cpu-2_128x128_bs-1_lr-0.01_div-2")
    log = (experiments[0] / "train.log").read_text()
    assert "Result metrics for epoch 2: {'loss': " in log and "'seg_mAP': " in log
    metrics = (experiments[0] / "metrics.csv").read_text().splitlines()
    assert len(metrics) == 3
    assert (experiments[0] / "val_predictions.json").is_file()  # written once, by rank 0, from all shards

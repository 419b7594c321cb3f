"""Exact resume of the real tiny Mask Scoring R-CNN: runs of train.py killed with SIGKILL or stopped with SIGTERM at
a step and resumed end with the weights of the uninterrupted run; a resumed run uses its experiment's config."""
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest

from src.callback import read_checkpoint_state
from src.tools.make_synthetic_car_damage import main as make_synthetic
from tests.conftest import PROJECT_ROOT

EPOCHS = 3


@pytest.fixture(scope="module")
def parts_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 generated 128x128 images (seed 11), parts task."""
    out = tmp_path_factory.mktemp("resume") / "data"
    make_synthetic(["--out", str(out), "--seed", "11", "--num-images", "10", "--size", "128", "128",
                    "--workers", "1"])
    return out / "parts"


def train_command(data: Path, out: Path) -> list:
    return [sys.executable, str(PROJECT_ROOT / "train.py"), "--config_path",
            str(PROJECT_ROOT / "configs" / "tiny_parts.yaml"), "--train_dataset", str(data / "train"),
            "--val_dataset", str(data / "validation"), "--train_outputs", str(out), "--epoch_size", str(EPOCHS),
            "--run_eval", "0", "--img_width", "128", "--img_height", "128", "--log_interval", "1",
            "--save_every", "1", "--keep_checkpoint_max", "100", "--lr", "0.02", "--warmup_step", "2"]


def run(command: list, cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result


def interrupt_at(command: list, cwd: Path, experiments: Path, rows: int, signum: int) -> int:
    """Start ``command``, send ``signum`` once losses.csv has ``rows`` step rows; returns the exit code."""
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        logs = list(experiments.glob("*/losses.csv"))
        if logs and len(logs[0].read_text().splitlines()) - 1 >= rows:
            process.send_signal(signum)
            break
        time.sleep(0.05)
    return process.wait(timeout=300)


def final_weights(experiment: Path) -> dict:
    path = max((experiment / "checkpoints").glob("msrcnn-*.ckpt"), key=lambda item: item.stat().st_mtime)
    return {name: value.asnumpy() for name, value in ms.load_checkpoint(str(path)).items() if hasattr(value, "asnumpy")}


def test_killed_or_stopped_runs_resume_to_the_uninterrupted_weights(parts_data: Path, tmp_path: Path):
    reference_dir = tmp_path / "reference"
    run(train_command(parts_data, reference_dir), tmp_path)
    reference = next(reference_dir.iterdir())
    steps = len((reference / "losses.csv").read_text().splitlines()) - 1
    assert steps >= 6
    expected = final_weights(reference)
    assert read_checkpoint_state(ms.load_checkpoint(str(reference / "checkpoints" / f"msrcnn-{EPOCHS}_"
                                                        f"{steps // EPOCHS}.ckpt")))["global_step"] == steps

    kill_at = random.Random(os.getpid()).randint(2, steps - 2)
    killed_dir = tmp_path / "killed"
    assert interrupt_at(train_command(parts_data, killed_dir), tmp_path, killed_dir, kill_at,
                        signal.SIGKILL) == -signal.SIGKILL
    killed = next(killed_dir.iterdir())
    result = run([sys.executable, str(PROJECT_ROOT / "train.py"), "--resume", str(killed)], tmp_path)
    assert "Resumed from" in result.stdout
    resumed = final_weights(killed)
    assert resumed.keys() == expected.keys()
    different = [name for name in expected if not np.array_equal(expected[name], resumed[name])]
    assert different == [], f"killed after step {kill_at} of {steps}: {different[:5]}"

    stopped_dir = tmp_path / "stopped"
    assert interrupt_at(train_command(parts_data, stopped_dir), tmp_path, stopped_dir, 3,
                        signal.SIGTERM) == 128 + signal.SIGTERM
    stopped = next(stopped_dir.iterdir())
    log = (stopped / "train.log").read_text()
    assert "SIGTERM received: stopped after epoch" in log and f"--resume {stopped}" in log
    run([sys.executable, str(PROJECT_ROOT / "train.py"), "--resume", str(stopped)], tmp_path)
    resumed = final_weights(stopped)
    assert all(np.array_equal(expected[name], resumed[name]) for name in expected)


def test_resume_uses_the_experiments_config_and_refuses_changes(parts_data: Path, tmp_path: Path):
    out = tmp_path / "out"
    command = train_command(parts_data, out)
    command[command.index("--epoch_size") + 1] = "1"
    run(command, tmp_path)
    experiment = next(out.iterdir())
    config = (experiment / "config.yaml").read_text()

    refused = subprocess.run([sys.executable, str(PROJECT_ROOT / "train.py"), "--resume", str(experiment),
                              "--lr", "0.1"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "--lr would change what is trained" in refused.stderr
    other = subprocess.run([sys.executable, str(PROJECT_ROOT / "train.py"), "--resume", str(experiment),
                            "--config_path", str(PROJECT_ROOT / "configs" / "tiny_parts.yaml")], cwd=tmp_path,
                           capture_output=True, text=True, timeout=120)
    assert other.returncode == 2 and "a resumed run uses its experiment's" in other.stderr
    outside = tmp_path / "copy.ckpt"
    outside.write_bytes(next((experiment / "checkpoints").iterdir()).read_bytes())
    misplaced = subprocess.run([sys.executable, str(PROJECT_ROOT / "train.py"), "--resume", str(outside)],
                               cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert misplaced.returncode == 2 and "is not inside an experiment's checkpoints or best_ckpt folder" in \
        misplaced.stderr

    result = run([sys.executable, str(PROJECT_ROOT / "train.py"), "--resume", str(experiment),
                  "--log_interval", "2"], tmp_path)
    assert "Nothing to do: the checkpoint already finished epoch 1 of 1" in result.stdout
    assert (experiment / "config.yaml").read_text() == config
    command_log = (experiment / "command.txt").read_text()
    assert "--log_interval 2" in command_log and "resumed_from:" in command_log

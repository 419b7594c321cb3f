"""Each launch script prints its usage and exits 1 when arguments are missing or wrong."""
import subprocess
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
CASES = {
    "run_standalone_train_gpu.sh": ["cfg.yaml", "train", "val", "out"],
    "run_distribute_train_gpu.sh": ["cfg.yaml", "two", "train", "val", "out", "brief"],
    "run_eval_gpu.sh": ["cfg.yaml", "val"],
    "run_infer_gpu.sh": ["cfg.yaml", "model.ckpt", "images"],
}


@pytest.mark.parametrize("script", sorted(CASES))
def test_usage_on_missing_arguments(script, tmp_path):
    for args in ([], CASES[script]):
        result = subprocess.run(["bash", str(SCRIPTS / script), *args], cwd=tmp_path, capture_output=True,
                                text=True, timeout=30)
        assert result.returncode == 1
        assert f"Usage: bash scripts/{script}" in result.stderr
    assert not (tmp_path / "LOG").exists()


def test_missing_input_is_named(tmp_path):
    result = subprocess.run(["bash", str(SCRIPTS / "run_eval_gpu.sh"), str(tmp_path / "nope.yaml"), str(tmp_path),
                             "x.ckpt"], cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert f"{tmp_path / 'nope.yaml'} does not exist" in result.stderr


def test_demo_help():
    result = subprocess.run(["bash", str(SCRIPTS / "run_demo_cpu.sh"), "--help"], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0 and "End-to-end demo on CPU" in result.stdout

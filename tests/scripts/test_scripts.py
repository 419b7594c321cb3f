"""Each launch script prints its usage and exits 1 when arguments are missing or wrong."""
import os
import subprocess
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
CASES = {
    "run_standalone_train_gpu.sh": ["cfg.yaml", "train", "val", "out"],
    "run_distribute_train_gpu.sh": ["cfg.yaml", "two", "train", "val", "out", "brief"],
    "run_eval_gpu.sh": ["cfg.yaml", "val"],
    "run_infer_gpu.sh": ["cfg.yaml", "model.ckpt", "images"],
    "run_damage_cost_gpu.sh": ["parts.yaml", "parts.ckpt", "damage.yaml", "damage.ckpt", "price.json", "images"],
    "run_damage_cost_app.sh": ["parts.yaml", "parts.ckpt", "damage.yaml", "damage.ckpt"],
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


def test_demo_rejects_a_bad_model_choice_before_any_work(tmp_path):
    result = subprocess.run(["bash", str(SCRIPTS / "run_demo_cpu.sh")], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "DEMO_MODELS": "both", "OUT_DIR": str(tmp_path / "out"),
                                 "DATA_DIR": str(tmp_path / "data")})
    assert result.returncode == 1 and "DEMO_MODELS must be" in result.stderr and "got 'both'" in result.stderr
    assert not (tmp_path / "data").exists() and not (tmp_path / "out").exists()


def test_damage_cost_joint_model_runs_once(tmp_path):
    """5 arguments, or the same config and checkpoint twice, run one joint model; two models are both passed."""
    for name in ("parts.yaml", "parts.ckpt", "damage.yaml", "damage.ckpt", "price.json", "images"):
        (tmp_path / name).touch()

    def command(*args: str) -> str:
        result = subprocess.run(["bash", str(SCRIPTS / "run_damage_cost_gpu.sh"), *args, "--score-thr", "0.4"],
                                cwd=tmp_path, capture_output=True, text=True, timeout=30,
                                env={"PATH": "/usr/bin:/bin", "PYTHON": "echo", "DEVICE_TARGET": "CPU"})
        assert result.returncode == 0, result.stderr
        assert (tmp_path / "LOG" / "damage_cost.log").read_text() in result.stdout
        return result.stdout

    joint = command("parts.yaml", "parts.ckpt", "price.json", "images", "out")
    assert f"--parts-config {tmp_path / 'parts.yaml'} --parts-ckpt {tmp_path / 'parts.ckpt'} --price-model" in joint
    assert "--damage-config" not in joint and f"--output {tmp_path / 'out'}" in joint
    assert "--device-target CPU" in joint and joint.rstrip().endswith("--score-thr 0.4")
    assert "--damage-config" not in command("parts.yaml", "parts.ckpt", "./parts.yaml", "parts.ckpt", "price.json",
                                            "images", "out")
    two = command("parts.yaml", "parts.ckpt", "damage.yaml", "damage.ckpt", "price.json", "images", "out")
    assert f"--damage-config {tmp_path / 'damage.yaml'} --damage-ckpt {tmp_path / 'damage.ckpt'}" in two
    missing = subprocess.run(["bash", str(SCRIPTS / "run_damage_cost_gpu.sh"), "cfg.yaml", "model.ckpt", "price.json",
                              "images", "out"], cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert missing.returncode == 1 and f"{tmp_path / 'cfg.yaml'} does not exist" in missing.stderr


def test_damage_cost_app_passes_the_models_and_options(tmp_path):
    """3 arguments start a joint model, 5 two models; options after them reach the app; a missing file is named."""
    for name in ("parts.yaml", "parts.ckpt", "damage.yaml", "damage.ckpt", "price.json"):
        (tmp_path / name).touch()

    def command(*args: str, **env: str) -> str:
        result = subprocess.run(["bash", str(SCRIPTS / "run_damage_cost_app.sh"), *args, "--port", "8123"],
                                cwd=tmp_path, capture_output=True, text=True, timeout=30,
                                env={"PATH": "/usr/bin:/bin", "PYTHON": "echo", **env})
        assert result.returncode == 0, result.stderr
        assert (tmp_path / "LOG" / "damage_cost_app.log").read_text() in result.stdout
        return result.stdout

    joint = command("parts.yaml", "parts.ckpt", "price.json")
    assert f"-m src.damage_cost.app --parts-config {tmp_path / 'parts.yaml'} --parts-ckpt " \
           f"{tmp_path / 'parts.ckpt'} --price-model {tmp_path / 'price.json'} --port 8123" in joint
    two = command("parts.yaml", "parts.ckpt", "damage.yaml", "damage.ckpt", "price.json", DEVICE_TARGET="CPU")
    assert f"--damage-config {tmp_path / 'damage.yaml'} --damage-ckpt {tmp_path / 'damage.ckpt'}" in two
    assert "--device-target CPU --port 8123" in two
    missing = subprocess.run(["bash", str(SCRIPTS / "run_damage_cost_app.sh"), "cfg.yaml", "model.ckpt",
                              "price.json"], cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert missing.returncode == 1 and f"{tmp_path / 'cfg.yaml'} does not exist" in missing.stderr


def test_distributed_gpu_launch_names_a_missing_mpirun_or_nccl(tmp_path):
    for name in ("cfg.yaml", "train", "val"):
        (tmp_path / name).mkdir() if name != "cfg.yaml" else (tmp_path / name).touch()
    args = ["bash", str(SCRIPTS / "run_distribute_train_gpu.sh"), "cfg.yaml", "2", "train", "val", "out", "brief"]
    no_mpirun = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=30,
                               env={"PATH": "/usr/bin:/bin", "MPIRUN": str(tmp_path / "no-mpirun")})
    assert no_mpirun.returncode == 1 and f"{tmp_path / 'no-mpirun'} not found: install OpenMPI" in no_mpirun.stderr
    no_nccl = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=30,
                             env={"PATH": "/usr/bin:/bin", "MPIRUN": "true", "LD_LIBRARY_PATH": str(tmp_path)})
    if no_nccl.returncode == 0:
        pytest.skip("this machine has NCCL")
    assert no_nccl.returncode == 1 and "NCCL (libnccl.so) not found" in no_nccl.stderr
    assert not (tmp_path / "LOG").exists()

"""Shared fixtures of the damage_cost tests: a small generated synthetic dataset and a tiny random joint model."""
from __future__ import annotations

from pathlib import Path

import mindspore as ms
import pytest
import yaml

from src.callback import atomic_save_checkpoint
from src.damage_cost.features import PART_NAMES, SEVERITIES
from src.model_utils.config import load_config
from src.model_utils.device_adapter import seed_everything
from src.network_define import build_detector
from src.tools.make_synthetic_car_damage import main as make_synthetic
from tests.conftest import TINY_CONFIG

JOINT_CLASSES = ["background", *PART_NAMES, *SEVERITIES]


@pytest.fixture(scope="module")
def synthetic_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 images of 128x128 (seed 0): parts/, damage/ and claims.csv."""
    out = tmp_path_factory.mktemp("synthetic") / "car_damage"
    make_synthetic(["--out", str(out), "--seed", "0", "--num-images", "12", "--size", "128", "128",
                    "--workers", "1"])
    return out


@pytest.fixture
def tiny_joint_model(tmp_path: Path) -> tuple[Path, Path]:
    """A tiny joint config (parts + severities, 64x64, every candidate kept) and a random checkpoint storing its
    classes: (config path, checkpoint path)."""
    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    config_path = tmp_path / "tiny_joint.yaml"
    config_path.write_text(yaml.safe_dump({
        "_base_": str(TINY_CONFIG), "mode": "pynative", "img_width": 64, "img_height": 64,
        "coco_classes": JOINT_CLASSES, "num_classes": len(JOINT_CLASSES), "test_cfg": {"rcnn": {"score_thr": 0.0}}}))
    cfg = load_config(config_path)
    seed_everything(cfg.seed)
    model, _ = build_detector(cfg)
    checkpoint = atomic_save_checkpoint(model, tmp_path / "joint.ckpt", {"epoch": 1}, cfg.coco_classes)
    return config_path, checkpoint

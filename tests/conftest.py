"""Shared test fixtures: a tiny config and small COCO datasets in tmp dirs (pytest.ini puts the root on sys.path)."""
from __future__ import annotations

from pathlib import Path

import pytest

from src.model_utils.config import Config, load_config
from tests.helpers.coco_fixtures import make_random_dataset

PROJECT_ROOT = Path(__file__).resolve().parents[1]

TINY_CONFIG = PROJECT_ROOT / "configs" / "tiny_parts.yaml"


@pytest.fixture
def tiny_cfg() -> Config:
    """configs/tiny_parts.yaml at 128x128 with one data worker (fast and deterministic in tests)."""
    return load_config(TINY_CONFIG, ["--img_width", "128", "--img_height", "128", "--num_parallel_workers", "1"])


@pytest.fixture
def parts_dataset(tmp_path: Path) -> tuple[Path, dict]:
    """A 6-image model zoo layout subset with the tiny_parts classes: (folder, the COCO dict written)."""
    root = tmp_path / "parts" / "train"
    return root, make_random_dataset(root, num_images=6, seed=1)

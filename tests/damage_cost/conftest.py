"""Shared fixtures of the damage_cost tests: a small generated synthetic dataset and a tiny random joint model."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List

import mindspore as ms
import pandas as pd
import pytest
import yaml
from flask import Flask
from waitress.server import create_server

from src.callback import atomic_save_checkpoint
from src.damage_cost.estimate import build_parser, load_estimator
from src.damage_cost.features import PART_NAMES, SEVERITIES
from src.damage_cost.price_models import GroupMeanPriceModel, save_price_model
from src.damage_cost.web.routes import create_app
from src.damage_cost.web.service import EstimateService, UploadLimits
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


def make_tiny_joint_model(directory: Path) -> tuple[Path, Path]:
    """Write a tiny joint config (parts + severities, 64x64, every candidate kept) and a random checkpoint storing
    its classes into ``directory``: (config path, checkpoint path)."""
    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    config_path = directory / "tiny_joint.yaml"
    config_path.write_text(yaml.safe_dump({
        "_base_": str(TINY_CONFIG), "mode": "pynative", "img_width": 64, "img_height": 64,
        "coco_classes": JOINT_CLASSES, "num_classes": len(JOINT_CLASSES), "test_cfg": {"rcnn": {"score_thr": 0.0}}}))
    cfg = load_config(config_path)
    seed_everything(cfg.seed)
    model, _ = build_detector(cfg)
    checkpoint = atomic_save_checkpoint(model, directory / "joint.ckpt", {"epoch": 1}, cfg.coco_classes)
    return config_path, checkpoint


@pytest.fixture
def tiny_joint_model(tmp_path: Path) -> tuple[Path, Path]:
    """:func:`make_tiny_joint_model` in the test's tmp_path."""
    return make_tiny_joint_model(tmp_path)


@dataclass
class ClaimsServer:
    """A claims app served on a free local port: its address, its service and photos to upload."""

    url: str
    service: EstimateService
    photos: List[Path]


def serve_in_thread(app: Flask) -> tuple[str, "object"]:
    """Start ``app`` on a free port of 127.0.0.1 in a daemon thread: (base URL, waitress server to ``close()``)."""
    server = create_server(app, host="127.0.0.1", port=0, threads=4)
    threading.Thread(target=server.run, daemon=True).start()
    return f"http://127.0.0.1:{server.effective_port}", server


@pytest.fixture(scope="module")
def claims_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClaimsServer]:
    """The app with the tiny joint model (score threshold 0, so random weights still price damages), a group-mean
    price model fitted on a generated claims.csv, and 4 generated 128x128 photos."""
    root = tmp_path_factory.mktemp("claims_app")
    data = root / "synthetic"
    make_synthetic(["--out", str(data), "--seed", "3", "--num-images", "6", "--size", "128", "128",
                    "--workers", "1"])
    price_path = root / "price.json"
    save_price_model(GroupMeanPriceModel().fit(pd.read_csv(data / "claims.csv")), price_path)
    config_path, checkpoint = make_tiny_joint_model(root)
    args = build_parser().parse_args(["--parts-config", str(config_path), "--parts-ckpt", str(checkpoint),
                                      "--price-model", str(price_path), "--score-thr", "0", "--device-target",
                                      "CPU", "--input", "-", "--output", "-"])
    estimator, models = load_estimator(args)
    service = EstimateService(estimator, models, UploadLimits(max_files=4, max_request_mb=1.0))
    url, server = serve_in_thread(create_app(service))
    photos = sorted((data / "parts" / "train" / "data").iterdir())[:4]
    yield ClaimsServer(url, service, photos)
    server.close()

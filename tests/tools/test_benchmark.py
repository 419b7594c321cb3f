"""The benchmark tool: one JSON line, with --peer torchvision the interleaved peer numbers and their ratio, and with
--stages every stage's time (ours, and the peer's with --peer). The peer needs torch and torchvision: without them
its test is skipped, except on CI (``CI=true``), where it fails."""
import importlib.util
import json
import os

import pytest

from src.tools import benchmark
from src.tools.stage_timing import INFER_STAGES, TRAIN_STAGES
from tests.conftest import PROJECT_ROOT, TINY_CONFIG

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


WIDE_TINY = ("--backbone.base_channels", "64", "--neck.fpn.in_channels", "[64, 128, 256, 512]")


def need_torchvision() -> None:
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("torchvision") is None:
        message = "torch and torchvision are needed for --peer torchvision (pip install -r requirements-dev.txt)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.mark.parametrize("mode", ["infer", "train"])
def test_benchmark_against_the_torchvision_peer(mode, capsys):
    need_torchvision()
    result = run_benchmark(capsys, mode, 2, "--peer", "torchvision", "--stages", *WIDE_TINY)
    assert result["mode"] == mode and result["size"] == [128, 128] and result["steps"] == 2
    assert result["peer"] == "torchvision" and result["peer_median_ms"] > 0 and result["median_ms"] > 0
    assert result["ratio"] == pytest.approx(result["median_ms"] / result["peer_median_ms"], abs=1e-3)
    assert_stages(result["peer_stages_ms"], PEER_INFER_STAGES if mode == "infer" else PEER_TRAIN_STAGES, mode)
    assert "stages_ms" in result and result["peer_stages_sum_ms"] > 0


def test_the_peer_refuses_a_backbone_torchvision_cannot_build(capsys):
    assert benchmark.main([str(TINY_CONFIG), "--mode", "infer", "--size", "128", "128", "--steps", "1",
                           "--exec_mode", "pynative", "--peer", "torchvision"]) == 2
    assert "backbone.base_channels is 8" in capsys.readouterr().err


def test_the_peer_refuses_an_fpn_that_skips_a_stage(capsys):
    assert benchmark.main([str(TINY_CONFIG), "--mode", "infer", "--size", "128", "128", "--steps", "1",
                           "--exec_mode", "pynative", "--peer", "torchvision", "--backbone.base_channels", "64",
                           "--backbone.out_indices", "[1, 2, 3]", "--neck.fpn.in_channels", "[128, 256, 512]"]) == 2
    assert "backbone.out_indices is [1, 2, 3]" in capsys.readouterr().err


@pytest.mark.parametrize("config", ["ms_rcnn_r50_caffe_fpn_1x_coco.yaml", "demo_damage_cpu.yaml"])
def test_the_peer_has_the_configs_blocks(config):
    """The peer built from a config has our parameter counts block by block, apart from what the two libraries define
    differently: our BatchNorm layers hold all four values per channel (scale, shift, running mean and variance) as
    parameters, torch's the running statistics as buffers and FrozenBatchNorm2d all four; and torchvision's box regression and mask logits for the background class too (4 x (fc + 1) and
    (mask channels + 1) values)."""
    need_torchvision()
    from src.model_utils.config import load_config
    from src.tools.model_info import block_parameter_counts
    import torch
    from torchvision.ops import FrozenBatchNorm2d

    from src.tools.peer_torchvision_model import build_peer

    cfg = load_config(PROJECT_ROOT / "configs" / config)
    ours = block_parameter_counts(cfg)
    model, mask_iou_head = build_peer(benchmark.peer_architecture(cfg), cfg.img_height, cfg.img_width)

    def count(*modules) -> int:
        return sum(parameter.numel() for module in modules for parameter in module.parameters())

    heads = model.roi_heads
    batch_norms = [module for module in model.backbone.body.modules()
                   if isinstance(module, (torch.nn.BatchNorm2d, FrozenBatchNorm2d))]
    batch_norm_values = sum(4 * module.weight.numel() - count(module) for module in batch_norms)
    assert count(model.backbone.body) + batch_norm_values == ours["backbone"]
    assert count(model.backbone.fpn) == ours["neck"]
    assert count(model.rpn) == ours["rpn"]
    assert count(heads.box_head, heads.box_predictor) == ours["bbox_head"] + 4 * (cfg.bbox_head.fc_out_channels + 1)
    assert count(heads.mask_head, heads.mask_predictor) == ours["mask_head"] + cfg.mask_head.conv_out_channels + 1
    assert count(mask_iou_head) == ours["mask_iou_head"]

"""Config loading: inheritance, command-line overrides, validation errors, no import side effects."""
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from src.model_utils.config import Config, ConfigError, load_config, parse_cli, parse_overrides

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))


def write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("config_path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_loads(config_path):
    cfg = load_config(config_path)
    assert cfg.num_classes == len(cfg.coco_classes)


def test_defaults_are_the_model_zoo_values():
    cfg = load_config()
    assert cfg.lr == 0.02
    assert cfg.train_cfg.rcnn.sampler.num == 512
    assert cfg.mask_iou_head.loss_iou.loss_weight == 0.5
    assert cfg.rpn.anchor_generator.strides == [4, 8, 16, 32, 64]


def test_inheritance_chain_merges_in_order(tmp_path):
    base = write(tmp_path / "base.yaml", {"lr": 0.01, "backbone": {"depth": 101, "base_channels": 64}})
    child = write(tmp_path / "child.yaml", {"_base_": base.name, "lr": 0.005, "backbone": {"frozen_stages": 2}})
    cfg = load_config(child)
    assert cfg.lr == 0.005                      # child wins
    assert cfg.backbone.depth == 101            # inherited from base
    assert cfg.backbone.frozen_stages == 2      # child's nested key
    assert cfg.backbone.style == "caffe"        # untouched default
    assert cfg.train_cfg.rpn.sampler.num == 256


def test_r101_config_inherits_from_r50():
    cfg = load_config(ROOT / "configs" / "ms_rcnn_r101_caffe_fpn_1x_coco.yaml")
    assert cfg.backbone.depth == 101
    assert cfg.device_target == "GPU"  # set by the r50 base, not the default (CPU)


def test_command_line_overrides_nested_and_flat_keys():
    cfg = load_config(overrides=["--train_cfg.rcnn.sampler.num", "256", "--lr=0.01", "--lr_steps", "[3, 5]",
                                 "--brief", "2024"])
    assert cfg.train_cfg.rcnn.sampler.num == 256
    assert cfg.lr == 0.01
    assert cfg.lr_steps == [3, 5]
    assert cfg.brief == "2024"  # a number given to a string key stays a string


def test_mapping_overrides_and_attribute_access():
    cfg = load_config(overrides={"test_cfg.rcnn.score_thr": 0.3})
    assert cfg.test_cfg.rcnn.score_thr == 0.3
    assert cfg["test_cfg"]["rcnn"]["score_thr"] == 0.3
    assert isinstance(cfg.to_dict()["test_cfg"], dict) and not isinstance(cfg.to_dict()["test_cfg"], Config)


def test_parse_overrides_tokens():
    assert parse_overrides(["--a.b", "1", "--c=[1,2]", "--d", "x y"]) == [("a.b", 1), ("c", [1, 2]), ("d", "x y")]
    with pytest.raises(ConfigError, match="has no value"):
        parse_overrides(["--lr"])
    with pytest.raises(ConfigError, match="expected '--key value'"):
        parse_overrides(["lr", "1"])


def test_unknown_key_in_file_names_file_key_and_suggestion(tmp_path):
    path = write(tmp_path / "bad.yaml", {"train_cfg": {"rcnn": {"sampler": {"numm": 3}}}})
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert str(path) in message and "train_cfg.rcnn.sampler.numm" in message and "train_cfg.rcnn.sampler.num" in message


def test_unknown_key_on_command_line():
    with pytest.raises(ConfigError, match="unknown config key 'backbone.deph'.*'backbone.depth'"):
        load_config(overrides=["--backbone.deph", "50"])


def test_numbers_in_exponent_notation_are_numbers():
    cfg = load_config(overrides=["--lr", "1e-3", "--weight_decay", "1E-4", "--epoch_size", "1e1"])
    assert (cfg.lr, cfg.weight_decay, cfg.epoch_size) == (0.001, 0.0001, 10) and isinstance(cfg.epoch_size, int)


@pytest.mark.parametrize("override, pattern", [
    (["--batch_size", "two"], "'batch_size' expects an integer"),
    (["--lr", "fast"], "'lr' expects a number"),
    (["--backbone.norm_eval", "maybe"], "'backbone.norm_eval' expects a boolean"),
    (["--img_mean", "[1, a, 2]"], "'img_mean' expects a list of numbers"),
    (["--neck", "3"], "'neck' expects a mapping"),
])
def test_wrong_types_are_rejected(override, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_config(overrides=override)


@pytest.mark.parametrize("override, pattern", [
    ({"lr": -0.1}, r"'lr' must be > 0, got -0.1"),
    ({"num_classes": 5}, r"'num_classes' must be len\(coco_classes\) = 81, got 5"),
    ({"img_width": 1000}, r"'img_width' must be a positive multiple of divider=64, got 1000"),
    ({"img_height": 96, "divider": 64}, r"'img_height' must be a positive multiple of divider=64"),
    ({"train_cfg.rpn.assigner.neg_iou_thr": 0.8}, r"'train_cfg.rpn.assigner.neg_iou_thr' must be in \[0, "),
    ({"coco_classes": ["person", "car"], "num_classes": 2}, r"'coco_classes' must be a list starting with 'background'"),
    ({"backbone.depth": 51}, r"'backbone.depth' must be one of 18, 34, 50, 101"),
    ({"neck.fpn.in_channels": [256, 512, 1024, 1024]}, r"'neck.fpn.in_channels' must be the backbone's output channels"),
    ({"rpn.anchor_generator.strides": [4, 8, 16, 32]}, r"'rpn.anchor_generator.strides' must be 5 positive strides"),
    ({"opt_type": "rmsprop"}, r"'opt_type' must be 'sgd', 'adam' or 'adamw'"),
    ({"roi.roi_layer.impl": "fast"}, r"'roi.roi_layer.impl' must be 'auto', 'custom' or 'builtin'"),
    ({"flip_ratio": 1.5}, r"'flip_ratio' must be in \[0, 1\]"),
    ({"crop_height": 512}, r"'crop_width' must be 0 together with crop_height, or a positive multiple of divider=64"),
    ({"crop_height": 2048, "crop_width": 512}, r"'crop_height' must be .* <= img_height, got 2048"),
    ({"crop_height": 500, "crop_width": 512}, r"'crop_height' must be .*multiple of divider=64 <= img_height, got 500"),
    ({"crop_min_visible": 0.0}, r"'crop_min_visible' must be in \(0, 1\]"),
    ({"crop_scale_range": [0.8, 1.25]}, r"'crop_scale_range' must be .*\[1.0, 1.0\] without crops"),
    ({"crop_height": 256, "crop_width": 256, "crop_scale_range": [1.25, 0.8]},
     r"'crop_scale_range' must be \[low, high\] with 0 < low <= high"),
    ({"crop_background_fraction": 0.25}, r"'crop_background_fraction' must be in \[0, 1\], and 0 without crops"),
    ({"crop_height": 256, "crop_width": 256, "crop_background_fraction": 1.5},
     r"'crop_background_fraction' must be in \[0, 1\], and 0 without crops"),
    ({"crop_height": 512, "crop_width": 256, "crop_rotate90": True},
     r"'crop_rotate90' must be False unless crop_height == crop_width"),
    ({"roi.scale_factor": 0.0}, r"'roi.scale_factor' must be > 0 \(1 = the RoI itself\)"),
    ({"keep_ratio": 2}, r"'keep_ratio' must be 0 or 1, got 2"),
    ({"run_eval": 5}, r"'run_eval' must be 0 or 1, got 5"),
    ({"divergence_guard.lr_factor": 1.0}, r"'divergence_guard.lr_factor' must be in \(0, 1\)"),
    ({"resize_rule": "shortest"}, r"'resize_rule' must be 'fit' or 'short_long', got 'shortest'"),
    ({"resize_rule": "short_long", "keep_ratio": 0}, r"'keep_ratio' must be 1 with resize_rule 'short_long'"),
    ({"resize_rule": "short_long"},
     r"'img_height' must be >= resize_long_side \(1333\) so that the canvas holds every image resized by "
     r"'short_long' in either orientation: img_height: 1344, img_width: 1344 \(multiples of divider=64\), got 1024"),
    ({"resize_rule": "short_long", "img_height": 1344}, r"'img_width' must be >= resize_long_side \(1333\)"),
    ({"test_cfg.rcnn.max_candidates": 50}, r"'test_cfg.rcnn.max_candidates' must be 0 \(roi.sample_num\) or >= "
     r"test_cfg.rcnn.max_per_img \(100\), got 50"),
    ({"test_cfg.rcnn.min_bbox_size": -1.0}, r"'test_cfg.rcnn.min_bbox_size' must be >= 0"),
    ({"neck.fpn.norm_groups": 24}, r"'neck.fpn.norm_groups' must be 0 \(none\) or a positive divisor of "
     r"neck.fpn.out_channels = 256, got 24"),
    ({"mask_head.norm_groups": -1}, r"'mask_head.norm_groups' must be 0 \(none\) or a positive divisor of "
     r"mask_head.conv_out_channels = 256, got -1"),
    ({"test_cfg.rcnn.mask_paste": "detectron2"},
     r"'test_cfg.rcnn.mask_paste' must be 'box', 'subpixel' or 'torchvision'"),
])
def test_impossible_values_are_rejected(override, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_config(overrides=override)


def test_short_long_resize_on_a_canvas_that_holds_it():
    cfg = load_config(overrides={"resize_rule": "short_long", "resize_short_side": 600, "resize_long_side": 1000,
                                 "img_height": 1024, "img_width": 1024})
    assert (cfg.resize_rule, cfg.resize_short_side, cfg.resize_long_side) == ("short_long", 600, 1000)


def test_valid_custom_class_list():
    cfg = load_config(overrides={"coco_classes": ["background", "scratch"], "num_classes": 2})
    assert cfg.coco_classes == ["background", "scratch"]


def test_file_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("lr: [0.1,\n")
    with pytest.raises(ConfigError, match=f"{broken}: malformed YAML"):
        load_config(broken)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("3\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(scalar)


def test_circular_base_is_reported(tmp_path):
    write(tmp_path / "a.yaml", {"_base_": "b.yaml"})
    write(tmp_path / "b.yaml", {"_base_": "a.yaml"})
    with pytest.raises(ConfigError, match="circular '_base_' chain"):
        load_config(tmp_path / "a.yaml")


def test_parse_cli_reads_config_path_and_overrides(tmp_path):
    path = write(tmp_path / "c.yaml", {"lr": 0.004})
    cfg = parse_cli(["--config_path", str(path), "--epoch_size", "3"])
    assert cfg.lr == 0.004 and cfg.epoch_size == 3


def test_parse_cli_exits_with_message_on_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_cli(["--lr", "-1"])
    assert exit_info.value.code == 2
    assert "'lr' must be > 0" in capsys.readouterr().err


def test_import_has_no_side_effects():
    code = ("import sys; sys.argv = ['prog', '--definitely-not-a-key', 'x']; "
            "import src.model_utils.config as c; print('imported', c.DEFAULT_CONFIG_PATH.name)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert "imported default_config.yaml" in result.stdout

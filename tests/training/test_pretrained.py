"""Starting from pretrained weights: one summary line, clear errors instead of half-loaded models, frozen random
backbones refused, and the linear learning-rate scaling rule."""
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor

import train as train_module
from src.blocks.ms_rcnn import MsRcnn
from src.model_utils.config import Config, load_config
from src.training.pretrained import check_backbone_start, load_pretrained
from tests.conftest import PROJECT_ROOT, TINY_CONFIG
from tests.helpers.toy_detector import make_cfg


def backbone_checkpoint(path: Path, cfg: Config, seed: int = 0) -> dict:
    """A backbone-only checkpoint (names without ``backbone.``, as convert_weights writes them) of random values."""
    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    rng = np.random.default_rng(seed)
    values = {parameter.name[len("backbone."):]: rng.standard_normal(parameter.shape).astype(np.float32)
              for parameter in MsRcnn(cfg).get_parameters() if parameter.name.startswith("backbone.")}
    ms.save_checkpoint([{"name": name, "data": Tensor(value)} for name, value in values.items()], str(path))
    return values


def test_backbone_pretrained_loads_every_backbone_parameter_with_one_summary_line(tmp_path: Path):
    cfg = load_config(TINY_CONFIG)
    values = backbone_checkpoint(tmp_path / "backbone.ckpt", cfg)
    model = MsRcnn(cfg)
    summary = load_pretrained(model, str(tmp_path / "backbone.ckpt"), "backbone.pretrained", True)
    assert f"loaded {len(values)} of {len(values)} backbone parameters; missing 0" in summary
    params = {parameter.name: parameter for parameter in model.get_parameters()}
    assert np.array_equal(params["backbone.stages.1.0.conv2.conv.weight"].asnumpy(),
                          values["stages.1.0.conv2.conv.weight"])


def test_files_that_match_nothing_or_too_little_are_refused(tmp_path: Path):
    cfg = load_config(TINY_CONFIG)
    model = MsRcnn(cfg)
    with pytest.raises(FileNotFoundError, match="backbone.pretrained: no checkpoint at"):
        load_pretrained(model, str(tmp_path / "missing.ckpt"), "backbone.pretrained", True)
    ms.save_checkpoint([{"name": "fc.weight", "data": Tensor(np.zeros((2, 2), np.float32))}],
                       str(tmp_path / "other.ckpt"))
    with pytest.raises(ValueError, match="loaded 0 of .* Nothing matched"):
        load_pretrained(model, str(tmp_path / "other.ckpt"), "pre_trained", False)
    values = backbone_checkpoint(tmp_path / "backbone.ckpt", cfg)
    ms.save_checkpoint([{"name": name, "data": Tensor(value)} for name, value in list(values.items())[:10]],
                       str(tmp_path / "partial.ckpt"))
    with pytest.raises(ValueError, match=r"loaded 10 of \d+ backbone parameters.*Less than 90%"):
        load_pretrained(model, str(tmp_path / "partial.ckpt"), "backbone.pretrained", True)
    deeper = load_config(TINY_CONFIG, {"backbone.depth": 34})
    backbone_checkpoint(tmp_path / "r34.ckpt", deeper)
    with pytest.raises(ValueError, match=r"parameters have no place in this model .*another architecture"):
        load_pretrained(model, str(tmp_path / "r34.ckpt"), "backbone.pretrained", True)
    wider = load_config(TINY_CONFIG, {"backbone.base_channels": 16, "neck.fpn.in_channels": [16, 32, 64, 128]})
    backbone_checkpoint(tmp_path / "wide.ckpt", wider)
    with pytest.raises(ValueError, match="have another shape than the model"):
        load_pretrained(model, str(tmp_path / "wide.ckpt"), "backbone.pretrained", True)


def test_frozen_random_backbones_are_refused_unless_meant():
    coco = load_config(PROJECT_ROOT / "configs" / "ms_rcnn_r50_caffe_fpn_1x_coco.yaml", {"backbone.pretrained": ""})
    with pytest.raises(ValueError, match=r"frozen_stages: 1 and norm_eval: True would keep random weights frozen"):
        check_backbone_start(coco)
    check_backbone_start(load_config(PROJECT_ROOT / "configs" / "ms_rcnn_r50_caffe_fpn_1x_coco.yaml",
                                     {"backbone.pretrained": "", "backbone.allow_frozen_random_init": True}))
    check_backbone_start(load_config(PROJECT_ROOT / "configs" / "ms_rcnn_r50_caffe_fpn_1x_coco.yaml"))
    check_backbone_start(load_config(TINY_CONFIG))  # trains every stage and BatchNorm


def test_linear_scaling_rule():
    cfg = load_config(overrides={"auto_scale_lr.enable": True, "lr": 0.02, "batch_size": 2, "accumulate_step": 2})
    train_module.scale_lr_by_batch(cfg)
    assert cfg.lr == pytest.approx(0.02 * 4 / 16) and cfg.auto_scale_lr.lr_at_base == 0.02
    unchanged = load_config(overrides={"lr": 0.02})
    train_module.scale_lr_by_batch(unchanged)
    assert unchanged.lr == 0.02


def test_training_from_a_converted_backbone_reports_it(tiny_cfg: Config, tmp_path: Path, parts_dataset):
    data_dir, _ = parts_dataset
    backbone_checkpoint(tmp_path / "backbone.ckpt", tiny_cfg)
    values = tiny_cfg.to_dict()
    values["backbone"]["pretrained"] = str(tmp_path / "backbone.ckpt")
    cfg = make_cfg(Config.from_dict(values), tmp_path, data_dir, epoch_size=1, run_eval=0, mode="pynative")
    exp_dir = train_module.train(cfg)
    log = (exp_dir / "train.log").read_text()
    assert f"backbone.pretrained {tmp_path / 'backbone.ckpt'}: loaded" in log and "backbone parameters; missing 0;" in log
    assert "Learning rate 0.05 for 2 images per update (1 device(s) x 2 x 1 accumulation)" in log

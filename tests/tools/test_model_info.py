"""model_info: the model zoo's parameter count for the R-50 config and a per-block breakdown that adds up."""
import numpy as np
import mindspore as ms

from src.tools import model_info

MODEL_ZOO_COUNT = 60789760


def test_r50_count_matches_model_zoo(capsys):
    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    assert model_info.main(["configs/ms_rcnn_r50_caffe_fpn_1x_coco.yaml"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == f"Number of parameters: {MODEL_ZOO_COUNT}"
    breakdown = {line.split()[0]: int(line.split()[1]) for line in lines[1:]}
    assert list(breakdown) == ["backbone", "neck", "rpn", "bbox_head", "mask_head", "mask_iou_head"]
    assert sum(breakdown.values()) == MODEL_ZOO_COUNT
    # independent counts: FPN = laterals (C_in*256 + 256) + 4 3x3 convs; RPN = 3x3 conv + 3 cls + 12 reg outputs
    assert breakdown["neck"] == sum(c * 256 + 256 for c in (256, 512, 1024, 2048)) + 4 * (256 * 256 * 9 + 256)
    assert breakdown["rpn"] == (256 * 256 * 9 + 256) + (256 * 3 + 3) + (256 * 12 + 12)


def test_every_parameter_belongs_to_a_block(tiny_cfg):
    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    from src.blocks.ms_rcnn import MsRcnn

    model = MsRcnn(tiny_cfg)
    total = sum(int(np.prod(parameter.shape)) for parameter in model.get_parameters())
    assert sum(model_info.block_parameter_counts(tiny_cfg).values()) == total

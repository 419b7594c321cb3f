"""Numerical parity with torchvision: a ``maskrcnn_resnet50_fpn`` with random weights and non-trivial FrozenBatchNorm
statistics, saved, converted by ``convert_weights --from torchvision-maskrcnn`` and loaded, gives on the same
normalised image the same ResNet stage outputs, FPN outputs, RPN objectness and deltas, and for the same RoIs the same
box-head class scores and deltas and mask logits (the 91 category slots mapped to the 80 classes).

Tolerance (float32): ``|ours - torchvision| <= 1e-4 * max|torchvision| + 1e-3 * |torchvision|`` per output. Needs
torch and torchvision (requirements-dev.txt); the reference runs in its own process. Without torch the test is
skipped, except on CI (``CI=true``), where it fails.
"""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor

from src.blocks.ms_rcnn import MsRcnn
from src.converters.torchvision_keys import COCO_CATEGORY_IDS
from src.model_utils.config import load_config
from src.network_define import load_weights
from src.tools import convert_weights
from tests.conftest import PROJECT_ROOT

R50_CONFIG = PROJECT_ROOT / "configs" / "ms_rcnn_r50_caffe_fpn_1x_coco.yaml"
TORCHVISION_SETTINGS = {"backbone.style": "pytorch", "backbone.pretrained": "", "img_height": 256, "img_width": 320,
                        "roi.roi_layer.sampling_ratio": 2, "roi.roi_layer.aligned": False,
                        "mask_roi.roi_layer.sampling_ratio": 2, "mask_roi.roi_layer.aligned": False}


def assert_close(ours: np.ndarray, reference: np.ndarray, what: str) -> None:
    assert ours.shape == reference.shape, f"{what}: shape {ours.shape} vs {reference.shape}"
    np.testing.assert_allclose(ours, reference, rtol=1e-3, atol=1e-4 * float(np.abs(reference).max()),
                               err_msg=what)


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory):
    """(reference arrays, our model loaded with the converted weights)."""
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("torchvision") is None:
        message = "torch and torchvision are needed (pip install -r requirements-dev.txt)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    out = tmp_path_factory.mktemp("torchvision")
    subprocess.run([sys.executable, str(PROJECT_ROOT / "tests" / "helpers" / "torchvision_reference.py"), str(out)],
                   check=True, timeout=600)
    assert convert_weights.main(["--from", "torchvision-maskrcnn", str(out / "maskrcnn.pth"), "--out",
                                 str(out / "maskrcnn.ckpt"), "--config", str(R50_CONFIG)]) == 0
    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    model = MsRcnn(load_config(R50_CONFIG, TORCHVISION_SETTINGS))
    missing, skipped = load_weights(model, ms.load_checkpoint(str(out / "maskrcnn.ckpt")))
    assert skipped == [] and all(name.startswith("mask_iou_head.") for name in missing)
    model.set_train(False)
    return dict(np.load(out / "reference.npz")), model


def test_backbone_fpn_and_rpn_match(converted):
    reference, model = converted
    stages = model.backbone(Tensor(reference["x"]))
    for index, value in enumerate(stages):
        assert_close(value.asnumpy()[0], reference[f"c{index + 2}"], f"C{index + 2}")
    features = model.neck(stages)
    for index, value in enumerate(features):
        assert_close(value.asnumpy()[0], reference[f"p{index + 2}"], f"P{index + 2}")
    objectness, deltas = (value.asnumpy()[0] for value in model.rpn_head(features))
    expected_objectness = np.concatenate([reference[f"objectness{level}"].transpose(1, 2, 0).reshape(-1)
                                          for level in range(5)])
    expected_deltas = np.concatenate([
        reference[f"deltas{level}"].reshape(3, 4, *reference[f"deltas{level}"].shape[1:]).transpose(2, 3, 0, 1)
        .reshape(-1, 4) for level in range(5)])
    assert_close(objectness, expected_objectness, "RPN objectness")
    assert_close(deltas, expected_deltas, "RPN deltas")


def test_box_and_mask_heads_match_on_the_same_rois(converted):
    reference, model = converted
    features = model.neck(model.backbone(Tensor(reference["x"])))
    rois = np.concatenate([np.zeros((len(reference["rois"]), 1), np.float32), reference["rois"]], axis=1)
    class_logits, box_deltas = (value.asnumpy() for value in model.bbox_head(
        model.bbox_roi_extractor(features[:4], Tensor(rois))))
    slots = [0] + COCO_CATEGORY_IDS
    assert_close(class_logits, reference["class_logits"][:, slots], "class scores")
    expected_deltas = reference["box_regression"].reshape(len(rois), 91, 4)[:, COCO_CATEGORY_IDS].reshape(len(rois), -1)
    assert_close(box_deltas, expected_deltas, "box deltas")
    mask_logits = model.mask_head(model.mask_roi_extractor(features[:4], Tensor(rois))).asnumpy()
    assert_close(mask_logits, reference["mask_logits"][:, COCO_CATEGORY_IDS], "mask logits")

"""Numerical parity with torchvision: a ``maskrcnn_resnet50_fpn`` with random weights and non-trivial FrozenBatchNorm
statistics (tests/helpers/torchvision_reference.py), saved, converted by ``convert_weights --from torchvision-maskrcnn``
with ``configs/maskrcnn_r50_fpn_torchvision_coco.yaml`` and loaded into that config's model (its canvas and resize
sides shrunk to the reference's 256 x 320 input) gives:

* on the same normalised image, the same ResNet stage outputs, FPN outputs, RPN objectness and deltas, and for the
  same RoIs the same box-head class scores and deltas and mask logits (the 91 category slots mapped to the 80
  classes);
* on the input tensor torchvision's transform makes of a 200 x 250 image (fed to both, so that resizing
  interpolation is out of the comparison): the same anchors, the same 1000 proposals with the same scores in the
  same order (except that neighbours whose scores are equal within 1e-6, float noise of the objectness logits, may
  swap places; 3 pairs do here, at most 10 proposals may move), and the same final detections (torchvision's
  classifier with its 10 unused category slots silenced, see the helper): boxes, scores, labels and 28 x 28 mask
  probabilities in input pixels and, after :func:`src.eval_utils.postprocess_image` / torchvision's
  ``transform.postprocess``, boxes in original pixels and the pasted binary masks (``mask_paste: 'torchvision'``;
  torchvision's pasted probabilities thresholded at > 0.5), which may differ on at most 1 pixel or 0.1 % of the
  union of each pair of masks (a pixel whose interpolated probability is within float noise of the threshold may
  flip; none does here);
* the resize rule 'short_long' gives the sizes of torchvision's ``GeneralizedRCNNTransform(800, 1333)`` for images of
  both orientations, and img_meta's scale factors map a box back as its postprocess does.

Tolerance (float32): ``|ours - torchvision| <= 1e-4 * max|torchvision| + 1e-3 * |torchvision|`` per output. Needs
torch and torchvision (requirements-dev.txt); the reference runs in its own process. Without torch the test is
skipped, except on CI (``CI=true``), where it fails.
"""
import importlib.util
import os
import subprocess
import sys

import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor

from src.blocks.ms_rcnn import MsRcnn, MsRcnnInfer
from src.converters.torchvision_keys import COCO_CATEGORY_IDS
from src.data.transforms import TransformParams, image_meta, rescale_size
from src.eval_utils import boxes_to_original, postprocess_image
from src.model_utils.config import load_config
from src.network_define import load_weights
from src.tools import convert_weights
from tests.conftest import PROJECT_ROOT

TORCHVISION_CONFIG = PROJECT_ROOT / "configs" / "maskrcnn_r50_fpn_torchvision_coco.yaml"
# the reference model's transform: min_size 256, max_size 320; the canvas must hold both orientations
SMALL_INPUT = {"img_height": 320, "img_width": 320, "resize_short_side": 256, "resize_long_side": 320}
MAX_MASK_DISAGREEMENT = 1e-3


def assert_close(ours: np.ndarray, reference: np.ndarray, what: str) -> None:
    assert ours.shape == reference.shape, f"{what}: shape {ours.shape} vs {reference.shape}"
    np.testing.assert_allclose(ours, reference, rtol=1e-3, atol=1e-4 * float(np.abs(reference).max()),
                               err_msg=what)


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory):
    """(reference arrays, the config, our model loaded with the converted weights)."""
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("torchvision") is None:
        message = "torch and torchvision are needed (pip install -r requirements-dev.txt)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    out = tmp_path_factory.mktemp("torchvision")
    subprocess.run([sys.executable, str(PROJECT_ROOT / "tests" / "helpers" / "torchvision_reference.py"), str(out)],
                   check=True, timeout=600)
    assert convert_weights.main(["--from", "torchvision-maskrcnn", str(out / "maskrcnn.pth"), "--out",
                                 str(out / "maskrcnn.ckpt"), "--config", str(TORCHVISION_CONFIG)]) == 0
    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    cfg = load_config(TORCHVISION_CONFIG, SMALL_INPUT)
    model = MsRcnn(cfg)
    missing, skipped = load_weights(model, ms.load_checkpoint(str(out / "maskrcnn.ckpt")))
    assert skipped == [] and all(name.startswith("mask_iou_head.") for name in missing)
    model.set_train(False)
    return dict(np.load(out / "reference.npz")), cfg, model


@pytest.fixture(scope="module")
def inference(converted):
    """Our outputs on torchvision's input tensor: (img_meta, anchors, (proposals, scores, valids), detections of
    MsRcnnInfer as numpy arrays without the batch axis)."""
    reference, cfg, model = converted
    orig_h, orig_w = reference["image"].shape[1:]
    meta = image_meta(orig_h, orig_w, *TransformParams.from_config(cfg).scaled_size(orig_h, orig_w))
    img = Tensor(reference["image_tensor"])
    infer = MsRcnnInfer(model, img_shape=reference["image_tensor"].shape[2:])
    infer.set_train(False)
    anchors = np.concatenate(model.rpn_head.anchors_for(reference["image_tensor"].shape[2:]))
    rpn_cls, rpn_reg = model.rpn_head(model.features(img))
    proposals = [value.asnumpy()[0] for value in infer.test_proposals(rpn_cls, rpn_reg, Tensor(meta[None]))]
    detections = [value.asnumpy()[0] for value in infer(img, Tensor(meta[None]))]
    return meta, anchors, proposals, detections


def test_backbone_fpn_and_rpn_match(converted):
    reference, _, model = converted
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
    reference, _, model = converted
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


def test_resize_rule_and_scale_factors_match_torchvision(converted):
    reference = converted[0]
    for (orig_h, orig_w), expected, box in zip(reference["resize_in"], reference["resize_out"],
                                               reference["resize_box"]):
        scaled = rescale_size(int(orig_h), int(orig_w), 1344, 1344, True, "short_long", 800, 1333)
        assert scaled == tuple(expected), f"{orig_h}x{orig_w}: {scaled} vs torchvision {tuple(expected)}"
        back = boxes_to_original(reference["resize_box_in"][None], image_meta(orig_h, orig_w, *scaled))
        assert_close(back[0], box, f"box mapped back from {scaled} to {orig_h}x{orig_w}")


def test_anchors_and_proposals_match(converted, inference):
    reference, _, _ = converted
    meta, anchors, (proposals, scores, valids), _ = inference
    assert tuple(meta[2:4]) == tuple(reference["image_size"])
    np.testing.assert_array_equal(anchors, reference["anchors"], err_msg="anchors (rounded base anchors)")
    expected, expected_scores = reference["proposals"], reference["proposal_scores"]
    assert valids.sum() == len(expected) == 1000
    proposals, scores = proposals[valids], scores[valids]
    # The same boxes with the same scores in the same order, except where two scores are equal up to float noise
    # (the objectness logits of the two frameworks differ by ~1e-6 relative): such neighbours may swap places.
    distances = np.abs(proposals[:, None, :] - expected[None, :, :]).max(axis=2)
    match = distances.argmin(axis=1)
    assert sorted(match.tolist()) == list(range(len(expected))), "not the same set of proposals"
    assert_close(proposals, expected[match], "proposals")
    assert_close(scores, expected_scores[match], "proposal scores")
    moved = np.flatnonzero(match != np.arange(len(match)))
    assert np.all(np.abs(expected_scores[match[moved]] - expected_scores[moved]) <= 1e-6), \
        f"proposals {moved.tolist()} are out of torchvision's order without a tie"
    assert len(moved) <= 10, f"{len(moved)} proposals out of torchvision's order"


def test_detections_and_pasted_masks_match(converted, inference):
    reference, cfg, _ = converted
    meta, _, _, (boxes, labels, scores, mask_probs, mask_ious, valids) = inference
    pair_scores, det_scores = reference["pair_scores"], reference["det_scores"]
    max_candidates = cfg.test_cfg.rcnn.max_candidates
    # torchvision sends every pair above the score threshold to NMS, ours the max_candidates best: the same result
    # when all pairs fit or when every torchvision detection is among those candidates
    assert len(pair_scores) <= max_candidates or det_scores[-1] > pair_scores[max_candidates - 1]
    count = int(valids.sum())
    assert count == len(det_scores) > 50
    slots = [0] + COCO_CATEGORY_IDS
    assert [slots[label] for label in labels[:count]] == reference["det_labels"].tolist()
    assert_close(scores[:count], det_scores, "detection scores")
    assert_close(boxes[:count], reference["det_boxes"], "detection boxes (input pixels)")
    assert_close(mask_probs[:count], reference["det_masks"], "mask probabilities (28 x 28)")

    detections = postprocess_image(boxes, labels, scores, mask_probs, mask_ious, valids, meta,
                                   cfg.test_cfg.rcnn.mask_thr_binary, cfg.test_cfg.rcnn.mask_paste)
    assert_close(np.array([detection["box"] for detection in detections]), reference["orig_boxes"],
                 "detection boxes (original pixels)")
    non_empty = 0
    for index, (detection, expected) in enumerate(zip(detections, reference["orig_masks"] > 0.5)):
        mask = np.asarray(detection["mask"], dtype=bool)
        union = np.logical_or(mask, expected).sum()
        differing = np.logical_xor(mask, expected).sum()
        assert differing <= max(1, MAX_MASK_DISAGREEMENT * union), \
            f"detection {index}: pasted masks differ on {differing} of {union} pixels"
        non_empty += int(union > 0)
    assert non_empty >= 0.9 * count

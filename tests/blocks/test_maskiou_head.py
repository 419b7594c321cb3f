"""MaskIoUHead: forward against NumPy, hand-computed IoU targets, L2 loss, zero positives, parameter count."""
from pathlib import Path

import numpy as np
import pytest
import mindspore as ms
from mindspore import Tensor, nn

from src.blocks.bbox_heads import Shared2FCBBoxHead
from src.blocks.mask_heads import FCNMaskHead, MaskIoUHead
from src.model_utils.config import Config, load_config

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
NUM_CLASSES = 4


def head_cfg(num_convs=2, num_fcs=2, roi_feat_size=14):
    return Config.from_dict({"num_convs": num_convs, "num_fcs": num_fcs, "roi_feat_size": roi_feat_size,
                             "in_channels": 3, "conv_out_channels": 4, "fc_out_channels": 8,
                             "loss_iou": {"loss_weight": 0.5}})


class HeadWithLoss(nn.Cell):
    def __init__(self, head):
        super().__init__()
        self.head = head

    def construct(self, mask_feats, mask_prob, mask_targets, area_ratio, labels, weights):
        mask_iou_pred = self.head(mask_feats, mask_prob)
        iou_targets = self.head.get_targets(mask_prob[:, 0], mask_targets, area_ratio, 0.5)
        return mask_iou_pred, iou_targets, self.head.loss(mask_iou_pred, iou_targets, labels, weights)


def numpy_conv3x3(inputs, weight, bias, stride):
    padded = np.pad(inputs, ((0, 0), (1, 1), (1, 1)))
    out_size = (inputs.shape[1] - 1) // stride + 1
    output = np.zeros((weight.shape[0], out_size, out_size))
    for row in range(out_size):
        for col in range(out_size):
            window = padded[:, row * stride:row * stride + 3, col * stride:col * stride + 3]
            output[:, row, col] = np.einsum("cyx,ocyx->o", window, weight) + bias
    return output


def test_forward_matches_numpy_with_one_strided_conv():
    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    head = MaskIoUHead(head_cfg(num_convs=1, num_fcs=0, roi_feat_size=4), NUM_CLASSES)
    rng = np.random.default_rng(5)
    mask_feats = rng.normal(size=(1, 3, 4, 4)).astype(np.float32)
    mask_prob = rng.uniform(size=(1, 1, 8, 8)).astype(np.float32)
    output = head(Tensor(mask_feats), Tensor(mask_prob)).asnumpy()
    pooled = mask_prob[0, 0].reshape(4, 2, 4, 2).max(axis=(1, 3))
    stacked = np.concatenate((mask_feats[0], pooled[None]), axis=0)
    conv = head.convs[0]
    hidden = np.maximum(numpy_conv3x3(stacked, conv.weight.asnumpy(), conv.bias.asnumpy(), 2), 0)
    assert hidden.shape == (4, 2, 2)
    expected = hidden.reshape(-1) @ head.fc_mask_iou.weight.asnumpy().T + head.fc_mask_iou.bias.asnumpy()
    assert output.shape == (1, NUM_CLASSES - 1)
    np.testing.assert_allclose(output[0], expected, rtol=1e-4, atol=1e-6)


def test_targets_hand_computed():
    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    head = MaskIoUHead(head_cfg(), NUM_CLASSES)
    mask_prob = np.zeros((4, 4, 4), np.float32)
    mask_targets = np.zeros((4, 4, 4), np.float32)
    # RoI 0: predicted 2x2 block top-left (area 4), gt = top row (4 px) which is half of the instance:
    # overlap 2, gt area 4 / 0.5 = 8 -> IoU 2 / (4 + 8 - 2) = 0.2
    mask_prob[0, :2, :2] = 0.9
    mask_targets[0, 0, :] = 1
    # RoI 1: prediction equals the gt, all of the instance inside the RoI -> 1
    mask_prob[1, 1:3, 1:3] = 0.8
    mask_targets[1, 1:3, 1:3] = 1
    # RoI 2: probability exactly at the threshold is not foreground -> overlap 0 -> 0
    mask_prob[2] = 0.5
    mask_targets[2, 0, :2] = 1
    # RoI 3: padding (empty everything, area_ratio 0) -> 0, not NaN
    area_ratio = np.array([0.5, 1.0, 1.0, 0.0], np.float32)
    targets = head.get_targets(Tensor(mask_prob), Tensor(mask_targets), Tensor(area_ratio), 0.5).asnumpy()
    np.testing.assert_allclose(targets, [0.2, 1.0, 0.0, 0.0], rtol=1e-6)


@pytest.mark.parametrize("mode", [ms.GRAPH_MODE, ms.PYNATIVE_MODE], ids=["graph", "pynative"])
def test_loss_is_l2_on_gt_class_of_valid_positives(mode):
    ms.set_context(mode=mode, device_target="CPU")
    rng = np.random.default_rng(6)
    mask_feats = rng.normal(size=(3, 3, 14, 14)).astype(np.float32)
    mask_prob = rng.uniform(size=(3, 1, 28, 28)).astype(np.float32)
    mask_targets = (rng.uniform(size=(3, 28, 28)) > 0.5).astype(np.float32)
    area_ratio = np.array([0.8, 1.0, 0.0], np.float32)
    labels = np.array([2, 3, 0], np.int32)
    weights = np.array([1, 1, 0], np.float32)
    head = MaskIoUHead(head_cfg(), NUM_CLASSES)
    head.fc_mask_iou.weight.set_data(Tensor(rng.normal(size=head.fc_mask_iou.weight.shape).astype(np.float32)))
    mask_iou_pred, iou_targets, loss = HeadWithLoss(head)(
        Tensor(mask_feats), Tensor(mask_prob), Tensor(mask_targets), Tensor(area_ratio), Tensor(labels),
        Tensor(weights))
    mask_iou_pred = mask_iou_pred.asnumpy()
    assert mask_iou_pred.shape == (3, NUM_CLASSES - 1)
    binary = mask_prob[:2, 0] > 0.5
    overlap = (binary * mask_targets[:2]).sum(axis=(1, 2))
    union = binary.sum(axis=(1, 2)) + mask_targets[:2].sum(axis=(1, 2)) / area_ratio[:2] - overlap
    np.testing.assert_allclose(iou_targets.asnumpy()[:2], overlap / union, rtol=1e-5)
    errors = np.abs([mask_iou_pred[0, 1] - overlap[0] / union[0], mask_iou_pred[1, 2] - overlap[1] / union[1]])
    expected = np.where(errors <= 1.0, errors ** 2, 2 * errors - 1).sum()
    assert float(loss) == pytest.approx(expected / 2 * 0.5, rel=1e-5)


def test_zero_positives_give_zero_loss():
    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    head = MaskIoUHead(head_cfg(), NUM_CLASSES)
    loss = head.loss(Tensor(np.ones((2, 3), np.float32)), Tensor(np.full(2, np.nan, np.float32)),
                     Tensor(np.array([0, 0], np.int32)), Tensor(np.zeros(2, np.float32)))
    assert float(loss) == 0.0


def test_parameter_count_of_coco_config():
    cfg = load_config(CONFIG_DIR / "ms_rcnn_r50_caffe_fpn_1x_coco.yaml")
    head = MaskIoUHead(cfg.mask_iou_head, cfg.num_classes)
    count = sum(parameter.size for parameter in head.get_parameters())
    expected = ((257 * 256 * 9 + 256) + 3 * (256 * 256 * 9 + 256) + (256 * 7 * 7 * 1024 + 1024)
                + (1024 * 1024 + 1024) + (1024 * 80 + 80))
    assert count == expected == 16_340_304


def test_loss_gradient_reaches_only_the_gt_class_prediction():
    ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")
    head = MaskIoUHead(head_cfg(), NUM_CLASSES)
    prediction = np.array([[0.1, 0.7, 0.3], [0.5, 0.2, 0.9]], np.float32)
    targets = np.array([0.4, 0.6], np.float32)
    labels = np.array([2, 3], np.int32)
    grad_pred, grad_targets = ms.grad(head.loss, grad_position=(0, 1))(
        Tensor(prediction), Tensor(targets), Tensor(labels), Tensor(np.ones(2, np.float32)))
    expected = np.zeros_like(prediction)
    expected[0, 1] = 2 * (0.7 - 0.4) / 2 * 0.5
    expected[1, 2] = 2 * (0.9 - 0.6) / 2 * 0.5
    np.testing.assert_allclose(grad_pred.asnumpy(), expected, rtol=1e-5)
    assert np.all(grad_targets.asnumpy() == 0)


def test_loss_is_linear_beyond_an_error_of_one():
    ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")
    head = MaskIoUHead(head_cfg(), NUM_CLASSES)
    prediction = np.array([[0.0, 3.0, 0.0], [0.0, 0.0, -1e6]], np.float32)
    targets = np.array([0.5, 0.25], np.float32)
    labels = np.array([2, 3], np.int32)
    arguments = (Tensor(prediction), Tensor(targets), Tensor(labels), Tensor(np.ones(2, np.float32)))
    loss = float(head.loss(*arguments))
    assert loss == pytest.approx(((2 * 2.5 - 1) + (2 * (1e6 + 0.25) - 1)) / 2 * 0.5, rel=1e-6)
    gradient = ms.grad(head.loss, grad_position=0)(*arguments).asnumpy()
    np.testing.assert_allclose(gradient[[0, 1], [1, 2]], [2 / 2 * 0.5, -2 / 2 * 0.5], rtol=1e-6)


def test_parameter_count_of_all_second_stage_heads():
    cfg = load_config(CONFIG_DIR / "ms_rcnn_r50_caffe_fpn_1x_coco.yaml")
    heads = (Shared2FCBBoxHead(cfg.bbox_head, cfg.num_classes), FCNMaskHead(cfg.mask_head, cfg.num_classes),
             MaskIoUHead(cfg.mask_iou_head, cfg.num_classes))
    total = sum(parameter.size for head in heads for parameter in head.get_parameters())
    assert total == 14_306_705 + 2_643_280 + 16_340_304 == 33_290_289

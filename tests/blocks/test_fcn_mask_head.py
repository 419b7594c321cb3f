"""FCNMaskHead: output shape, forward against NumPy, BCE loss on the gt channel, zero positives, parameter count."""
from pathlib import Path

import numpy as np
import pytest
import mindspore as ms
from mindspore import Tensor, nn

from src.blocks.mask_heads import FCNMaskHead
from src.model_utils.config import Config, load_config

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
NUM_CLASSES = 4


def head_cfg():
    return Config.from_dict({"num_convs": 2, "in_channels": 3, "conv_out_channels": 5, "norm_groups": 0,
                             "loss_mask": {"loss_weight": 1.5}})


class HeadWithLoss(nn.Cell):
    def __init__(self, head):
        super().__init__()
        self.head = head

    def construct(self, mask_feats, mask_targets, labels, weights):
        mask_logits = self.head(mask_feats)
        return mask_logits, self.head.loss(mask_logits, mask_targets, labels, weights)


def numpy_bce(logits, targets):
    probs = 1 / (1 + np.exp(-logits.astype(np.float64)))
    return -(targets * np.log(probs) + (1 - targets) * np.log(1 - probs))


def test_upsampling_matches_numpy_for_one_layer_per_stage():
    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    cfg = Config.from_dict({"num_convs": 0, "in_channels": 2, "conv_out_channels": 3, "norm_groups": 0, "loss_mask": {"loss_weight": 1}})
    head = FCNMaskHead(cfg, 3)
    feats = np.random.default_rng(3).normal(size=(1, 2, 4, 4)).astype(np.float32)
    logits = head(Tensor(feats)).asnumpy()
    assert logits.shape == (1, 2, 8, 8)
    deconv = head.layers[0].weight.asnumpy()  # [in, out, 2, 2]
    upsampled = np.einsum("iyx,iokl->oykxl", feats[0], deconv).reshape(3, 8, 8)
    upsampled = np.maximum(upsampled + head.layers[0].bias.asnumpy()[:, None, None], 0)
    logits_conv = head.layers[2]
    expected = np.einsum("cyx,oc->oyx", upsampled, logits_conv.weight.asnumpy()[:, :, 0, 0])
    np.testing.assert_allclose(logits[0], expected + logits_conv.bias.asnumpy()[:, None, None], rtol=1e-4,
                               atol=1e-5)


@pytest.mark.parametrize("mode", [ms.GRAPH_MODE, ms.PYNATIVE_MODE], ids=["graph", "pynative"])
def test_loss_uses_gt_channel_of_valid_positives(mode):
    ms.set_context(mode=mode, device_target="CPU")
    rng = np.random.default_rng(4)
    mask_feats = rng.normal(size=(3, 3, 14, 14)).astype(np.float32)
    mask_targets = (rng.uniform(size=(3, 28, 28)) > 0.5).astype(np.float32)
    labels = np.array([3, 1, 0], np.int32)
    weights = np.array([1, 1, 0], np.float32)
    mask_logits, loss = HeadWithLoss(FCNMaskHead(head_cfg(), NUM_CLASSES))(
        Tensor(mask_feats), Tensor(mask_targets), Tensor(labels), Tensor(weights))
    mask_logits = mask_logits.asnumpy()
    assert mask_logits.shape == (3, NUM_CLASSES - 1, 28, 28)
    per_pixel = np.stack([numpy_bce(mask_logits[0, 2], mask_targets[0]), numpy_bce(mask_logits[1, 0], mask_targets[1])])
    assert float(loss) == pytest.approx(per_pixel.mean() * 1.5, rel=1e-5)


def test_zero_positives_give_zero_loss_and_large_logits_stay_finite():
    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    head = FCNMaskHead(head_cfg(), NUM_CLASSES)
    logits = Tensor(np.full((2, 3, 28, 28), 200.0, np.float32))
    targets = Tensor(np.zeros((2, 28, 28), np.float32))
    labels = Tensor(np.array([1, 2], np.int32))
    assert float(head.loss(logits, targets, labels, Tensor(np.zeros(2, np.float32)))) == 0.0
    assert float(head.loss(logits, targets, labels, Tensor(np.ones(2, np.float32)))) == pytest.approx(300.0)


def test_parameter_count_of_coco_config():
    cfg = load_config(CONFIG_DIR / "ms_rcnn_r50_caffe_fpn_1x_coco.yaml")
    head = FCNMaskHead(cfg.mask_head, cfg.num_classes)
    count = sum(parameter.size for parameter in head.get_parameters())
    assert count == 4 * (256 * 256 * 9 + 256) + (256 * 256 * 4 + 256) + (256 * 80 + 80) == 2_643_280


def test_loss_gradient_in_graph_mode():
    ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")
    rng = np.random.default_rng(9)
    head = FCNMaskHead(head_cfg(), NUM_CLASSES)
    logits = rng.normal(size=(2, 3, 4, 4)).astype(np.float32)
    targets = (rng.uniform(size=(2, 4, 4)) > 0.5).astype(np.float32)
    labels = np.array([2, 1], np.int32)
    weights = np.array([1, 0], np.float32)
    grad = ms.grad(head.loss)(Tensor(logits), Tensor(targets), Tensor(labels), Tensor(weights)).asnumpy()
    expected = np.zeros_like(logits)
    expected[0, 1] = (1 / (1 + np.exp(-logits[0, 1])) - targets[0]) / 16 * 1.5
    np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-7)


def test_group_norm_keeps_each_roi_independent_of_the_others():
    """mask_head.norm_groups 5 (one channel per group): no conv bias before a GroupNorm, and an RoI's logits are the
    same alone and in a batch with other RoIs and an all-zero padding slot (what BatchNorm would not give)."""
    cfg = Config.from_dict({"num_convs": 2, "in_channels": 3, "conv_out_channels": 5, "norm_groups": 5,
                            "loss_mask": {"loss_weight": 1.0}})
    head = FCNMaskHead(cfg, NUM_CLASSES)
    names = [param.name for param in head.get_parameters()]
    assert "layers.0.gn.gamma" in names and "layers.1.conv.weight" in names and "layers.0.conv.bias" not in names
    rng = np.random.default_rng(5)
    feats = rng.normal(size=(4, 3, 14, 14)).astype(np.float32)
    feats[3] = 0.0
    together = head(Tensor(feats)).asnumpy()
    alone = head(Tensor(feats[:1])).asnumpy()
    assert together.shape == (4, NUM_CLASSES - 1, 28, 28)
    np.testing.assert_allclose(together[:1], alone, rtol=1e-5, atol=1e-6)
    assert np.isfinite(together).all()

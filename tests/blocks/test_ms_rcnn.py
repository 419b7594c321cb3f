"""MsRcnn on the tiny config: GRAPH and PYNATIVE give the same losses and gradients for the same weights and batch,
every loss is finite, a batch without valid gt gives zero box/mask/MaskIoU losses, and MsRcnnInfer's shapes."""
import numpy as np
import mindspore as ms
from mindspore import Tensor, nn

from src.blocks.ms_rcnn import MsRcnn, MsRcnnInfer
from src.network_define import LOSS_NAMES


class TotalLoss(nn.Cell):
    """Sum of the six losses, and the losses themselves."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def construct(self, *batch):
        losses = self.model(*batch)
        return losses[0] + losses[1] + losses[2] + losses[3] + losses[4] + losses[5], losses


def make_batch(cfg, with_gts=True, seed=0):
    rng = np.random.default_rng(seed)
    batch, num_gts, size = cfg.batch_size, cfg.num_gts, cfg.img_height
    mask_size = size // cfg.mask_divider
    img = rng.normal(size=(batch, 3, size, size)).astype(np.float32)
    img_meta = np.tile(np.array([[size, size, size, size, 1, 1]], np.float32), (batch, 1))
    img_meta[1, 2] = size - 32
    gt_bboxes = np.zeros((batch, num_gts, 4), np.float32)
    gt_labels = np.zeros((batch, num_gts), np.int32)
    gt_valids = np.zeros((batch, num_gts), bool)
    gt_masks = np.zeros((batch, num_gts, mask_size, mask_size), np.uint8)
    if with_gts:
        for image in range(batch):
            for gt in range(3):
                x1, y1 = rng.integers(0, 40, 2) * 2
                width, height = rng.integers(8, 22, 2) * 2
                gt_bboxes[image, gt] = [x1, y1, x1 + width, y1 + height]
                gt_labels[image, gt] = rng.integers(1, cfg.num_classes)
                gt_valids[image, gt] = True
                gt_masks[image, gt, y1 // 2:(y1 + height) // 2, x1 // 2:(x1 + width) // 2] = 1
    return tuple(Tensor(a) for a in (img, img_meta, gt_bboxes, gt_labels, gt_valids, gt_masks))


def losses_and_grads(model, batch, mode):
    ms.set_context(mode=mode, device_target="CPU")
    model.set_train(True)
    total = TotalLoss(model)
    step = ms.value_and_grad(total, None, model.trainable_params(), has_aux=True)
    if mode == ms.GRAPH_MODE:
        step = ms.jit(step)
    (_, losses), grads = step(*batch)
    return np.array([loss.asnumpy() for loss in losses]), [grad.asnumpy() for grad in grads]


def test_graph_and_pynative_agree(tiny_cfg):
    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    ms.set_seed(0)
    graph_model = MsRcnn(tiny_cfg)
    pynative_model = MsRcnn(tiny_cfg)
    for source, target in zip(graph_model.get_parameters(), pynative_model.get_parameters()):
        target.set_data(source.data.copy())
    batch = make_batch(tiny_cfg)
    graph_losses, graph_grads = losses_and_grads(graph_model, batch, ms.GRAPH_MODE)
    pynative_losses, pynative_grads = losses_and_grads(pynative_model, batch, ms.PYNATIVE_MODE)
    assert np.all(np.isfinite(graph_losses)), dict(zip(LOSS_NAMES, graph_losses))
    assert np.all(graph_losses > 0), dict(zip(LOSS_NAMES, graph_losses))
    np.testing.assert_allclose(graph_losses, pynative_losses, rtol=1e-4, atol=1e-5)
    assert len(graph_grads) == len(pynative_grads) == len(graph_model.trainable_params())
    for graph_grad, pynative_grad in zip(graph_grads, pynative_grads):
        assert np.all(np.isfinite(graph_grad))
        np.testing.assert_allclose(graph_grad, pynative_grad, rtol=1e-3, atol=1e-5)


def test_no_valid_gt_gives_zero_instance_losses(tiny_cfg):
    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    model = MsRcnn(tiny_cfg)
    model.set_train(True)
    losses = np.array([loss.asnumpy() for loss in model(*make_batch(tiny_cfg, with_gts=False))])
    assert np.all(np.isfinite(losses))
    assert losses[0] > 0 and losses[2] > 0
    np.testing.assert_array_equal(losses[[1, 3, 4, 5]], 0.0)


def test_inference_shapes(tiny_cfg):
    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    infer = MsRcnnInfer(MsRcnn(tiny_cfg))
    infer.set_train(False)
    img, img_meta = make_batch(tiny_cfg)[:2]
    bboxes, labels, scores, mask_probs, mask_ious, valids = infer(img, img_meta)
    batch, max_det = tiny_cfg.batch_size, tiny_cfg.test_cfg.rcnn.max_per_img
    assert bboxes.shape == (batch, max_det, 4) and labels.shape == (batch, max_det)
    assert scores.shape == mask_ious.shape == valids.shape == (batch, max_det)
    assert mask_probs.shape == (batch, max_det, 28, 28)
    assert labels.dtype == ms.int32 and valids.dtype == ms.bool_
    assert np.all((mask_probs.asnumpy() >= 0) & (mask_probs.asnumpy() <= 1))
    labels_np, valids_np = labels.asnumpy(), valids.asnumpy()
    assert np.all((labels_np[valids_np] >= 1) & (labels_np[valids_np] < tiny_cfg.num_classes))
    assert np.all(bboxes.asnumpy()[1, :, 3] <= tiny_cfg.img_height - 32 + 1e-4)


def test_custom_and_builtin_roi_align_give_the_same_training_losses(tiny_cfg):
    """One training step's losses and gradients with the own RoIAlign kernels equal those with MindSpore's op when
    both use the same convention (legacy boxes, fixed sampling ratio: the built-in op has no adaptive mode)."""
    models = {}
    for impl in ("custom", "builtin"):
        values = tiny_cfg.to_dict()
        for key in ("roi", "mask_roi"):
            values[key]["roi_layer"].update(impl=impl, sampling_ratio=2, aligned=False)
        ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
        models[impl] = MsRcnn(type(tiny_cfg).from_dict(values))
    for source, target in zip(models["custom"].get_parameters(), models["builtin"].get_parameters()):
        target.set_data(source.data.copy())
    batch = make_batch(tiny_cfg, seed=3)
    custom_losses, custom_grads = losses_and_grads(models["custom"], batch, ms.GRAPH_MODE)
    builtin_losses, builtin_grads = losses_and_grads(models["builtin"], batch, ms.GRAPH_MODE)
    assert np.all(np.isfinite(custom_losses)) and np.all(custom_losses > 0), dict(zip(LOSS_NAMES, custom_losses))
    np.testing.assert_allclose(custom_losses, builtin_losses, rtol=1e-4, atol=1e-6)
    for custom_grad, builtin_grad in zip(custom_grads, builtin_grads):
        np.testing.assert_allclose(custom_grad, builtin_grad, rtol=1e-3, atol=1e-5)


def test_crop_training_shape_and_whole_image_inference_share_weights(tiny_cfg):
    """With crop training the model trains on crop_height x crop_width inputs while the inference network, built on
    the same parameters, takes img_height x img_width; its anchors cover the larger input."""
    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    values = tiny_cfg.to_dict()
    values.update(crop_height=64, crop_width=64, mask_divider=1)
    crop_cfg = type(tiny_cfg).from_dict(values)
    model = MsRcnn(crop_cfg)
    infer = MsRcnnInfer(model)
    num_anchors = len(crop_cfg.rpn.anchor_generator.ratios) * len(crop_cfg.rpn.anchor_generator.scales)
    cells = sum((-(-64 // s)) ** 2 for s in crop_cfg.rpn.anchor_generator.strides)    # ceil(64 / stride) squared
    assert model.rpn_head.anchors.shape[0] == cells * num_anchors
    infer_anchors = sum(anchors.shape[0] for anchors in model.rpn_head.anchors_for((128, 128)))
    assert infer_anchors == sum((-(-128 // s)) ** 2 for s in crop_cfg.rpn.anchor_generator.strides) * num_anchors
    assert {p.name for p in infer.get_parameters()} == {p.name for p in model.get_parameters()}
    values.update(img_height=64, img_width=64)
    batch = make_batch(type(tiny_cfg).from_dict(values), seed=1)
    model.set_train(True)
    losses = np.array([loss.asnumpy() for loss in model(*batch)])
    assert np.all(np.isfinite(losses)) and losses[4] > 0
    infer.set_train(False)
    img = Tensor(np.random.default_rng(0).normal(size=(1, 3, 128, 128)).astype(np.float32))
    meta = Tensor(np.array([[128, 128, 128, 128, 1, 1]], np.float32))
    bboxes, *_, valids = infer(img, meta)
    assert bboxes.shape == (1, crop_cfg.test_cfg.rcnn.max_per_img, 4)
    assert bboxes.asnumpy().max() <= 128 + 1e-4


def with_chunk_size(cfg, chunk_size):
    values = cfg.to_dict()
    values["mask_roi"]["chunk_size"] = chunk_size
    return type(cfg).from_dict(values)


def test_mask_heads_on_occupied_chunks_only_give_the_same_losses_gradients_and_detections(tiny_cfg):
    """``mask_roi.chunk_size``: the mask and MaskIoU heads skip the chunks of RoI slots without a positive (training)
    or a valid detection (inference); losses, gradients and the valid detections equal those of running the heads
    on every slot. The batch leaves most of the 2 x 16 mask slots empty, so whole chunks are skipped."""
    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    models = {size: MsRcnn(with_chunk_size(tiny_cfg, size)) for size in (0, 4)}
    for source, target in zip(models[0].get_parameters(), models[4].get_parameters()):
        target.set_data(source.data.copy())
    batch = make_batch(tiny_cfg, seed=5)
    model = models[0]
    model.set_train(False)  # counting the positives must not move this model's BatchNorm statistics
    features = model.features(batch[0])
    proposals, proposal_valids = model.train_proposals(*model.rpn_head(features), batch[1])[::2]
    priorities = model.mask_assigner_sampler.draw(2, proposals.shape[1], batch[2].shape[1])
    pos_weights = model.rcnn_targets(proposals, proposal_valids, *batch[2:], priorities)[7].asnumpy()
    assert 0 < pos_weights.sum() <= len(pos_weights) - 8, pos_weights
    results = {size: losses_and_grads(models[size], batch, ms.GRAPH_MODE) for size in (0, 4)}
    np.testing.assert_allclose(results[4][0], results[0][0], rtol=1e-5, atol=1e-6)
    for chunked_grad, full_grad in zip(results[4][1], results[0][1]):
        np.testing.assert_allclose(chunked_grad, full_grad, rtol=1e-4, atol=1e-6)

    img, img_meta = batch[:2]
    probe = MsRcnnInfer(models[0])
    probe.set_train(False)
    score_thr = float(np.quantile(probe(img, img_meta)[2].asnumpy(), 0.7))  # random weights: keep about a third
    outputs = {}
    for size, chunked_model in models.items():
        infer = MsRcnnInfer(chunked_model)
        infer.set_train(False)
        infer.score_thr = score_thr
        outputs[size] = [value.asnumpy() for value in infer(img, img_meta)]
    valids = outputs[0][5]
    assert 0 < valids.sum() < valids.size
    np.testing.assert_array_equal(outputs[4][5], valids)
    for chunked_value, full_value in zip(outputs[4][:5], outputs[0][:5]):
        np.testing.assert_allclose(chunked_value[valids], full_value[valids], rtol=1e-5, atol=1e-6)

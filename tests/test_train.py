"""Tests of the training step (src/network_define.py) and the training loop (train.py) in GRAPH mode.

Most loop tests use a small stand-in detector with the MsRcnn / MsRcnnInfer interfaces (six losses; inference
outputs) so that they compile in seconds; the data pipeline, schedule, optimizer, logging, checkpoints, evaluation
and resume are the real ones. One test trains the real tiny Mask Scoring R-CNN for a few steps.
"""
import csv

import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor

import train as train_module
from src.callback import NonFiniteLossError, read_checkpoint_state
from src.data import CocoDataset
from src.eval_utils import evaluate_predictions, load_predictions
from src.network_define import TrainStep, build_optimizer, split_weight_decay
from tests.helpers.coco_fixtures import make_random_dataset, write_coco_dataset
from tests.helpers.toy_detector import ToyDetector, ToyInfer, make_cfg


@pytest.fixture(autouse=True)
def graph_mode():
    ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")


def fixed_batch(cfg):
    rng = np.random.default_rng(0)
    b, g, h, w = cfg.batch_size, cfg.num_gts, cfg.img_height, cfg.img_width
    valids = np.zeros((b, g), bool)
    valids[:, :3] = True
    return [Tensor(rng.standard_normal((b, 3, h, w)).astype(np.float32)),
            Tensor(np.tile(np.array([h, w, h, w, 1, 1], np.float32), (b, 1))),
            Tensor(np.zeros((b, g, 4), np.float32)), Tensor(np.ones((b, g), np.int32)), Tensor(valids),
            Tensor(np.zeros((b, g, h // 2, w // 2), np.uint8))]


def snapshot(model):
    return {param.name: param.asnumpy().copy() for param in model.trainable_params()}


def test_steps_lower_the_loss_and_frozen_parameters_are_left_out(tiny_cfg, tmp_path):
    cfg = make_cfg(tiny_cfg, tmp_path, tmp_path, lr=0.05)
    model = ToyDetector(cfg)
    decayed, not_decayed = split_weight_decay(list(model.get_parameters()))
    assert [p.name for p in decayed] == ["conv.weight"] and [p.name for p in not_decayed] == ["conv.bias"]
    optimizer = build_optimizer(cfg, model.trainable_params(), np.full(10, 0.05, np.float32))
    assert "frozen" not in [param.name for param in optimizer.parameters]
    trainer = TrainStep(model, optimizer, cfg)
    batch = fixed_batch(cfg)
    losses = [trainer.step(batch, index).total_loss for index in range(4)]
    assert losses[-1] < losses[0]
    assert model.frozen.asnumpy().tolist() == [1.0, 1.0, 1.0]


def two_instance_batch(cfg):
    """A batch of the tiny model: two bright rectangles per image, the other gt slots padding."""
    rng = np.random.default_rng(0)
    b, g, size = cfg.batch_size, cfg.num_gts, cfg.img_height
    img = rng.normal(size=(b, 3, size, size)).astype(np.float32)
    gt_bboxes = np.zeros((b, g, 4), np.float32)
    gt_masks = np.zeros((b, g, size // 2, size // 2), np.uint8)
    gt_valids = np.zeros((b, g), bool)
    for image in range(b):
        for gt, (x1, y1, x2, y2) in enumerate(((8, 8, 56, 40), (64, 72, 120, 120))):
            gt_bboxes[image, gt] = (x1, y1, x2, y2)
            gt_masks[image, gt, y1 // 2:y2 // 2, x1 // 2:x2 // 2] = 1
            gt_valids[image, gt] = True
            img[image, :, y1:y2, x1:x2] += 2.0 * (gt + 1)
    return [Tensor(img), Tensor(np.tile(np.array([size, size, size, size, 1, 1], np.float32), (b, 1))),
            Tensor(gt_bboxes), Tensor(np.where(gt_valids, 1, 0).astype(np.int32)), Tensor(gt_valids),
            Tensor(gt_masks)]


def test_real_tiny_model_steps_lower_the_loss(tiny_cfg, tmp_path):
    from src.blocks.ms_rcnn import MsRcnn

    cfg = make_cfg(tiny_cfg, tmp_path, tmp_path, lr=0.01)
    ms.set_seed(0)
    model = MsRcnn(cfg)
    optimizer = build_optimizer(cfg, model.trainable_params(), np.full(8, 0.01, np.float32))
    trainer = TrainStep(model, optimizer, cfg)
    batch = two_instance_batch(cfg)
    losses = [trainer.step(batch, index).total_loss for index in range(6)]
    assert np.all(np.isfinite(losses)), losses
    assert losses[-1] < 0.8 * losses[0], losses


def test_gt_buckets_give_the_losses_and_updates_of_the_full_batch(tiny_cfg, tmp_path):
    from src.blocks.ms_rcnn import MsRcnn
    from src.model_utils.device_adapter import seed_everything

    results = []
    for buckets in ([], [4, 8]):
        cfg = make_cfg(tiny_cfg, tmp_path, tmp_path, lr=0.01, gt_buckets=buckets)
        seed_everything(cfg.seed)
        model = MsRcnn(cfg)
        trainer = TrainStep(model, build_optimizer(cfg, model.trainable_params(), np.full(4, 0.01, np.float32)), cfg)
        batch = two_instance_batch(cfg)
        losses = np.array([trainer.step(batch, index).losses for index in range(2)])
        results.append((losses, {param.name: param.asnumpy() for param in model.trainable_params()}))
    assert [int(column.shape[1]) for column in trainer.fit_gts(batch)[2:6]] == [4, 4, 4, 4]  # 2 valid of 16 slots
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-5, atol=1e-7)
    for name, value in results[0][1].items():
        np.testing.assert_allclose(results[1][1][name], value, rtol=1e-5, atol=1e-6, err_msg=name)


def test_accumulating_two_equal_batches_equals_one_step(tiny_cfg, tmp_path):
    batch = fixed_batch(make_cfg(tiny_cfg, tmp_path, tmp_path))
    results = []
    for accumulate_step, calls in ((1, 1), (2, 2)):
        cfg = make_cfg(tiny_cfg, tmp_path, tmp_path, accumulate_step=accumulate_step, lr=0.05)
        model = ToyDetector(cfg)
        optimizer = build_optimizer(cfg, model.trainable_params(), np.full(4, 0.05, np.float32))
        trainer = TrainStep(model, optimizer, cfg)
        updated = [trainer.step(batch, index).updated for index in range(calls)]
        assert updated[-1] and not any(updated[:-1])
        results.append(snapshot(model))
    for name in results[0]:
        assert np.allclose(results[0][name], results[1][name], atol=1e-6), name


def test_grad_clip_bounds_the_update(tiny_cfg, tmp_path):
    cfg = make_cfg(tiny_cfg, tmp_path, tmp_path, grad_clip=1e-3, lr=1.0, momentum=0.0)
    model = ToyDetector(cfg)
    before = snapshot(model)
    trainer = TrainStep(model, build_optimizer(cfg, model.trainable_params(), np.ones(2, np.float32)), cfg)
    trainer.step(fixed_batch(cfg), 0)
    after = snapshot(model)
    change = np.sqrt(sum(np.sum((after[name] - before[name]) ** 2) for name in before))
    assert 0 < change <= 1e-3 + 1e-7  # lr 1 x clipped gradient norm 1e-3


def test_a_loss_scale_of_one_updates_as_a_power_of_two_does(tiny_cfg, tmp_path):
    """With a fixed scale of 1 the gradients are not divided back at all; scaling by a power of two is exact in
    float32, so both give bit-identical weights after two steps of the real tiny model."""
    from src.blocks.ms_rcnn import MsRcnn
    from src.model_utils.device_adapter import seed_everything

    weights = []
    for loss_scale in (1.0, 256.0):
        cfg = make_cfg(tiny_cfg, tmp_path, tmp_path, lr=0.01, loss_scale=loss_scale)
        seed_everything(cfg.seed)
        model = MsRcnn(cfg)
        trainer = TrainStep(model, build_optimizer(cfg, model.trainable_params(), np.full(4, 0.01, np.float32)), cfg)
        assert trainer.cell.unscale == (loss_scale != 1.0)
        for index in range(2):
            trainer.step(two_instance_batch(cfg), index)
        weights.append(snapshot(model))
    for name, value in weights[0].items():
        np.testing.assert_array_equal(weights[1][name], value, err_msg=name)


class SqrtOfZero(ms.nn.Cell):
    """Six losses whose sum is sqrt(w) at w = 0: a finite loss (0) with an infinite gradient."""

    def __init__(self):
        super().__init__()
        self.w = ms.Parameter(Tensor(np.zeros(3, np.float32)), name="w")

    def construct(self, scale):
        loss = ms.ops.sqrt(self.w).sum() * scale
        return loss, loss, loss, loss, loss, loss


@pytest.mark.parametrize("loss_scale", [1.0, 256.0])
def test_an_infinite_gradient_with_a_finite_loss_is_an_overflow(loss_scale):
    from src.network_define import TrainOneStepCell

    network = SqrtOfZero()
    optimizer = ms.nn.SGD(network.trainable_params(), learning_rate=0.1)
    cell = TrainOneStepCell(network, optimizer, loss_scale, False, 0.0, 1, False)
    total, _, overflow, _, rejected = cell(Tensor(np.inf, ms.float32), Tensor(1.0, ms.float32))
    assert float(total) == 0.0 and bool(overflow) and bool(rejected)
    np.testing.assert_array_equal(network.w.asnumpy(), 0.0)


def read_csv(path):
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def test_train_writes_logs_checkpoints_metrics_and_resumes(tiny_cfg, tmp_path, parts_dataset, monkeypatch):
    data_dir, _ = parts_dataset  # 6 images, batch 2: 3 steps per epoch
    models = []

    def build(cfg):
        model = ToyDetector(cfg)
        models.append(model)
        return model, ToyInfer(model)

    monkeypatch.setattr(train_module, "build_detector", build)
    cfg = make_cfg(tiny_cfg, tmp_path, data_dir)
    exp_dir = train_module.train(cfg, ["--brief", "test"])
    assert exp_dir.name.endswith("_MSRCNN_test_cpu-1_128x128_bs-2_lr-0.05_div-2")
    log = (exp_dir / "train.log").read_text()
    assert "Train dataset size: 3" in log and "Number of parameters: 8 (trainable: 4)" in log
    assert "epoch: 1, step: 3, loss_rpn_cls: " in log and ", lr: 0.050000, step_time: " in log
    assert "Train epoch time:" in log and "Result metrics for epoch 2: {'loss': " in log
    assert (exp_dir / "config.yaml").is_file() and "git_commit:" in (exp_dir / "command.txt").read_text()
    steps = read_csv(exp_dir / "losses.csv")
    assert [int(row["global_step"]) for row in steps] == [1, 2, 3, 4, 5, 6]
    assert float(steps[0]["loss_mask"]) == pytest.approx(2.0 * float(steps[0]["loss_rpn_cls"]), rel=1e-4)
    epochs = read_csv(exp_dir / "metrics.csv")
    assert [row["epoch"] for row in epochs] == ["1", "2"]
    assert 0.0 <= float(epochs[1]["seg_mAP"]) <= 1.0
    saved = load_predictions(exp_dir / "val_predictions.json")  # the last evaluation's, scored again
    rescored = evaluate_predictions(CocoDataset(cfg.val_dataset, cfg.coco_classes).coco, saved)
    assert saved and rescored["seg_mAP"] == pytest.approx(float(epochs[1]["seg_mAP"]), abs=1e-6)
    checkpoints = sorted(path.name for path in (exp_dir / "checkpoints").iterdir())
    assert checkpoints == ["msrcnn-2_2.ckpt", "msrcnn-2_3.ckpt"]  # keep_checkpoint_max = 2
    assert list((exp_dir / "best_ckpt").glob("msrcnn-best-e*-segm*.ckpt"))
    state = read_checkpoint_state(ms.load_checkpoint(str(exp_dir / "checkpoints" / "msrcnn-2_3.ckpt")))
    assert state == {"epoch": 2, "step": 3, "global_step": 6, "rollbacks": 0}
    trained_weight = models[-1].conv.weight.asnumpy().copy()

    resumed_cfg = make_cfg(tiny_cfg, tmp_path, data_dir, epoch_size=3, resume=str(exp_dir), run_eval=0)
    assert train_module.train(resumed_cfg) == exp_dir
    log = (exp_dir / "train.log").read_text()
    assert "msrcnn-2_3.ckpt: epoch 3, step 0 (global step 6)" in log
    assert [int(row["global_step"]) for row in read_csv(exp_dir / "losses.csv")][-3:] == [7, 8, 9]
    state = read_checkpoint_state(ms.load_checkpoint(str(exp_dir / "checkpoints" / "msrcnn-3_3.ckpt")))
    assert state == {"epoch": 3, "step": 3, "global_step": 9, "rollbacks": 0}
    resumed_model = models[-1]
    assert not np.allclose(resumed_model.conv.weight.asnumpy(), 0.0)  # started from the checkpoint, not zeros
    assert not np.allclose(resumed_model.conv.weight.asnumpy(), trained_weight)  # and trained further


def test_without_the_guard_a_non_finite_loss_stops_and_keeps_the_last_checkpoint(tiny_cfg, tmp_path, parts_dataset,
                                                                                 monkeypatch):
    data_dir, _ = parts_dataset
    monkeypatch.setattr(train_module, "build_detector", lambda cfg: (lambda m: (m, ToyInfer(m)))(
        ToyDetector(cfg, factors=[1.0, 1.0, np.nan])))
    guard_off = {**tiny_cfg.divergence_guard.to_dict(), "enabled": False}
    cfg = make_cfg(tiny_cfg, tmp_path, data_dir, run_eval=0, divergence_guard=guard_off)
    with pytest.raises(NonFiniteLossError, match=r"epoch 1, step 3: loss=nan .*msrcnn-1_2\.ckpt"):
        train_module.train(cfg)
    exp_dir = next((tmp_path / "experiments").iterdir())
    assert "non-finite loss at epoch 1, step 3" in (exp_dir / "train.log").read_text()
    good = exp_dir / "checkpoints" / "msrcnn-1_2.ckpt"
    assert read_checkpoint_state(ms.load_checkpoint(str(good)))["global_step"] == 2
    assert sorted(path.name for path in (exp_dir / "checkpoints").iterdir()) == ["msrcnn-1_1.ckpt", "msrcnn-1_2.ckpt"]


def test_a_validation_set_without_instances_keeps_no_best_checkpoint(tiny_cfg, tmp_path, parts_dataset, monkeypatch):
    data_dir, _ = parts_dataset
    val_dir = tmp_path / "val"
    data = make_random_dataset(val_dir, num_images=2, seed=9)
    write_coco_dataset(val_dir, data["images"], [], data["categories"])
    monkeypatch.setattr(train_module, "build_detector", lambda cfg: (lambda m: (m, ToyInfer(m)))(ToyDetector(cfg)))
    cfg = make_cfg(tiny_cfg, tmp_path, data_dir, epoch_size=1, val_dataset=str(val_dir))
    exp_dir = train_module.train(cfg)
    assert "holds no ground-truth instance: its mAP is undefined (-1), so no best checkpoint is kept" in \
        (exp_dir / "train.log").read_text()
    assert list((exp_dir / "best_ckpt").iterdir()) == []

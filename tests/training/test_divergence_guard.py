"""The divergence guard: its bookkeeping by hand, and in the real training loop with a stand-in detector whose loss
spikes or turns NaN at chosen steps (GRAPH mode)."""
import math

import mindspore as ms
import numpy as np
import pytest
from mindspore import Parameter, Tensor, nn

import train as train_module
from src.callback import read_checkpoint_state
from src.model_utils.config import Config
from src.training.divergence_guard import DivergenceError, DivergenceGuard, ParameterSnapshot
from tests.helpers.toy_detector import ToyDetector, ToyInfer, make_cfg


def guard_cfg(**values) -> Config:
    base = {"enabled": True, "loss_jump": 10.0, "running_momentum": 0.5, "warmup_steps": 2, "max_rejected": 2,
            "lr_factor": 0.5, "max_rollbacks": 1}
    return Config.from_dict({**base, **values})


def test_bound_is_a_multiple_of_the_running_mean_after_warmup():
    guard = DivergenceGuard(guard_cfg())
    assert guard.bound() == math.inf
    guard.accept(2.0)
    assert guard.bound() == math.inf  # one accepted step, warmup is 2
    guard.accept(4.0)
    assert guard.running_mean == pytest.approx(0.5 * 2.0 + 0.5 * 4.0)
    assert guard.bound() == pytest.approx(30.0)
    assert DivergenceGuard(guard_cfg(enabled=False)).bound() == math.inf


def test_rejections_in_a_row_roll_back_then_stop():
    guard = DivergenceGuard(guard_cfg())
    assert [guard.reject(), guard.reject()] == ["skip", "rollback"]
    assert guard.rollbacks == 1 and guard.lr_scale == 0.5
    guard.reject()
    guard.accept(1.0)  # an accepted step resets the count
    assert [guard.reject(), guard.reject()] == ["skip", "stop"]
    assert DivergenceGuard(guard_cfg(), rollbacks=2).lr_scale == 0.25


def test_snapshot_restores_everything_but_the_schedule():
    cell = nn.Cell()
    cell.weight = Parameter(Tensor(np.ones(3, np.float32)), name="weight")
    cell.learning_rate = Parameter(Tensor(np.full(4, 0.1, np.float32)), name="learning_rate")
    snapshot = ParameterSnapshot(cell)
    cell.weight.set_data(Tensor(np.zeros(3, np.float32)))
    cell.learning_rate.set_data(Tensor(np.full(4, 0.05, np.float32)))
    snapshot.restore(cell)
    assert np.array_equal(cell.weight.asnumpy(), np.ones(3)) and np.allclose(cell.learning_rate.asnumpy(), 0.05)


@pytest.fixture(autouse=True)
def graph_mode():
    ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")


def run_toy(monkeypatch, tiny_cfg, tmp_path, data_dir, factors, **overrides):
    """Train the stand-in detector (6 images, batch 2: 3 steps per epoch, 3 epochs); returns (experiment folder,
    model)."""
    models = []

    def build(cfg):
        models.append(ToyDetector(cfg, factors))
        return models[-1], ToyInfer(models[-1])

    monkeypatch.setattr(train_module, "build_detector", build)
    values = {"epoch_size": 3, "run_eval": 0, "keep_checkpoint_max": 20, "divergence_guard": guard_cfg().to_dict()}
    cfg = make_cfg(tiny_cfg, tmp_path, data_dir, **{**values, **overrides})
    try:
        return train_module.train(cfg), models[-1]
    finally:
        monkeypatch.undo()


def conv_weight(path) -> np.ndarray:
    return ms.load_checkpoint(str(path))["model.conv.weight"].asnumpy()


def test_a_spike_is_rejected_logged_and_changes_nothing(monkeypatch, tiny_cfg, tmp_path, parts_dataset):
    data_dir, _ = parts_dataset
    exp_dir, _ = run_toy(monkeypatch, tiny_cfg, tmp_path, data_dir, [1, 1, 1, 1, 1e6, 1])
    log = (exp_dir / "train.log").read_text()
    assert "epoch 2, step 2: loss" in log and "above the bound" in log and "step rejected, nothing updated" in log
    checkpoints = exp_dir / "checkpoints"
    assert np.array_equal(conv_weight(checkpoints / "msrcnn-2_1.ckpt"), conv_weight(checkpoints / "msrcnn-2_2.ckpt"))
    assert not np.array_equal(conv_weight(checkpoints / "msrcnn-2_2.ckpt"),
                              conv_weight(checkpoints / "msrcnn-2_3.ckpt"))
    assert "rolled back" not in log and "Training finished" in log


def test_repeated_non_finite_losses_roll_back_and_lower_the_lr(monkeypatch, tiny_cfg, tmp_path, parts_dataset):
    """Calls 5 and 6 are NaN: two rejected steps in a row roll back to the checkpoint after step 5 (which rewinds the
    stand-in's call counter to 5, so call 6 comes once more and is rejected alone), then training goes on at half the
    learning rate."""
    data_dir, _ = parts_dataset
    exp_dir, _ = run_toy(monkeypatch, tiny_cfg, tmp_path, data_dir, [1, 1, 1, 1, np.nan, np.nan, 1])
    log = (exp_dir / "train.log").read_text()
    assert "epoch 2, step 2: loss nan is not finite" in log and "epoch 2, step 3: loss nan is not finite" in log
    assert "2 rejected steps in a row: weights and optimizer state rolled back to" in log
    assert "msrcnn-2_2.ckpt, learning rate now x 0.5 of the schedule (rollback 1 of at most 1)" in log
    assert "epoch: 2, step: 1," in log and "lr: 0.050000" in log
    assert "epoch: 3, step: 2," in log and "lr: 0.025000" in log  # 0.05 x 0.5
    checkpoints = exp_dir / "checkpoints"
    assert np.array_equal(conv_weight(checkpoints / "msrcnn-2_1.ckpt"), conv_weight(checkpoints / "msrcnn-2_3.ckpt"))
    assert read_checkpoint_state(ms.load_checkpoint(str(checkpoints / "msrcnn-3_3.ckpt")))["rollbacks"] == 1
    assert "Training finished" in log


def test_divergence_after_the_allowed_rollbacks_stops_the_run(monkeypatch, tiny_cfg, tmp_path, parts_dataset):
    data_dir, _ = parts_dataset
    with pytest.raises(DivergenceError, match=r"diverged again after 1 rollback\(s\); stopped at epoch 3, step 1"):
        run_toy(monkeypatch, tiny_cfg, tmp_path, data_dir, [1, 1, 1, np.nan])

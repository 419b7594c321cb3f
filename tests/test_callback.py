"""Tests of src/callback.py: log format, loss averaging, CSV files and checkpoint rotation."""
import logging
import re

import mindspore as ms
import numpy as np
import pytest
from mindspore import nn

from src.callback import (CLASSES_KEY, CheckpointManager, CsvLog, LossAverager, NonFiniteLossError,
                          atomic_save_checkpoint, check_finite, format_step_line, latest_checkpoint,
                          read_checkpoint_classes, read_checkpoint_state, setup_logger)
from src.network_define import LOSS_NAMES, load_weights


def test_log_line_format(tmp_path, capsys):
    losses = {name: 0.1 * (index + 1) for index, name in enumerate(LOSS_NAMES)}
    losses["loss"] = 2.1
    line = format_step_line(1, 100, losses, 0.004016, 512.34)
    assert line == ("epoch: 1, step: 100, loss_rpn_cls: 0.100000, loss_rpn_bbox: 0.200000, loss_cls: 0.300000, "
                    "loss_bbox: 0.400000, loss_mask: 0.500000, loss_mask_iou: 0.600000, loss: 2.100000, "
                    "lr: 0.004016, step_time: 512.3 ms")
    logger = setup_logger(tmp_path / "train.log")
    logger.info(line)
    for handler in logger.handlers:
        handler.flush()
    text = (tmp_path / "train.log").read_text()
    assert re.match(r"^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\] INFO: epoch: 1, step: 100, ", text)
    assert "epoch: 1" in capsys.readouterr().out


def test_other_ranks_write_no_file(tmp_path):
    logger = setup_logger(tmp_path / "rank1.log", rank=1)
    logger.info("hidden")
    assert not (tmp_path / "rank1.log").exists()
    assert logger.handlers[0].level == logging.WARNING


def test_loss_averager_means():
    averager = LossAverager()
    averager.add([1, 2, 3, 4, 5, 6], 21)
    averager.add([3, 2, 1, 0, 1, 2], 9)
    interval = averager.pop_interval()
    assert interval["loss_rpn_cls"] == 2 and interval["loss_mask_iou"] == 4 and interval["loss"] == 15
    averager.add([5, 5, 5, 5, 5, 5], 30)
    assert averager.pop_interval()["loss"] == 30
    assert averager.pop_epoch()["loss"] == pytest.approx(20)


def test_check_finite_names_the_loss_and_checkpoint(tmp_path):
    check_finite(1.0, [0.1] * 6, 1, 1, None)
    with pytest.raises(NonFiniteLossError, match=r"epoch 2, step 7: .*loss_mask=nan.*last good checkpoint: a\.ckpt"):
        check_finite(float("nan"), [0.1, 0.1, 0.1, 0.1, float("nan"), 0.1], 2, 7, "a.ckpt")


def test_csv_log_appends_rows(tmp_path):
    log = CsvLog(tmp_path / "m.csv", ["epoch", "loss"])
    log.append({"epoch": 1, "loss": 0.5})
    CsvLog(tmp_path / "m.csv", ["epoch", "loss"]).append({"epoch": 2})
    assert (tmp_path / "m.csv").read_text().splitlines() == ["epoch,loss", "1,0.5", "2,"]
    with pytest.raises(KeyError, match="unknown columns"):
        log.append({"bad": 1})


def test_checkpoint_rotation_best_and_state(tmp_path):
    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    cell = nn.Dense(2, 2)
    manager = CheckpointManager(tmp_path / "ckpt", tmp_path / "best", keep_max=2, keep_best_max=2)
    for step in (1, 2, 3):
        manager.save(cell, 1, step, step)
    assert [path.name for _, _, path in manager.periodic()] == ["msrcnn-1_2.ckpt", "msrcnn-1_3.ckpt"]
    assert latest_checkpoint(tmp_path / "ckpt").name == "msrcnn-1_3.ckpt"
    assert not list((tmp_path / "ckpt").glob(".tmp-*"))
    state = read_checkpoint_state(ms.load_checkpoint(str(tmp_path / "ckpt" / "msrcnn-1_3.ckpt")))
    assert state == {"epoch": 1, "step": 3, "global_step": 3, "rollbacks": 0}
    assert manager.save_best(cell, 1, 3, 3, 0.2) is not None
    assert manager.save_best(cell, 2, 3, 6, 0.4) is not None
    assert manager.save_best(cell, 3, 3, 9, 0.1) is None  # not in the top 2
    assert manager.save_best(cell, 4, 3, 12, 0.3) is not None
    assert [(value, epoch) for value, epoch, _ in manager.best()] == [(0.4, 2), (0.3, 4)]
    loaded = ms.load_checkpoint(str(manager.best()[0][2]))
    assert np.allclose(loaded["weight"].asnumpy(), cell.weight.asnumpy())


def test_checkpoints_store_class_names_that_weight_loading_ignores(tmp_path):
    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    cell = nn.Dense(2, 2)
    names = ["background", "front bumper", 'odd "name", |;']
    manager = CheckpointManager(tmp_path / "ckpt", tmp_path / "best", keep_max=2, keep_best_max=2, class_names=names)
    periodic = manager.save(cell, 1, 3, 3)
    best = manager.save_best(cell, 1, 3, 3, 0.5)
    assert read_checkpoint_classes(periodic) == names and read_checkpoint_classes(best) == names
    assert read_checkpoint_state(ms.load_checkpoint(str(periodic)))["step"] == 3
    older = atomic_save_checkpoint(cell, tmp_path / "older.ckpt", {"epoch": 1, "step": 1, "global_step": 1})
    assert read_checkpoint_classes(older) is None
    ms.save_checkpoint(cell, str(tmp_path / "bad.ckpt"), append_dict={CLASSES_KEY: "not json"})
    with pytest.raises(ValueError, match=r"bad\.ckpt: entry 'model\.coco_classes' should be a JSON list"):
        read_checkpoint_classes(tmp_path / "bad.ckpt")

    other = nn.Dense(2, 2)
    param_dict = ms.load_checkpoint(str(periodic))
    missing, skipped = load_weights(other, param_dict, source=str(periodic))
    assert missing == [] and CLASSES_KEY in skipped
    assert np.allclose(other.weight.asnumpy(), cell.weight.asnumpy())
    not_loaded, _ = ms.load_param_into_net(nn.Dense(2, 2), param_dict)  # what train.py --resume does
    assert not_loaded == []

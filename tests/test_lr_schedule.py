"""Tests of src/lr_schedule.py: values at chosen steps against hand-computed numbers."""
import math

import numpy as np
import pytest

from src.lr_schedule import build_lr_schedule, get_lr
from src.model_utils.config import load_config


def test_model_zoo_warmup_value():
    # lr 0.02, warmup 500 steps from ratio 0.001: update 100 -> 0.02 * (0.001 + 0.999 * 100 / 500) = 0.004016
    rates = build_lr_schedule(0.02, 2000, 1000, 500, 0.001, "multistep", [8, 11], 1e-7)
    assert rates[0] == pytest.approx(0.02 * 0.001)
    assert rates[100] == pytest.approx(0.004016)
    assert rates[499] == pytest.approx(0.02 * (0.001 + 0.999 * 499 / 500))
    assert rates[500] == pytest.approx(0.02)
    assert rates.dtype == np.float32 and rates.shape == (2000,)


def test_multistep_divides_by_ten_at_epoch_boundaries():
    # 10 updates per epoch, 4 epochs, decay at epochs 2 and 3 -> boundaries at updates 20 and 30
    rates = build_lr_schedule(0.1, 40, 10, 0, 0.5, "multistep", [2, 3], 0.0)
    assert rates[19] == pytest.approx(0.1)
    assert rates[20] == pytest.approx(0.01)
    assert rates[29] == pytest.approx(0.01)
    assert rates[30] == pytest.approx(0.001)
    assert rates[39] == pytest.approx(0.001)


def test_cosine_after_warmup():
    # warmup 10 updates, then cosine from 1.0 at update 10 to 0.1 at update 30 (the last of 31)
    rates = build_lr_schedule(1.0, 31, 31, 10, 0.1, "cosine", [8], 0.1)
    assert rates[0] == pytest.approx(1.0 * 0.1)
    assert rates[5] == pytest.approx(1.0 * (0.1 + 0.9 * 0.5))
    assert rates[10] == pytest.approx(1.0)
    assert rates[20] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))  # midway: 0.55
    assert rates[30] == pytest.approx(0.1)
    assert np.all(np.diff(rates[10:]) <= 0)


def test_warmup_overlapping_a_decay_multiplies_both():
    rates = build_lr_schedule(1.0, 20, 5, 10, 0.0, "multistep", [1], 0.0)
    assert rates[6] == pytest.approx(0.1 * 6 / 10)


def test_get_lr_reads_the_config():
    cfg = load_config(None, {"lr": 0.04, "epoch_size": 3, "warmup_step": 4, "warmup_ratio": 0.25,
                             "lr_steps": [2], "lr_type": "multistep"})
    rates = get_lr(cfg, updates_per_epoch=5)
    assert rates.shape == (15,)
    assert rates[2] == pytest.approx(0.04 * (0.25 + 0.75 * 2 / 4))
    assert rates[9] == pytest.approx(0.04)
    assert rates[10] == pytest.approx(0.004)


def test_rejects_empty_schedule():
    with pytest.raises(ValueError, match="total_steps"):
        build_lr_schedule(0.1, 0, 10, 0, 0.1, "multistep", [1], 0.0)
    with pytest.raises(ValueError, match="lr_type"):
        build_lr_schedule(0.1, 5, 10, 0, 0.1, "linear", [1], 0.0)

"""Price models: group means and their fallbacks, the log-price regression, JSON save/load."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from src.damage_cost.features import PART_NAMES, SEVERITIES
from src.damage_cost.price_models import (PRICE_MODELS, GlobalMeanPriceModel, GroupMeanPriceModel,
                                          PriceModelError, RegressionPriceModel, load_price_model,
                                          save_price_model)

BASE = {"minor": 150.0, "moderate": 400.0, "severe": 900.0}
FACTOR = {"front_bumper": 1.0, "rear_bumper": 0.9, "headlamp": 1.4, "door": 1.3, "hood": 1.2, "unknown": 1.1}


def _claims(rows: list[tuple[str, str, float]], part_names: tuple[str, ...] = ("door", "hood"),
            areas: list[float] | None = None) -> pd.DataFrame:
    """A claims table of (main part or 'unknown', severity, price) rows: dice 0.5 on the main part."""
    data = {f"{name}_dice": [0.5 if part == name else 0.0 for part, _, _ in rows] for name in part_names}
    data["unknown"] = [int(part == "unknown") for part, _, _ in rows]
    for severity in SEVERITIES:
        data[severity] = [int(row_severity == severity) for _, row_severity, _ in rows]
    data["damage_area"] = areas if areas is not None else [0.01] * len(rows)
    data["price"] = [price for _, _, price in rows]
    return pd.DataFrame(data)


TRAIN = _claims([("door", "minor", 100), ("door", "minor", 200), ("door", "severe", 1000), ("hood", "minor", 300)])


def test_group_mean_and_each_fallback_level() -> None:
    model = GroupMeanPriceModel().fit(TRAIN)
    queries = _claims([("door", "minor", 1), ("hood", "severe", 1), ("hood", "moderate", 1), ("unknown", "minor", 1),
                       ("door", "severe", 1)])
    result = model.predict(queries.set_index(pd.Index([10, 11, 12, 13, 14])))
    # (door, minor) = (100 + 200) / 2; severe mean = 1000; moderate never seen -> global (100+200+1000+300) / 4;
    # (unknown, minor) unseen -> minor mean (100 + 200 + 300) / 3
    assert result["price"].tolist() == [150.0, 1000.0, 400.0, 200.0, 1000.0]
    assert result["fallback"].tolist() == ["part+severity", "severity", "global", "severity", "part+severity"]
    assert result.index.tolist() == [10, 11, 12, 13, 14] and list(result.columns) == ["price", "fallback"]


def test_global_mean() -> None:
    result = GlobalMeanPriceModel().fit(TRAIN).predict(TRAIN.head(2))
    assert result["price"].tolist() == [400.0, 400.0] and set(result["fallback"]) == {"global"}


def test_group_mean_by_cover_uses_the_cover_columns() -> None:
    table = TRAIN.assign(door_cover=[0.2, 0.2, 0.9, 0.9], hood_cover=[0.8, 0.8, 0.1, 0.1])
    model = GroupMeanPriceModel(overlap="cover").fit(table)
    assert model.groups == {("hood", "minor"): (150.0, 2), ("door", "severe"): (1000.0, 1),
                            ("door", "minor"): (300.0, 1)}
    with pytest.raises(KeyError, match="door_cover"):
        GroupMeanPriceModel(overlap="cover").fit(TRAIN)


def _multiplicative(count: int, seed: int, skip: tuple[str, str] | None = None, gain: float = 6.0) -> pd.DataFrame:
    """Noise-free prices BASE[severity] * FACTOR[part] * (1 + gain sqrt(area)) over the default parts."""
    rng = np.random.default_rng(seed)
    parts = list(PART_NAMES) + ["unknown"]
    rows, areas = [], []
    while len(rows) < count:
        part, severity = parts[rng.integers(len(parts))], SEVERITIES[rng.integers(3)]
        if (part, severity) == skip:
            continue
        area = float(rng.uniform(0.0005, 0.05))
        rows.append((part, severity, BASE[severity] * FACTOR[part] * (1 + gain * np.sqrt(area))))
        areas.append(area)
    return _claims(rows, PART_NAMES, areas)


def test_regression_recovers_a_multiplicative_price_rule_even_for_an_unseen_cell() -> None:
    model = RegressionPriceModel(area_gain=6.0).fit(_multiplicative(300, seed=1, skip=("hood", "severe")))
    test = _multiplicative(200, seed=2)
    result = model.predict(test)
    np.testing.assert_allclose(result["price"], test["price"], rtol=0.01)
    assert (test[["hood_dice", "severe"]].min(axis=1) > 0).sum() > 5    # the unseen cell is tested
    assert set(result["fallback"]) == {"model"}
    coefficients = model.to_dict()["params"]["coefficients"]
    assert coefficients["severity=moderate"] == pytest.approx(np.log(400 / 150), abs=0.01)
    assert coefficients["part=door"] == pytest.approx(np.log(1.3), abs=0.01)


@pytest.mark.parametrize("gain", [2.0, 16.0])
def test_regression_picks_the_area_gain_of_the_claims(gain: float) -> None:
    model = RegressionPriceModel().fit(_multiplicative(300, seed=1, gain=gain))
    assert model.area_gain == gain
    test = _multiplicative(50, seed=2, gain=gain)
    np.testing.assert_allclose(model.predict(test)["price"], test["price"], rtol=0.01)


@pytest.mark.parametrize("kind", list(PRICE_MODELS))
def test_save_load_round_trip_gives_identical_predictions(kind: str, tmp_path: Path) -> None:
    train = _multiplicative(60, seed=3)
    train["price"] = np.round(train["price"] * np.exp(np.random.default_rng(4).normal(0, 0.1, len(train))))
    model = PRICE_MODELS[kind](overlap="iou").fit(train.assign(**{f"{name}_iou": train[f"{name}_dice"] / 1.5
                                                                   for name in PART_NAMES}))
    path = tmp_path / "model.json"
    save_price_model(model, path)
    document = json.loads(path.read_text())
    assert (document["format"], document["version"], document["kind"]) == ("ms_rcnn-price-model", 1, kind)
    assert (document["part_names"], document["overlap"]) == (list(PART_NAMES), "iou")
    assert [file.name for file in tmp_path.iterdir()] == ["model.json"]     # no temporary file left
    loaded = load_price_model(path)
    assert type(loaded) is type(model)
    test = _multiplicative(40, seed=5)
    test = test.assign(**{f"{name}_iou": test[f"{name}_dice"] / 1.5 for name in PART_NAMES})
    pd.testing.assert_frame_equal(loaded.predict(test), model.predict(test))


@pytest.mark.parametrize("content, expected", [
    ("{not json", "not a JSON file"),
    ('{"format": "something-else", "version": 1}', "not a price model file"),
    ('{"format": "ms_rcnn-price-model", "version": 2, "kind": "group_mean"}', "version 2 is not supported"),
    ('{"format": "ms_rcnn-price-model", "version": 1, "kind": "forest"}', "unknown price model kind 'forest'"),
    ('{"format": "ms_rcnn-price-model", "version": 1, "kind": "global_mean", "part_names": ["door"], '
     '"overlap": "dice", "params": {}}', "incomplete or invalid global_mean"),
])
def test_load_errors_name_the_file(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "bad_model.json"
    path.write_text(content)
    with pytest.raises(PriceModelError) as error:
        load_price_model(path)
    assert str(path) in str(error.value) and expected in str(error.value)


def test_unfitted_model_and_unknown_overlap_are_refused() -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        RegressionPriceModel().predict(TRAIN)
    with pytest.raises(ValueError, match="'area'"):
        GroupMeanPriceModel(overlap="area")

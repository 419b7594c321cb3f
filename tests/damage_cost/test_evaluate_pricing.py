"""The k-fold pricing comparison command line and fit_price_model, on a generated claims.csv."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import KFold

from src.damage_cost.evaluate_pricing import fit_price_model, main
from src.damage_cost.price_models import PRICE_MODELS, GroupMeanPriceModel, load_price_model


def test_cli_prints_and_writes_the_table_and_fits_a_model(synthetic_dataset: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    claims_path = synthetic_dataset / "claims.csv"
    out, model_path = tmp_path / "cv.csv", tmp_path / "model.json"
    assert main([str(claims_path), "--folds", "3", "--seed", "1", "--out", str(out),
                 "--fit-out", str(model_path), "--model", "group_mean"]) == 0
    printed = capsys.readouterr().out
    table = pd.read_csv(out)
    assert table["model"].tolist() == list(PRICE_MODELS)
    assert all(kind in printed for kind in PRICE_MODELS) and "mape_%" in printed
    claims = pd.read_csv(claims_path)
    # the global-mean row by hand: 3 shuffled folds with seed 1, each test fold priced at its training mean
    prices, error = claims["price"].to_numpy(float), np.zeros(len(claims))
    for train_rows, test_rows in KFold(3, shuffle=True, random_state=1).split(claims):
        error[test_rows] = np.abs(prices[test_rows] - prices[train_rows].mean())
    row = table.set_index("model").loc["global_mean"]
    assert row["mae"] == pytest.approx(error.mean())
    assert row["mape_percent"] == pytest.approx(100 * (error / prices).mean())
    assert row["fallbacks"] == f"global={len(claims)}"
    levels = dict(item.split("=") for item in table.set_index("model").loc["group_mean", "fallbacks"].split())
    assert sum(map(int, levels.values())) == len(claims) and set(levels) <= {"part+severity", "severity", "global"}
    model = load_price_model(model_path)
    assert isinstance(model, GroupMeanPriceModel) and model.global_mean == (pytest.approx(prices.mean()), len(claims))


def test_cli_subset_and_overlaps_from_the_masks(synthetic_dataset: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    claims_path = synthetic_dataset / "claims.csv"
    out = tmp_path / "cv.csv"
    assert main([str(claims_path), "--folds", "2", "--subset", "train", "--overlap", "cover",
                 "--overlaps-from", str(synthetic_dataset), "--out", str(out)]) == 0
    assert "(subset train), main part by cover" in capsys.readouterr().out
    train_count = int((pd.read_csv(claims_path)["subset"] == "train").sum())
    assert pd.read_csv(out)["fallbacks"].iloc[0] == f"global={train_count}"


@pytest.mark.parametrize("extra, expected", [
    (["--overlap", "cover"], "no column(s) front_bumper_cover"),
    (["--subset", "holdout"], "no row with subset 'holdout'"),
])
def test_cli_bad_input_exits_2_with_the_message(synthetic_dataset: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture, extra: list[str],
                                                expected: str) -> None:
    assert main([str(synthetic_dataset / "claims.csv"), "--out", str(tmp_path / "cv.csv"), *extra]) == 2
    error = capsys.readouterr().err
    assert expected in error and "Traceback" not in error and not (tmp_path / "cv.csv").exists()


def test_cli_bad_claims_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("door_dice,unknown,minor,moderate,severe,damage_area,price\n0.5,0,1,0,0,0.01,-3\n")
    assert main([str(bad), "--out", str(tmp_path / "cv.csv")]) == 2
    assert f"{bad}: column 'price', data row 1" in capsys.readouterr().err


def test_fit_price_model_saves_a_loadable_model(synthetic_dataset: Path, tmp_path: Path) -> None:
    claims = pd.read_csv(synthetic_dataset / "claims.csv")
    model = fit_price_model(synthetic_dataset / "claims.csv", "regression", tmp_path / "m.json", subset="train")
    loaded = load_price_model(tmp_path / "m.json")
    pd.testing.assert_frame_equal(loaded.predict(claims), model.predict(claims))
    with pytest.raises(KeyError, match="'forest'"):
        fit_price_model(synthetic_dataset / "claims.csv", "forest", tmp_path / "f.json")

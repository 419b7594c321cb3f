"""evaluate_cost: damage matching by hand, and on a generated dataset the ground-truth row equals the price model's
own error computed independently from claims.csv."""
import numpy as np
import pandas as pd
import pytest

from src.damage_cost import evaluate_cost
from src.damage_cost.price_models import GroupMeanPriceModel, save_price_model


def square(top: int, left: int, side: int) -> np.ndarray:
    mask = np.zeros((30, 30), np.uint8)
    mask[top:top + side, left:left + side] = 1
    return mask


def test_match_damages_is_one_to_one_by_confidence():
    annotated = np.stack([square(0, 0, 10), square(15, 15, 10)])
    predicted = np.stack([square(0, 1, 10),     # IoU 90/110 with annotation 0
                          square(0, 0, 10),     # IoU 1 with annotation 0, more confident: takes it
                          square(16, 16, 10),   # IoU 81/119 = 0.68 with annotation 1
                          square(0, 20, 5)])    # matches nothing
    pairs = evaluate_cost.match_damages(predicted, [0.5, 0.9, 0.7, 0.8], annotated)
    assert pairs == [(1, 0), (2, 1)]
    assert evaluate_cost.match_damages(predicted[:0], [], annotated) == []


def test_summarize_by_hand():
    rows = [{"true": 100.0, "estimated": 150.0, "matched_errors": [50.0], "matched": 1, "annotated": 1,
             "predicted": 2},
            {"true": 200.0, "estimated": 180.0, "matched_errors": [10.0, 10.0], "matched": 2, "annotated": 3,
             "predicted": 2}]
    summary = evaluate_cost.summarize(rows)
    assert summary["image_mae"] == pytest.approx(35.0)
    assert summary["image_mape"] == pytest.approx(100 * (0.5 + 0.1) / 2)
    assert summary["damage_mae"] == pytest.approx(70.0 / 3)
    assert summary["recall"] == pytest.approx(3 / 4) and summary["precision"] == pytest.approx(3 / 4)


def test_ground_truth_row_is_the_price_models_own_error(synthetic_dataset, tiny_joint_model, tmp_path):
    claims = pd.read_csv(synthetic_dataset / "claims.csv")
    model = GroupMeanPriceModel().fit(claims[claims["subset"] == "train"])
    price_path = tmp_path / "price.json"
    save_price_model(model, price_path)
    config_path, checkpoint = tiny_joint_model
    out = tmp_path / "costs.csv"
    assert evaluate_cost.main(["--parts-config", str(config_path), "--parts-ckpt", str(checkpoint),
                               "--price-model", str(price_path), "--dataset", str(synthetic_dataset),
                               "--subset", "train", "--score-thr", "0.0", "0.5", "--out", str(out),
                               "--device-target", "CPU"]) == 0
    table = pd.read_csv(out)
    assert list(table["pipeline"]) == ["ground-truth masks", "models, score >= 0", "models, score >= 0.5"]
    train = claims[claims["subset"] == "train"].copy()
    train["estimate"] = np.floor(model.predict(train)["price"].to_numpy() + 0.5)
    per_image = train.groupby("file_name")[["price", "estimate"]].sum()
    truth = table.iloc[0]
    assert truth["image_mae"] == pytest.approx((per_image["estimate"] - per_image["price"]).abs().mean())
    assert truth["damage_mae"] == pytest.approx((train["estimate"] - train["price"]).abs().mean())
    assert truth["recall"] == truth["precision"] == 1.0
    assert truth["true_total"] == table.iloc[1]["true_total"] == train["price"].sum()
    images = pd.read_csv(tmp_path / "costs_images.csv")
    assert len(images) == 3 * per_image.shape[0]
    loose, strict = table.iloc[1], table.iloc[2]
    assert strict["estimated_total"] <= loose["estimated_total"] and loose["ms_per_image"] > 0


def test_threshold_rows_default_to_each_models_threshold():
    from src.damage_cost.evaluate_cost import threshold_rows

    assert threshold_rows(None, (0.3, 0.4), joint=False) == {"models, parts >= 0.3, damage >= 0.4": (0.3, 0.4)}
    assert threshold_rows(None, (0.3, 0.4), joint=True) == {"models, score >= 0.3": (0.3, 0.3)}
    assert threshold_rows([0.2, 0.5], (0.3, 0.4), joint=False) == {"models, score >= 0.2": (0.2, 0.2),
                                                                    "models, score >= 0.5": (0.5, 0.5)}

"""Reading and checking claims files, and rebuilding their overlap columns from a dataset's masks."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from src.damage_cost.claims import ClaimsError, claims_with_overlaps, read_claims, validate_claims
from src.damage_cost.features import PART_NAMES, main_part


def _claims() -> pd.DataFrame:
    """Three valid claims over two parts."""
    return pd.DataFrame({"image_id": [1, 1, 2], "door_dice": [0.5, 0.0, 0.1], "hood_dice": [0.0, 0.0, 0.4],
                         "unknown": [0, 1, 0], "minor": [1, 0, 0], "moderate": [0, 1, 0], "severe": [0, 0, 1],
                         "damage_area": [0.01, 0.02, 0.03], "price": [200, 450, 1300]})


def _write(tmp_path: Path, table: pd.DataFrame) -> Path:
    path = tmp_path / "claims.csv"
    table.to_csv(path, index=False)
    return path


def test_a_valid_file_reads_as_numbers(tmp_path: Path) -> None:
    table = read_claims(_write(tmp_path, _claims()))
    assert table["price"].tolist() == [200.0, 450.0, 1300.0]
    assert table["door_dice"].dtype == np.float64
    assert main_part(table).tolist() == ["door", "unknown", "hood"]


@pytest.mark.parametrize("column, value, row, expected", [
    ("price", "abc", 1, "expected a number"),
    ("price", "", 2, "expected a number"),
    ("price", "-5", 2, "expected a price > 0"),
    ("damage_area", "1.5", 0, "expected a value in [0, 1]"),
    ("hood_dice", "-0.1", 1, "expected a value in [0, 1]"),
    ("unknown", "2", 0, "expected 0 or 1"),
])
def test_bad_values_name_file_column_and_row(tmp_path: Path, column: str, value: str, row: int,
                                             expected: str) -> None:
    table = _claims().astype({column: object})
    table.loc[row, column] = value
    path = _write(tmp_path, table)
    with pytest.raises(ClaimsError) as error:
        read_claims(path)
    message = str(error.value)
    assert str(path) in message and f"column '{column}'" in message and expected in message
    assert f"data row {row + 1} (1-based, header not counted; spreadsheet row {row + 2})" in message


def test_severity_one_hot_must_have_exactly_one(tmp_path: Path) -> None:
    table = _claims()
    table.loc[2, "minor"] = 1
    with pytest.raises(ClaimsError, match=r"minor, moderate, severe, data row 3 .*exactly one severity.*got 2"):
        read_claims(_write(tmp_path, table))


def test_missing_columns_are_listed(tmp_path: Path) -> None:
    path = _write(tmp_path, _claims().drop(columns=["severe", "price"]))
    with pytest.raises(ClaimsError, match=r"claims\.csv: missing column\(s\) severe, price"):
        read_claims(path)
    with pytest.raises(ClaimsError, match=r"<part>_dice"):
        validate_claims(_claims().drop(columns=["door_dice", "hood_dice"]), "mine.csv")


def test_empty_file_header_only_and_absent_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ClaimsError, match=r"empty\.csv: empty file"):
        read_claims(empty)
    header_only = tmp_path / "header.csv"
    header_only.write_text(",".join(_claims().columns) + "\n")
    with pytest.raises(ClaimsError, match=r"header\.csv: no data rows"):
        read_claims(header_only)
    with pytest.raises(ClaimsError, match=r"absent\.csv: claims file not found"):
        read_claims(tmp_path / "absent.csv")


def test_generated_claims_are_valid(synthetic_dataset: Path) -> None:
    table = read_claims(synthetic_dataset / "claims.csv")
    assert len(table) > 10 and set(table["subset"]) == {"train", "validation", "test"}


def test_claims_with_overlaps_match_claims_and_add_iou_and_cover(synthetic_dataset: Path) -> None:
    claims = pd.read_csv(synthetic_dataset / "claims.csv")
    table = claims_with_overlaps(synthetic_dataset)
    assert list(table.columns[:4]) == ["image_id", "file_name", "subset", "annotation_id"]
    assert table.columns[-1] == "price"
    compared = [f"{name}_dice" for name in PART_NAMES] + ["unknown", "minor", "moderate", "severe", "damage_area",
                                                          "price"]
    np.testing.assert_array_equal(table["annotation_id"], claims["annotation_id"])
    np.testing.assert_allclose(table[compared].to_numpy(float), claims[compared].to_numpy(float), atol=1e-6)
    for name in PART_NAMES:
        dice, iou, cover = (table[f"{name}_{kind}"].to_numpy() for kind in ("dice", "iou", "cover"))
        np.testing.assert_allclose(iou, dice / (2 - dice))            # IoU = dice / (2 - dice) for one pair
        assert ((cover > 0) == (dice > 0)).all() and (cover <= 1).all()


def test_claims_with_overlaps_refuses_unknown_annotation_ids(synthetic_dataset: Path, tmp_path: Path) -> None:
    claims = pd.read_csv(synthetic_dataset / "claims.csv")
    claims.loc[1, "annotation_id"] = 9999
    path = _write(tmp_path, claims)
    with pytest.raises(ClaimsError, match=r"column 'annotation_id', data row 2 .*9999"):
        claims_with_overlaps(synthetic_dataset, path)

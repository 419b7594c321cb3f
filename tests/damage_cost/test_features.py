"""Overlap matrices and the per-damage feature table, on hand-drawn masks and on a generated dataset."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from src.damage_cost.features import (PART_NAMES, SEVERITIES, build_feature_table, feature_columns, main_part,
                                      overlap_matrices)
from src.data.coco import CocoDataset, decode_masks

SUBSETS = ("train", "validation", "test")


def _mask(shape: tuple[int, int], rows: slice, cols: slice) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[rows, cols] = True
    return mask


# damage: the top-left 2x2 block of a 4x4 image (4 pixels)
DAMAGE = _mask((4, 4), slice(0, 2), slice(0, 2))
DISJOINT = _mask((4, 4), slice(2, 4), slice(2, 4))          # 4 px, no shared pixel
CONTAINING = _mask((4, 4), slice(0, 2), slice(0, 4))        # 8 px, holds the whole damage
PARTIAL = _mask((4, 4), slice(1, 3), slice(1, 3))           # 4 px, shares pixel (1, 1)
EMPTY = np.zeros((4, 4), bool)


def test_overlaps_of_one_damage_with_disjoint_containing_partial_and_empty_parts() -> None:
    result = overlap_matrices(DAMAGE[None], np.stack([DISJOINT, CONTAINING, PARTIAL, EMPTY]).astype(np.uint8))
    np.testing.assert_array_equal(result["intersection"], [[0, 4, 1, 0]])
    assert result["intersection"].dtype == np.int64
    # dice 2I/(|D|+|P|): 0, 8/12, 2/8, 0; iou I/(|D|+|P|-I): 0, 4/8, 1/7, 0; cover I/|D|: 0, 1, 1/4, 0
    np.testing.assert_allclose(result["dice"], [[0.0, 2 / 3, 0.25, 0.0]])
    np.testing.assert_allclose(result["iou"], [[0.0, 0.5, 1 / 7, 0.0]])
    np.testing.assert_allclose(result["cover"], [[0.0, 1.0, 0.25, 0.0]])
    assert all(result[key].dtype == np.float64 for key in ("dice", "iou", "cover"))


def test_an_empty_damage_has_zero_overlaps_and_no_nan() -> None:
    result = overlap_matrices(np.stack([EMPTY, DAMAGE]), np.stack([EMPTY, CONTAINING]))
    for key in ("dice", "iou", "cover"):
        assert not np.isnan(result[key]).any()
        np.testing.assert_array_equal(result[key][0], [0.0, 0.0])
    np.testing.assert_allclose(result["dice"][1], [0.0, 2 / 3])


def test_no_damage_or_no_part_gives_empty_matrices() -> None:
    assert overlap_matrices(np.zeros((0, 4, 4)), np.stack([DAMAGE]))["dice"].shape == (0, 1)
    assert overlap_matrices(np.stack([DAMAGE, DAMAGE]), np.zeros((0, 4, 4)))["cover"].shape == (2, 0)
    assert overlap_matrices(np.zeros((0, 4, 4)), np.zeros((0, 4, 4)))["iou"].shape == (0, 0)


def test_masks_of_different_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="one image size"):
        overlap_matrices(DAMAGE[None], np.zeros((1, 4, 5)))


def test_damage_over_two_parts_and_two_instances_of_one_part() -> None:
    damage = _mask((4, 4), slice(0, 2), slice(0, 4))                  # 8 px: top half
    door = _mask((4, 4), slice(0, 4), slice(0, 2))                    # 8 px, shares 4: dice 0.5, iou 1/3, cover 0.5
    hood = _mask((4, 4), slice(0, 1), slice(2, 4))                    # 2 px, shares 2: dice 0.4, iou 0.25, cover 0.25
    hood_far = _mask((4, 4), slice(3, 4), slice(2, 4))                # second hood instance, no overlap
    table = build_feature_table(damage[None], ["moderate"], np.stack([hood_far, door, hood]),
                                ["hood", "door", "hood"])
    row = table.iloc[0]
    assert (row["door_dice"], row["hood_dice"], row["front_bumper_dice"]) == pytest.approx((0.5, 0.4, 0.0))
    assert (row["door_iou"], row["hood_iou"]) == pytest.approx((1 / 3, 0.25))
    assert (row["door_cover"], row["hood_cover"]) == pytest.approx((0.5, 0.25))
    assert row["unknown"] == 0 and row["main_part"] == "door"
    assert row["damage_area"] == pytest.approx(8 / 16)


def test_table_columns_severity_one_hot_unknown_and_area() -> None:
    on_hood = _mask((4, 4), slice(0, 1), slice(0, 1))                 # 1 px on the hood
    off_car = _mask((4, 4), slice(3, 4), slice(0, 4))                 # 4 px, on no part
    hood = _mask((4, 4), slice(0, 2), slice(0, 2))
    table = build_feature_table(np.stack([on_hood, off_car, on_hood]), ["severe", "minor", "moderate"],
                                hood[None], ["hood"])
    assert list(table.columns) == feature_columns(PART_NAMES)
    assert list(table.columns[:10]) == [f"{name}_dice" for name in PART_NAMES] + [
        "unknown", "minor", "moderate", "severe", "damage_area"]
    assert table["unknown"].tolist() == [0, 1, 0]
    assert table[list(SEVERITIES)].to_numpy().tolist() == [[0, 0, 1], [1, 0, 0], [0, 1, 0]]
    assert table["damage_area"].tolist() == pytest.approx([1 / 16, 4 / 16, 1 / 16])
    assert table["main_part"].tolist() == ["hood", "unknown", "hood"]
    assert table["hood_dice"].tolist() == pytest.approx([2 / 5, 0.0, 2 / 5])


def test_ties_follow_the_part_order_not_the_instance_order() -> None:
    left, right = _mask((4, 4), slice(0, 2), slice(0, 1)), _mask((4, 4), slice(0, 2), slice(1, 2))
    table = build_feature_table(DAMAGE[None], ["minor"], np.stack([left, right]), ["hood", "front_bumper"])
    assert table.loc[0, "hood_dice"] == table.loc[0, "front_bumper_dice"] == pytest.approx(2 / 3)
    assert table.loc[0, "main_part"] == "front_bumper"


def test_dice_and_cover_can_choose_different_main_parts() -> None:
    damage = _mask((8, 8), slice(0, 2), slice(0, 3))                  # 6 px
    headlamp = _mask((8, 8), slice(0, 2), slice(0, 1))                # 2 px inside: dice 4/8, cover 2/6
    door = _mask((8, 8), slice(0, 4), slice(0, 8)) & ~headlamp        # 30 px, 4 shared: dice 8/36, cover 4/6
    table = build_feature_table(damage[None], ["minor"], np.stack([headlamp, door]), ["headlamp", "door"])
    assert table.loc[0, "main_part"] == "headlamp"
    assert main_part(table, "dice").tolist() == ["headlamp"]
    assert main_part(table, "iou").tolist() == ["headlamp"]
    assert main_part(table, "cover").tolist() == ["door"]


def test_other_part_names_and_bad_names() -> None:
    table = build_feature_table(DAMAGE[None], ["minor"], CONTAINING[None], ["wing"], part_names=("roof", "wing"))
    assert list(table.columns[:3]) == ["roof_dice", "wing_dice", "unknown"]
    assert table.loc[0, "main_part"] == "wing"
    assert main_part(table).tolist() == ["wing"]                      # part names from the *_dice columns
    with pytest.raises(ValueError, match="'scratch'"):
        build_feature_table(DAMAGE[None], ["scratch"], CONTAINING[None], ["door"])
    with pytest.raises(ValueError, match="'wing'"):
        build_feature_table(DAMAGE[None], ["minor"], CONTAINING[None], ["wing"])


def test_main_part_on_a_claims_like_table() -> None:
    table = pd.DataFrame({"door_dice": [0.2, 0.0, 0.3, 0.0], "hood_dice": [0.5, 0.0, 0.3, 0.1],
                          "unknown": [0, 1, 0, 1]})
    assert main_part(table).tolist() == ["hood", "unknown", "door", "unknown"]
    with pytest.raises(KeyError, match="door_cover"):
        main_part(table, "cover")


def test_table_from_the_annotated_masks_equals_claims_csv(synthetic_dataset: Path) -> None:
    claims = pd.read_csv(synthetic_dataset / "claims.csv")
    with open(synthetic_dataset / "claims.csv", newline="") as handle:
        header = next(csv.reader(handle))
    compared = header[4:-1]
    tables = []
    for subset in SUBSETS:
        parts = CocoDataset(synthetic_dataset / "parts" / subset, ["background", *PART_NAMES])
        damage = CocoDataset(synthetic_dataset / "damage" / subset, ["background", *SEVERITIES])
        for image_id in damage.image_ids:
            damage_record, part_record = damage.record(image_id), parts.record(image_id)
            table = build_feature_table(decode_masks(damage_record),
                                        [SEVERITIES[label - 1] for label in damage_record.labels],
                                        decode_masks(part_record),
                                        [PART_NAMES[label - 1] for label in part_record.labels])
            table["image_id"] = image_id
            tables.append(table)
    rebuilt = pd.concat(tables).sort_values("image_id", kind="stable").reset_index(drop=True)
    assert list(rebuilt.columns[:len(compared)]) == compared
    assert len(rebuilt) == len(claims) > 10
    np.testing.assert_array_equal(rebuilt["image_id"], claims["image_id"])
    np.testing.assert_allclose(rebuilt[compared].to_numpy(float), claims[compared].to_numpy(float), atol=1e-6)
    assert rebuilt["unknown"].sum() > 0
    pd.testing.assert_series_equal(main_part(claims), rebuilt["main_part"])

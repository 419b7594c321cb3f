"""Features of each damage against the car-part masks of its image: dice, IoU and cover, severity, area.

The first columns of :func:`build_feature_table` are those of the synthetic generator's ``claims.csv``
(``<part>_dice``, ``unknown``, ``minor``, ``moderate``, ``severe``, ``damage_area``) with the same meaning, so a claims
file and a table built at test time from predicted masks can be priced by the same model.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

PART_NAMES = ("front_bumper", "rear_bumper", "headlamp", "door", "hood")
SEVERITIES = ("minor", "moderate", "severe")
OVERLAPS = ("dice", "iou", "cover")
UNKNOWN_PART = "unknown"
# float32 sums of 0/1 products are exact up to 2**24; larger images use float64
_FLOAT32_EXACT_PIXELS = 2 ** 24


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator elementwise (float64), 0 where the denominator is 0."""
    result = np.zeros(numerator.shape, np.float64)
    np.divide(numerator, denominator, out=result, where=denominator > 0)
    return result


def overlap_matrices(damage_masks: np.ndarray, part_masks: np.ndarray) -> dict[str, np.ndarray]:
    """Pairwise overlaps of D damage masks [D,H,W] with P part masks [P,H,W] (bool or 0/1 integers).

    Returns ``intersection`` [D,P] int64 (|D∩P| pixels) and [D,P] float64 ``dice`` 2|D∩P|/(|D|+|P|),
    ``iou`` |D∩P|/|D∪P| and ``cover`` |D∩P|/|D| (the share of the damage lying on the part); a ratio with an
    empty denominator is 0. D or P may be 0.
    """
    damage_masks, part_masks = np.asarray(damage_masks), np.asarray(part_masks)
    if damage_masks.ndim != 3 or part_masks.ndim != 3 or damage_masks.shape[1:] != part_masks.shape[1:]:
        raise ValueError(f"expected damage masks [D,H,W] and part masks [P,H,W] of one image size, got "
                         f"{damage_masks.shape} and {part_masks.shape}")
    pixels = damage_masks.shape[1] * damage_masks.shape[2]
    dtype = np.float32 if pixels <= _FLOAT32_EXACT_PIXELS else np.float64
    damage = (damage_masks.reshape(len(damage_masks), pixels) != 0).astype(dtype)
    parts = (part_masks.reshape(len(part_masks), pixels) != 0).astype(dtype)
    intersection = np.rint(damage @ parts.T).astype(np.int64)
    damage_area = damage.sum(axis=1, dtype=np.float64)[:, None]
    part_area = parts.sum(axis=1, dtype=np.float64)[None, :]
    overlap = intersection.astype(np.float64)
    return {"intersection": intersection,
            "dice": _ratio(2.0 * overlap, damage_area + part_area),
            "iou": _ratio(overlap, damage_area + part_area - overlap),
            "cover": _ratio(overlap, np.broadcast_to(damage_area, overlap.shape))}


def overlap_columns(overlap: str, part_names: Sequence[str]) -> list[str]:
    """Column names ``<part>_<overlap>`` in part order."""
    if overlap not in OVERLAPS:
        raise ValueError(f"unknown overlap measure '{overlap}' (expected one of {', '.join(OVERLAPS)})")
    return [f"{name}_{overlap}" for name in part_names]


def feature_columns(part_names: Sequence[str] = PART_NAMES) -> list[str]:
    """Columns of :func:`build_feature_table`, in order."""
    return (overlap_columns("dice", part_names) + [UNKNOWN_PART, *SEVERITIES, "damage_area"]
            + overlap_columns("iou", part_names) + overlap_columns("cover", part_names) + ["main_part"])


def _max_per_part(matrix: np.ndarray, part_index: np.ndarray, num_parts: int) -> np.ndarray:
    """[D,P_instances] -> [D,num_parts]: the largest value over each part's instances (0 for a part with none)."""
    result = np.zeros((matrix.shape[0], num_parts), np.float64)
    for index in range(num_parts):
        columns = matrix[:, part_index == index]
        if columns.shape[1]:
            result[:, index] = columns.max(axis=1)
    return result


def build_feature_table(damage_masks: np.ndarray, severities: Sequence[str], part_masks: np.ndarray,
                        part_classes: Sequence[str], part_names: Sequence[str] = PART_NAMES) -> pd.DataFrame:
    """One row per damage of one image, columns as listed by :func:`feature_columns`.

    Args:
        damage_masks: [D,H,W] bool/0-1 masks of the damages; severities: their D severity names (of SEVERITIES).
        part_masks: [P,H,W] masks of the part instances; part_classes: their P class names (of part_names).
        part_names: the parts, in tie-breaking order.

    ``<part>_dice`` / ``_iou`` / ``_cover``: the largest value over that part's instances (0 when none);
    ``unknown`` = 1 when the damage overlaps no part instance; one-hot ``minor``, ``moderate``, ``severe``;
    ``damage_area`` = damage pixels / (H*W); ``main_part`` = part with the largest dice ('unknown' when unknown = 1).

    Raises:
        ValueError: a severity not in SEVERITIES, a part class not in part_names, or mismatched lengths.
    """
    part_names = list(part_names)
    damage_masks, part_masks = np.asarray(damage_masks), np.asarray(part_masks)
    if len(severities) != len(damage_masks) or len(part_classes) != len(part_masks):
        raise ValueError(f"{len(damage_masks)} damage masks with {len(severities)} severities, "
                         f"{len(part_masks)} part masks with {len(part_classes)} part classes")
    for name in severities:
        if name not in SEVERITIES:
            raise ValueError(f"unknown severity '{name}' (expected one of {', '.join(SEVERITIES)})")
    for name in part_classes:
        if name not in part_names:
            raise ValueError(f"unknown part class '{name}' (expected one of {', '.join(part_names)})")
    overlaps = overlap_matrices(damage_masks, part_masks)
    part_index = np.array([part_names.index(name) for name in part_classes], np.int64)
    columns: dict[str, np.ndarray] = {}
    per_part = {overlap: _max_per_part(overlaps[overlap], part_index, len(part_names)) for overlap in OVERLAPS}
    columns.update(zip(overlap_columns("dice", part_names), per_part["dice"].T))
    columns[UNKNOWN_PART] = (overlaps["intersection"].sum(axis=1) == 0).astype(np.int64)
    for name in SEVERITIES:
        columns[name] = np.array([int(severity == name) for severity in severities], np.int64)
    pixels = damage_masks.shape[1] * damage_masks.shape[2]
    columns["damage_area"] = (damage_masks.reshape(len(damage_masks), pixels) != 0).sum(axis=1) / float(pixels)
    for overlap in ("iou", "cover"):
        columns.update(zip(overlap_columns(overlap, part_names), per_part[overlap].T))
    table = pd.DataFrame(columns, columns=feature_columns(part_names)[:-1])
    table["main_part"] = main_part(table, "dice", part_names)
    return table


def part_names_of(table: pd.DataFrame) -> list[str]:
    """Part names of a table, from its ``<part>_dice`` columns in column order."""
    return [column[:-len("_dice")] for column in table.columns if column.endswith("_dice")]


def main_part(table: pd.DataFrame, overlap: str = "dice", part_names: Sequence[str] | None = None) -> pd.Series:
    """Main part of each row [N] (str): the part with the largest ``<part>_<overlap>``, ties broken by part order;
    'unknown' when the row's ``unknown`` column is 1 (when present) or every overlap is 0.

    ``part_names`` defaults to the parts of the ``*_dice`` columns, so a claims table read from CSV works as is.
    """
    part_names = list(part_names) if part_names is not None else part_names_of(table)
    columns = overlap_columns(overlap, part_names)
    missing = [column for column in columns if column not in table.columns]
    if missing or not columns:
        raise KeyError(f"main part by {overlap} needs the columns {', '.join(columns) or '<part>_dice'}; "
                       f"missing: {', '.join(missing) or 'no part columns'}")
    values = table[columns].to_numpy(np.float64).reshape(len(table), len(columns))
    best = values.argmax(axis=1) if len(table) else np.zeros(0, np.int64)
    unknown = values.max(axis=1, initial=0.0) <= 0
    if UNKNOWN_PART in table.columns:
        unknown |= table[UNKNOWN_PART].to_numpy() == 1
    names = np.array(part_names + [UNKNOWN_PART], dtype=object)
    return pd.Series(names[np.where(unknown, len(part_names), best)], index=table.index, name="main_part")


def severity_of(table: pd.DataFrame) -> pd.Series:
    """Severity name of each row [N] from the one-hot ``minor``, ``moderate``, ``severe`` columns (largest wins)."""
    values = table[list(SEVERITIES)].to_numpy(np.float64).reshape(len(table), len(SEVERITIES))
    best = values.argmax(axis=1) if len(table) else np.zeros(0, np.int64)
    return pd.Series(np.array(SEVERITIES, dtype=object)[best], index=table.index, name="severity")

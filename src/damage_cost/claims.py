"""Claims tables (one row per damage with its price): reading, checking, and rebuilding overlaps from masks.

A claims table has the columns of the synthetic generator's ``claims.csv``: ``<part>_dice`` for one or more parts,
``unknown``, ``minor``, ``moderate``, ``severe``, ``damage_area`` (fraction of the image) and ``price``; other
columns (``image_id``, ``subset``, ...) are kept as they are. Rows in messages are counted like a spreadsheet user
sees them: data row 1 is the first row under the header (spreadsheet row 2).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from src.damage_cost.features import SEVERITIES, UNKNOWN_PART, build_feature_table, part_names_of
from src.data import CocoDataset, decode_masks, segmentation_to_mask

BASE_COLUMNS = (UNKNOWN_PART, *SEVERITIES, "damage_area", "price")


class ClaimsError(ValueError):
    """A claims table is missing, empty or malformed; the message names the file, and the column and row."""


def _row_label(position: int) -> str:
    """How a 0-based data position is shown to the user."""
    return f"data row {position + 1} (1-based, header not counted; spreadsheet row {position + 2})"


def _first_bad(source: str, table: pd.DataFrame, column: str, bad: np.ndarray, problem: str) -> None:
    """Raise ClaimsError naming the first row where ``bad`` [N] bool is set, if any."""
    positions = np.flatnonzero(bad)
    if len(positions):
        position = int(positions[0])
        more = f" ({len(positions) - 1} more row(s) like it)" if len(positions) > 1 else ""
        raise ClaimsError(f"{source}: column '{column}', {_row_label(position)}: {problem}, got "
                          f"{table[column].iloc[position]!r}{more}")


def validate_claims(table: pd.DataFrame, source: str | os.PathLike) -> pd.DataFrame:
    """Check a claims table and return it with its feature and price columns converted to numbers (float64).

    Args:
        table: the claims, one row per damage; source: the file (or a description) named in error messages.

    Raises:
        ClaimsError: no rows, a missing column (at least one ``<part>_dice``, and ``unknown``, ``minor``,
            ``moderate``, ``severe``, ``damage_area``, ``price``), an empty or non-numeric value, a price <= 0, a
            dice or damage_area outside [0, 1], an ``unknown`` or severity flag other than 0/1, or a severity
            one-hot without exactly one 1.
    """
    source = str(source)
    dice_columns = [f"{name}_dice" for name in part_names_of(table)]
    missing = [column for column in BASE_COLUMNS if column not in table.columns]
    if not dice_columns:
        missing.insert(0, "<part>_dice (at least one, e.g. door_dice)")
    if missing:
        raise ClaimsError(f"{source}: missing column(s) {', '.join(missing)}; a claims table needs <part>_dice "
                          f"columns and {', '.join(BASE_COLUMNS)}")
    if len(table) == 0:
        raise ClaimsError(f"{source}: no data rows (only a header)")
    table = table.copy()
    for column in dice_columns + list(BASE_COLUMNS):
        values = pd.to_numeric(table[column], errors="coerce").astype(np.float64)
        _first_bad(source, table, column, ~np.isfinite(values.to_numpy()), "expected a number")
        table[column] = values
    for column in dice_columns + ["damage_area"]:
        values = table[column].to_numpy()
        _first_bad(source, table, column, (values < 0) | (values > 1), "expected a value in [0, 1]")
    for column in (UNKNOWN_PART, *SEVERITIES):
        values = table[column].to_numpy()
        _first_bad(source, table, column, (values != 0) & (values != 1), "expected 0 or 1")
    _first_bad(source, table, "price", table["price"].to_numpy() <= 0, "expected a price > 0")
    flags = table[list(SEVERITIES)].sum(axis=1).to_numpy()
    positions = np.flatnonzero(flags != 1)
    if len(positions):
        position = int(positions[0])
        raise ClaimsError(f"{source}: columns {', '.join(SEVERITIES)}, {_row_label(position)}: exactly one "
                          f"severity must be 1, got {int(flags[position])}")
    return table


def read_claims(path: str | os.PathLike) -> pd.DataFrame:
    """Read and check a claims CSV file (see :func:`validate_claims`); ClaimsError naming the file when unreadable."""
    path = Path(path)
    try:
        table = pd.read_csv(path)
    except FileNotFoundError:
        raise ClaimsError(f"{path}: claims file not found") from None
    except pd.errors.EmptyDataError:
        raise ClaimsError(f"{path}: empty file (expected a CSV header and one row per damage)") from None
    except (pd.errors.ParserError, UnicodeDecodeError, IsADirectoryError) as error:
        raise ClaimsError(f"{path}: not a readable CSV file: {error}") from None
    return validate_claims(table, path)


def _subset_features(parts_dir: Path, damage_dir: Path, part_names: list[str]) -> pd.DataFrame:
    """Feature table of every damage annotation of one subset, with its ``annotation_id``."""
    parts = CocoDataset(parts_dir, ["background", *part_names])
    damage = CocoDataset(damage_dir, ["background", *SEVERITIES])
    tables = []
    for image_id in damage.image_ids:
        annotations = damage.coco.imgToAnns.get(image_id, [])
        if not annotations:
            continue
        height, width = damage.image_size(image_id)
        damage_masks = np.stack([segmentation_to_mask(annotation["segmentation"], height, width)
                                 for annotation in annotations])
        severities = [SEVERITIES[damage.label_of(annotation["category_id"]) - 1] for annotation in annotations]
        if image_id in parts.coco.imgs:
            record = parts.record(image_id)
            part_masks, part_classes = decode_masks(record), [part_names[label - 1] for label in record.labels]
        else:
            part_masks, part_classes = np.zeros((0, height, width), np.uint8), []
        table = build_feature_table(damage_masks, severities, part_masks, part_classes, part_names)
        table.insert(0, "annotation_id", [annotation["id"] for annotation in annotations])
        tables.append(table)
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def claims_with_overlaps(dataset_dir: str | os.PathLike, claims_path: str | os.PathLike | None = None) -> pd.DataFrame:
    """Claims rebuilt from the masks of a dataset folder, with ``<part>_iou`` and ``<part>_cover`` columns.

    Args:
        dataset_dir: a folder with ``parts/<subset>`` and ``damage/<subset>`` COCO subsets (labels.json + data/) of
            the same images, as written by ``src.tools.make_synthetic_car_damage``.
        claims_path: the claims CSV whose ``annotation_id`` are the damage annotation ids (default
            ``dataset_dir/claims.csv``); the part names are those of its ``<part>_dice`` columns.

    Returns:
        One row per claim, in the claims file's order: its ``image_id``, ``file_name``, ``subset`` and
        ``annotation_id`` (those present), the columns of :func:`build_feature_table` computed from the masks,
        and its ``price``.

    Raises:
        ClaimsError: bad claims file, no subsets, or a claim whose annotation id is not in the damage subsets.
    """
    dataset_dir = Path(dataset_dir)
    claims_path = Path(claims_path) if claims_path is not None else dataset_dir / "claims.csv"
    claims = read_claims(claims_path)
    if "annotation_id" not in claims.columns:
        raise ClaimsError(f"{claims_path}: missing column annotation_id (the damage annotation id of each claim)")
    part_names = part_names_of(claims)
    subsets = sorted(path.parent.name for path in (dataset_dir / "parts").glob("*/labels.json")
                     if (dataset_dir / "damage" / path.parent.name / "labels.json").is_file())
    if not subsets:
        raise ClaimsError(f"{dataset_dir}: no subset with both parts/<subset>/labels.json and "
                          f"damage/<subset>/labels.json")
    features = pd.concat([_subset_features(dataset_dir / "parts" / subset, dataset_dir / "damage" / subset,
                                           part_names) for subset in subsets], ignore_index=True)
    known = set(features["annotation_id"]) if len(features) else set()
    absent = ~claims["annotation_id"].isin(known).to_numpy()
    if absent.any():
        position = int(np.flatnonzero(absent)[0])
        raise ClaimsError(f"{claims_path}: column 'annotation_id', {_row_label(position)}: no damage annotation "
                          f"{claims['annotation_id'].iloc[position]!r} in {dataset_dir}/damage/{{{','.join(subsets)}}}")
    keys = [column for column in ("image_id", "file_name", "subset", "annotation_id") if column in claims.columns]
    return claims[keys + ["price"]].merge(features, on="annotation_id", how="left")[
        keys + list(features.columns.drop("annotation_id")) + ["price"]]

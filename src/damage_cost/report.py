"""The estimator's report: ``report.json`` (per image results, models used, skipped files, summary) and
``report.csv`` (one row per damage, in the claims.csv feature layout), both written atomically.

report.json::

    {"input": path, "models": {"joint", "parts": MODEL, "damage": MODEL, "price_model": {"path", "sha256", "kind"}},
     "images": [per image result of DamageCostEstimator.estimate without masks],
     "images_skipped": [{"path", "reason"}],
     "summary": {"images", "images_skipped", "damages", "images_needing_inspection", "grand_total"}}

with MODEL = ``{"config", "checkpoint", "checkpoint_sha256", "classes", "score_thr"}``.
report.csv columns: ``image, <part>_dice..., unknown, <severity>..., damage_area, part, confidence, price,
fallback``.
"""
import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple

import pandas as pd

from src.damage_cost.features import PART_NAMES, SEVERITIES, UNKNOWN_PART
from src.eval_utils import save_json_atomic

if TYPE_CHECKING:
    from src.damage_cost.detector import Detector

REPORT_JSON = "report.json"
REPORT_CSV = "report.csv"


def claim_columns(part_names: Sequence[str] = PART_NAMES, severities: Sequence[str] = SEVERITIES) -> List[str]:
    """The feature columns of claims.csv: ``<part>_dice`` per part, ``unknown``, one-hot severity, ``damage_area``."""
    return [f"{part}_dice" for part in part_names] + [UNKNOWN_PART, *severities, "damage_area"]


def csv_columns(part_names: Sequence[str] = PART_NAMES, severities: Sequence[str] = SEVERITIES) -> List[str]:
    """Columns of report.csv."""
    return ["image", *claim_columns(part_names, severities), "part", "confidence", "price", "fallback"]


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def describe_detector(detector: "Detector", hashes: Optional[Dict[str, str]] = None) -> Dict[str, object]:
    """``{"config", "checkpoint", "checkpoint_sha256", "classes", "score_thr"}`` of a
    :class:`src.damage_cost.detector.Detector`; ``hashes`` caches digests by path."""
    hashes = {} if hashes is None else hashes
    checkpoint = str(Path(detector.checkpoint_path).resolve())
    if checkpoint not in hashes:
        hashes[checkpoint] = file_sha256(Path(checkpoint))
    return {"config": str(Path(detector.config_path).resolve()) if detector.config_path else None,
            "checkpoint": checkpoint, "checkpoint_sha256": hashes[checkpoint],
            "classes": list(detector.class_names), "score_thr": detector.score_thr}


def describe_models(parts: "Detector", damage: Optional["Detector"], price_model: object,
                    price_model_path: Path) -> Dict[str, object]:
    """The ``models`` entry of report.json; ``damage`` None or ``parts`` means one joint model."""
    joint = damage is None or damage is parts
    hashes: Dict[str, str] = {}
    parts_entry = describe_detector(parts, hashes)
    return {"joint": joint, "parts": parts_entry,
            "damage": parts_entry if joint else describe_detector(damage, hashes),
            "price_model": {"path": str(Path(price_model_path).resolve()),
                            "sha256": file_sha256(Path(price_model_path)),
                            "kind": getattr(price_model, "kind", type(price_model).__name__)}}


def image_record(result: Dict[str, object]) -> Dict[str, object]:
    """A result of :meth:`DamageCostEstimator.estimate` without its masks (what report.json holds)."""
    return {key: value for key, value in result.items() if key != "masks"}


def damage_rows(results: Sequence[Dict[str, object]], part_names: Sequence[str] = PART_NAMES,
                severities: Sequence[str] = SEVERITIES) -> pd.DataFrame:
    """One row per damage of every image, report.csv's columns (see :func:`csv_columns`)."""
    rows = []
    for result in results:
        for damage in result["damages"]:
            row = {"image": result["image"]}
            row.update({f"{part}_dice": damage["dice_by_part"][part] for part in part_names})
            row[UNKNOWN_PART] = int(damage["part"] == UNKNOWN_PART)
            row.update({severity: int(damage["severity"] == severity) for severity in severities})
            row.update(damage_area=damage["area_fraction"], part=damage["part"], confidence=damage["confidence"],
                       price=damage["price"], fallback=damage["fallback"])
            rows.append(row)
    return pd.DataFrame(rows, columns=csv_columns(part_names, severities))


def summarize(records: Sequence[Dict[str, object]], skipped: Sequence[Dict[str, str]]) -> Dict[str, object]:
    """``{"images", "images_skipped", "damages", "images_needing_inspection", "grand_total"}``."""
    return {"images": len(records), "images_skipped": len(skipped),
            "damages": sum(len(record["damages"]) for record in records),
            "images_needing_inspection": sum(bool(record["inspection_needed"]) for record in records),
            "grand_total": sum(record["total"] for record in records)}


def write_csv_atomic(table: pd.DataFrame, path: Path) -> Path:
    """Write ``table`` as CSV (no index) to ``path`` through a temporary file in the same folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".tmp-{path.name}")
    table.to_csv(temporary, index=False)
    os.replace(temporary, path)
    return path


def build_report(input_path: str, results: Sequence[Dict[str, object]], models: Dict[str, object],
                 skipped: Sequence[Dict[str, str]]) -> Dict[str, object]:
    """report.json's content (see the module docstring)."""
    records = [image_record(result) for result in results]
    return {"input": str(input_path), "models": models, "images": records, "images_skipped": list(skipped),
            "summary": summarize(records, skipped)}


def write_report(out_dir: Path, report: Dict[str, object], results: Sequence[Dict[str, object]],
                 part_names: Sequence[str] = PART_NAMES, severities: Sequence[str] = SEVERITIES) -> Tuple[Path, Path]:
    """Write ``out_dir/report.json`` (``report``) and ``out_dir/report.csv`` (the damages of ``results``); returns
    their paths."""
    out_dir = Path(out_dir)
    csv_path = write_csv_atomic(damage_rows(results, part_names, severities), out_dir / REPORT_CSV)
    return save_json_atomic(report, out_dir / REPORT_JSON), csv_path

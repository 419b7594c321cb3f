"""Synthetic car-damage generator: determinism, COCO consistency, claims features and the CLI's refusal rules."""
import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from src.tools.make_synthetic_car_damage import assign_subsets, main
from src.tools.synthetic.claims import price

PARTS = ("front_bumper", "rear_bumper", "headlamp", "door", "hood")
SEVERITIES = ("minor", "moderate", "severe")
SUBSETS = ("train", "validation", "test")
NUM_IMAGES = 12
SIZE = 128


def _generate(out: Path, seed: int, workers: int = 1, extra: tuple[str, ...] = ()) -> Path:
    main(["--out", str(out), "--seed", str(seed), "--num-images", str(NUM_IMAGES), "--size", str(SIZE), str(SIZE),
          "--workers", str(workers), *extra])
    return out


def _all_files(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def _decode(annotation: dict, height: int, width: int) -> np.ndarray:
    rles = mask_utils.frPyObjects(annotation["segmentation"], height, width)
    return mask_utils.decode(mask_utils.merge(rles)).astype(bool)


def _load(root: Path, dataset: str) -> dict[str, dict]:
    return {subset: json.loads((root / dataset / subset / "labels.json").read_text()) for subset in SUBSETS}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 12-image 128x128 dataset generated with seed 3."""
    return _generate(tmp_path_factory.mktemp("synthetic") / "data", seed=3)


def test_same_seed_gives_identical_files_whatever_the_workers(dataset: Path, tmp_path: Path) -> None:
    again = _generate(tmp_path / "again", seed=3, workers=2)
    first, second = _all_files(dataset), _all_files(again)
    assert sorted(first) == sorted(second)
    assert all(first[name] == second[name] for name in first)
    assert sum(name.endswith(".jpg") for name in first) == 2 * NUM_IMAGES


def test_different_seed_gives_different_images(dataset: Path, tmp_path: Path) -> None:
    other = _all_files(_generate(tmp_path / "other", seed=4))
    first = _all_files(dataset)
    images = [name for name in first if name.endswith(".jpg") and name in other]
    assert sum(first[name] != other[name] for name in images) >= len(images) - 1
    assert first["claims.csv"] != other["claims.csv"]


def test_masks_lie_in_their_tight_boxes_and_area_matches(dataset: Path) -> None:
    checked = 0
    for dataset_name in ("parts", "damage"):
        for document in _load(dataset, dataset_name).values():
            sizes = {image["id"]: (image["height"], image["width"]) for image in document["images"]}
            for annotation in document["annotations"]:
                mask = _decode(annotation, *sizes[annotation["image_id"]])
                rows, cols = np.nonzero(mask)
                x, y, w, h = annotation["bbox"]
                assert [x, y, w, h] == [cols.min(), rows.min(), cols.max() + 1 - cols.min(),
                                        rows.max() + 1 - rows.min()]
                assert annotation["area"] == int(mask.sum()) > 0
                assert annotation["iscrowd"] == 0
                checked += 1
    assert checked > NUM_IMAGES


def test_categories_and_one_severity_per_damage(dataset: Path) -> None:
    parts, damage = _load(dataset, "parts"), _load(dataset, "damage")
    for subset in SUBSETS:
        assert [c["name"] for c in parts[subset]["categories"]] == list(PARTS)
        assert [c["name"] for c in damage[subset]["categories"]] == list(SEVERITIES)
        assert [c["id"] for c in damage[subset]["categories"]] == [1, 2, 3]
        for annotation in damage[subset]["annotations"]:
            assert annotation["category_id"] in (1, 2, 3)
    damage_ids = [a["id"] for document in damage.values() for a in document["annotations"]]
    assert len(damage_ids) == len(set(damage_ids))


def test_tasks_share_images_and_splits_partition_them(dataset: Path) -> None:
    parts, damage = _load(dataset, "parts"), _load(dataset, "damage")
    all_ids = []
    for subset in SUBSETS:
        assert parts[subset]["images"] == damage[subset]["images"]
        for image in parts[subset]["images"]:
            assert (dataset / "parts" / subset / "data" / image["file_name"]).read_bytes() == \
                   (dataset / "damage" / subset / "data" / image["file_name"]).read_bytes()
            assert (image["height"], image["width"]) == (SIZE, SIZE)
        files = sorted(path.name for path in (dataset / "parts" / subset / "data").iterdir())
        assert files == sorted(image["file_name"] for image in parts[subset]["images"])
        all_ids += [image["id"] for image in parts[subset]["images"]]
    assert sorted(all_ids) == list(range(1, NUM_IMAGES + 1))


def test_assign_subsets_counts() -> None:
    subsets = assign_subsets(20, (0.7, 0.15, 0.15), seed=0)
    assert [subsets.count(name) for name in SUBSETS] == [14, 3, 3]
    assert assign_subsets(20, (0.7, 0.15, 0.15), seed=0) == subsets
    assert assign_subsets(20, (0.7, 0.15, 0.15), seed=1) != subsets


def test_claims_match_damages_and_recomputed_dice(dataset: Path) -> None:
    parts, damage = _load(dataset, "parts"), _load(dataset, "damage")
    with open(dataset / "claims.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    damage_annotations = {a["id"]: (subset, a) for subset in SUBSETS for a in damage[subset]["annotations"]}
    assert sorted(int(row["annotation_id"]) for row in rows) == sorted(damage_annotations)
    unknown_seen = 0
    for row in rows:
        subset, annotation = damage_annotations[int(row["annotation_id"])]
        image = next(i for i in damage[subset]["images"] if i["id"] == annotation["image_id"])
        assert (int(row["image_id"]), row["file_name"], row["subset"]) == (image["id"], image["file_name"], subset)
        height, width = image["height"], image["width"]
        damage_mask = _decode(annotation, height, width)
        overlaps_any = False
        for category_id, name in enumerate(PARTS, start=1):
            best = 0.0
            for part in parts[subset]["annotations"]:
                if part["image_id"] == image["id"] and part["category_id"] == category_id:
                    part_mask = _decode(part, height, width)
                    intersection = np.logical_and(damage_mask, part_mask).sum()
                    overlaps_any |= bool(intersection)
                    best = max(best, 2.0 * intersection / (damage_mask.sum() + part_mask.sum()))
            assert float(row[f"{name}_dice"]) == pytest.approx(best, abs=1e-6)
        assert int(row["unknown"]) == int(not overlaps_any)
        unknown_seen += int(row["unknown"])
        severity = SEVERITIES[annotation["category_id"] - 1]
        assert [int(row[name]) for name in SEVERITIES] == [int(name == severity) for name in SEVERITIES]
        assert float(row["damage_area"]) == pytest.approx(annotation["area"] / (height * width), abs=1e-8)
        assert int(row["price"]) % 10 == 0 and int(row["price"]) >= 10
    assert len(rows) >= NUM_IMAGES


def test_price_rule_by_hand() -> None:
    assert price("minor", "door", 0.01, 0.0) == 10 * math.floor(150 * 1.3 * (1 + 6 * 0.1) / 10 + 0.5)
    assert price("severe", "headlamp", 0.04, 0.0) == 1500
    assert price("moderate", "unknown", 0.0, math.log(2.0)) == 880


def test_refuses_non_empty_output_without_overwrite(dataset: Path, tmp_path: Path) -> None:
    target = tmp_path / "busy"
    target.mkdir()
    (target / "keep.txt").write_text("x")
    with pytest.raises(SystemExit):
        _generate(target, seed=3)
    assert sorted(p.name for p in target.iterdir()) == ["keep.txt"]
    _generate(target, seed=3, extra=("--overwrite",))
    assert not (target / "keep.txt").exists()
    assert _all_files(target) == _all_files(dataset)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("option", [["--split", "0.5", "0.5", "0.5"], ["--num-images", "0"], ["--size", "32", "32"]])
def test_rejects_bad_options(tmp_path: Path, option: list[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "x"), "--seed", "0", *option])
    assert not (tmp_path / "x").exists()

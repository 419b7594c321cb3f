"""Tests of src/tools/eda.py: CSV counts against counts taken straight from the JSON, and valid PNG files."""
from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import cv2

from src.tools.eda import discover_subsets, main
from tests.helpers.coco_fixtures import make_random_dataset, polygon_annotation, rect_polygon, write_coco_dataset


def _read_csv(path: Path) -> dict[str, dict[str, int]]:
    with open(path, newline="") as stream:
        return {row.pop("category"): {key: int(value) for key, value in row.items()} for row in csv.DictReader(stream)}


def _expected(data: dict) -> tuple[Counter, dict[str, set]]:
    names = {category["id"]: category["name"] for category in data["categories"]}
    instances = Counter(names[a["category_id"]] for a in data["annotations"] if not a["iscrowd"])
    images: dict[str, set] = {}
    for annotation in data["annotations"]:
        if not annotation["iscrowd"]:
            images.setdefault(names[annotation["category_id"]], set()).add(annotation["image_id"])
    return instances, images


def _assert_png(path: Path) -> None:
    image = cv2.imread(str(path))
    assert image is not None and image.shape[0] > 100 and image.shape[1] > 100, path


def test_subsets_counts_and_plots(tmp_path, capsys):
    root = tmp_path / "parts"
    subsets = {"train": make_random_dataset(root / "train", num_images=8, seed=0, max_instances=4),
               "validation": make_random_dataset(root / "validation", num_images=4, seed=1),
               "test": make_random_dataset(root / "test", num_images=3, seed=2)}
    crowd = polygon_annotation(999, 1, subsets["test"]["categories"][0]["id"], [rect_polygon(0, 0, 9, 9)], iscrowd=1)
    subsets["test"]["annotations"].append(crowd)
    write_coco_dataset(root / "test", **{key: subsets["test"][key] for key in ("images", "annotations", "categories")})
    out = tmp_path / "eda"
    assert main([str(root), "--out", str(out)]) == 0
    assert [name for name, _ in discover_subsets(root)] == ["train", "validation", "test"]
    counts, images_per_class = _read_csv(out / "class_counts.csv"), _read_csv(out / "images_per_class.csv")
    class_names = [category["name"] for category in subsets["train"]["categories"]]
    assert list(counts) == class_names and list(images_per_class) == class_names
    for subset, data in subsets.items():
        instances, images = _expected(data)
        for name in class_names:
            assert counts[name][subset] == instances[name], (subset, name)
            assert images_per_class[name][subset] == len(images.get(name, ())), (subset, name)
    for name in class_names:
        assert counts[name]["total"] == sum(counts[name][s] for s in subsets)
    printed = capsys.readouterr().out
    assert "Instances per class" in printed and class_names[0] in printed
    for png in ["class_counts_train.png", "class_counts_validation.png", "class_counts_test.png",
                "class_counts.png", "instance_area_hist.png"]:
        _assert_png(out / png)


def test_single_subset_and_missing_folder(tmp_path, capsys):
    subset = tmp_path / "only"
    data = make_random_dataset(subset, num_images=3, seed=4)
    out = tmp_path / "eda"
    assert main([str(subset), "--out", str(out)]) == 0
    instances, _ = _expected(data)
    counts = _read_csv(out / "class_counts.csv")
    assert {name: row["only"] for name, row in counts.items()} == {c["name"]: instances[c["name"]]
                                                                    for c in data["categories"]}
    _assert_png(out / "class_counts_only.png")
    assert main([str(tmp_path / "nothing"), "--out", str(out)]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_coco_layout_subsets(tmp_path):
    root = tmp_path / "coco"
    make_random_dataset(root, num_images=2, seed=5, layout="coco")
    (root / "annotations" / "instances_val2017.json").rename(root / "annotations" / "instances_train2017.json")
    make_random_dataset(root, num_images=2, seed=6, layout="coco")
    assert [name for name, _ in discover_subsets(root)] == ["train2017", "val2017"]


def test_folder_without_annotations_is_an_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty"), "--out", str(tmp_path / "out")]) == 1
    assert "no labels.json" in capsys.readouterr().err

"""Merge COCO label files of the same images into one, for a joint model (e.g. car parts + damage, 8 classes).

    python -m src.tools.merge_coco --inputs data/synthetic_car_damage/parts data/synthetic_car_damage/damage \
        --out data/synthetic_car_damage/joint

Each input is a dataset root in the model zoo layout (``<subset>/labels.json`` + ``<subset>/data/``). For every subset
found in all inputs (train, validation, test, ...), the output gets ``<subset>/labels.json`` with the categories of
all inputs (by name, in input order, ids renumbered from 1; a name in several inputs is one category), every
annotation (ids renumbered, image ids of the first input) and ``<subset>/data``, a relative link to the first input's
image folder (the images are not copied). Images are matched by ``file_name``: inputs that do not describe the same
images are an error naming the subset and the files.
"""
import argparse
import json
import os
import sys
from pathlib import Path
from typing import Dict, List, Sequence

from src.data import DatasetError, read_coco_json


def merge_label_files(label_files: Sequence[Path]) -> dict:
    """One COCO dict from several label files of the same images (see the module docstring)."""
    datasets = [read_coco_json(path) for path in label_files]
    first = datasets[0]
    names_first = {image["file_name"] for image in first["images"]}
    for path, data in zip(label_files[1:], datasets[1:]):
        names = {image["file_name"] for image in data["images"]}
        if names != names_first:
            only_first, only_here = sorted(names_first - names)[:5], sorted(names - names_first)[:5]
            raise DatasetError(f"{path}: does not hold the images of {label_files[0]} (only in the first: "
                               f"{only_first}, only here: {only_here})")
    categories: List[dict] = []
    category_ids: Dict[str, int] = {}
    annotations: List[dict] = []
    image_id_of = {image["file_name"]: image["id"] for image in first["images"]}
    for data in datasets:
        new_category = {}
        for category in data["categories"]:
            if category["name"] not in category_ids:
                category_ids[category["name"]] = len(categories) + 1
                categories.append({**category, "id": len(categories) + 1})
            new_category[category["id"]] = category_ids[category["name"]]
        file_of = {image["id"]: image["file_name"] for image in data["images"]}
        for annotation in data["annotations"]:
            annotations.append({**annotation, "id": len(annotations) + 1,
                                "image_id": image_id_of[file_of[annotation["image_id"]]],
                                "category_id": new_category[annotation["category_id"]]})
    return {"images": first["images"], "annotations": annotations, "categories": categories}


def merge_datasets(inputs: Sequence[Path], out: Path) -> List[str]:
    """Write the merged subsets of ``inputs`` under ``out``; returns the subset names written."""
    subsets = sorted(path.name for path in inputs[0].iterdir() if (path / "labels.json").is_file()
                     and all((root / path.name / "labels.json").is_file() for root in inputs[1:]))
    if not subsets:
        raise DatasetError(f"no subset folder with labels.json is common to {', '.join(map(str, inputs))}")
    for subset in subsets:
        merged = merge_label_files([root / subset / "labels.json" for root in inputs])
        target = out / subset
        target.mkdir(parents=True, exist_ok=True)
        temporary = target / ".labels.json.partial"
        temporary.write_text(json.dumps(merged), encoding="utf-8")
        os.replace(temporary, target / "labels.json")
        link = target / "data"
        if link.is_symlink():
            link.unlink()
        if not link.exists():
            link.symlink_to(os.path.relpath(inputs[0].resolve() / subset / "data", target.resolve()))
    return subsets


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--inputs", nargs="+", type=Path, required=True,
                        help="dataset roots over the same images (model zoo layout); the first one's images are used")
    parser.add_argument("--out", type=Path, required=True, help="root of the merged dataset")
    args = parser.parse_args(argv)
    if len(args.inputs) < 2:
        parser.error("--inputs: give at least two dataset roots")
    try:
        subsets = merge_datasets(args.inputs, args.out)
    except DatasetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for subset in subsets:
        data = read_coco_json(args.out / subset / "labels.json")
        print(f"{args.out / subset}: {len(data['images'])} images, {len(data['annotations'])} annotations, "
              f"classes {[category['name'] for category in data['categories']]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

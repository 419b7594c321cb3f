"""Exploratory statistics of a COCO dataset: instances and images per class and subset, instance areas.

Usage: ``python -m src.tools.eda DATASET_DIR --out DIR``. DATASET_DIR holds subsets (``train/``, ``validation/``,
``test/``, ... each with ``labels.json``), or COCO annotation files ``annotations/instances_<subset>.json``, or is
itself one subset. Only the annotation files are read (not the images). Crowd annotations are not counted.

Writes to DIR: ``class_counts.csv`` (instances per class and subset, plus ``total``), ``images_per_class.csv``
(images holding at least one instance of the class), ``class_counts_<subset>.png`` (bar plot per subset),
``class_counts.png`` (all subsets side by side) and ``instance_area_hist.png`` (instance areas in pixels, log-scale
x, one colour per class, one panel per subset). Prints both tables.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from pycocotools import mask as mask_utils  # noqa: E402

from src.data import DatasetError, read_coco_json, segmentation_format, segmentation_to_rle  # noqa: E402

SUBSET_ORDER = ("train", "validation", "val", "test")


def _annotation_files_in(folder: Path) -> list[tuple[str, Path]]:
    """(subset name, annotation file) pairs found directly in a folder; the name of labels.json is the folder's."""
    if (folder / "labels.json").is_file():
        return [(folder.name, folder / "labels.json")]
    return [(path.stem[len("instances_"):], path) for path in sorted((folder / "annotations").glob("instances_*.json"))]


def discover_subsets(dataset_dir: str | Path) -> list[tuple[str, Path]]:
    """(subset name, annotation file) of every subset under ``dataset_dir`` (see the module docstring), ordered
    train, validation, val, test, then alphabetically; DatasetError when there is none."""
    dataset_dir = Path(dataset_dir)
    if not dataset_dir.is_dir():
        raise DatasetError(f"dataset folder does not exist: {dataset_dir}")
    subsets = _annotation_files_in(dataset_dir)
    if not subsets:
        subsets = [pair for child in sorted(dataset_dir.iterdir()) if child.is_dir()
                   for pair in _annotation_files_in(child)]
    if not subsets:
        raise DatasetError(f"{dataset_dir}: no labels.json or annotations/instances_*.json in it or its sub-folders")
    rank = {name: index for index, name in enumerate(SUBSET_ORDER)}
    return sorted(subsets, key=lambda pair: (rank.get(pair[0], len(rank)), pair[0]))


def instance_table(subsets: Sequence[tuple[str, Path]]) -> tuple[pd.DataFrame, list[str], int]:
    """One row per non-crowd instance (subset, category, image_id, area), the category names in file order, and
    the number of annotations skipped because their image or category id is unknown."""
    rows, category_names, skipped = [], [], 0
    for subset, json_path in subsets:
        data = read_coco_json(json_path)
        categories = {category["id"]: category["name"] for category in data.get("categories", [])}
        category_names += [name for name in categories.values() if name not in category_names]
        images = {image["id"]: image for image in data.get("images", [])}
        for annotation in data.get("annotations", []):
            if annotation.get("iscrowd", 0):
                continue
            image = images.get(annotation.get("image_id"))
            if image is None or annotation.get("category_id") not in categories:
                skipped += 1
                continue
            area = annotation.get("area")
            if not isinstance(area, (int, float)):
                segmentation = annotation.get("segmentation")
                if segmentation_format(segmentation) is None:
                    skipped += 1
                    continue
                area = float(mask_utils.area(segmentation_to_rle(segmentation, image["height"], image["width"])))
            rows.append((subset, categories[annotation["category_id"]], annotation["image_id"], float(area)))
    return pd.DataFrame(rows, columns=["subset", "category", "image_id", "area"]), category_names, skipped


def count_tables(instances: pd.DataFrame, categories: Sequence[str],
                 subsets: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(instances per class x subset, images per class x subset), both with a ``total`` column, zeros included."""
    def pivot(values: pd.Series) -> pd.DataFrame:
        table = values.unstack("subset").reindex(index=list(categories), columns=list(subsets)).fillna(0).astype(int)
        table["total"] = table.sum(axis=1)
        table.index.name = "category"
        return table

    grouped = instances.groupby(["category", "subset"])
    return pivot(grouped.size()), pivot(grouped["image_id"].nunique())


def plot_counts(counts: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Bar plots of instances per class: one per subset and one with all subsets side by side."""
    written = []
    long = counts.drop(columns="total").reset_index().melt(id_vars="category", var_name="subset",
                                                           value_name="instances")
    for subset, frame in long.groupby("subset", sort=False):
        figure, axis = plt.subplots(figsize=(max(5.0, 0.8 * len(frame)), 4))
        sns.barplot(data=frame, x="category", y="instances", hue="category", legend=False, ax=axis)
        axis.set_title(f"Count of classes in {subset} data")
        axis.tick_params(axis="x", rotation=30)
        figure.tight_layout()
        written.append(out_dir / f"class_counts_{subset}.png")
        figure.savefig(written[-1], dpi=100)
        plt.close(figure)
    figure, axis = plt.subplots(figsize=(max(6.0, 1.0 * len(counts)), 4))
    sns.barplot(data=long, x="category", y="instances", hue="subset", ax=axis)
    axis.set_title("Instances per class and subset")
    axis.tick_params(axis="x", rotation=30)
    figure.tight_layout()
    written.append(out_dir / "class_counts.png")
    figure.savefig(written[-1], dpi=100)
    plt.close(figure)
    return written


def plot_areas(instances: pd.DataFrame, categories: Sequence[str], subsets: Sequence[str], out_dir: Path) -> Path:
    """Histogram of instance areas (log-scale x, shared) per class, one panel per subset, one colour per class."""
    positive = instances[instances["area"] > 0]
    palette = dict(zip(categories, sns.color_palette(n_colors=len(categories))))
    figure, axes = plt.subplots(1, len(subsets), figsize=(5 * len(subsets), 4), squeeze=False, sharex=True)
    for axis, subset in zip(axes[0], subsets):
        frame = positive[positive["subset"] == subset]
        if len(frame):
            sns.histplot(data=frame, x="area", hue="category", hue_order=list(categories), palette=palette,
                         log_scale=True, element="step", bins=20, ax=axis)
        axis.set_title(f"Instance area ({subset})")
        axis.set_xlabel("area (pixels)")
    figure.tight_layout()
    path = out_dir / "instance_area_hist.png"
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (0 done, 1 no readable dataset)."""
    parser = argparse.ArgumentParser(description="Class and instance-size statistics of a COCO dataset.")
    parser.add_argument("dataset_dir", help="folder of subsets (train/, validation/, test/) or one subset")
    parser.add_argument("--out", required=True, help="output folder for the CSV tables and PNG plots")
    args = parser.parse_args(argv)
    try:
        subsets = discover_subsets(args.dataset_dir)
        instances, categories, skipped = instance_table(subsets)
    except DatasetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    subset_names = [name for name, _ in subsets]
    counts, images_per_class = count_tables(instances, categories, subset_names)
    counts.to_csv(out_dir / "class_counts.csv")
    images_per_class.to_csv(out_dir / "images_per_class.csv")
    plot_counts(counts, out_dir)
    plot_areas(instances, categories, subset_names, out_dir)
    print("Instances per class (crowd annotations excluded):")
    print(counts.to_string())
    print("\nImages containing the class:")
    print(images_per_class.to_string())
    if skipped:
        print(f"\n{skipped} annotation(s) skipped: unknown image/category id or unreadable segmentation "
              f"(run python -m src.tools.check_dataset for details)")
    print(f"\nwrote CSV tables and PNG plots to {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Generate the embedded synthetic car-damage dataset (parts + damage instance segmentation and a claims table).

Usage:
    python -m src.tools.make_synthetic_car_damage --out DIR --seed S [--num-images 300] [--split 0.7 0.15 0.15]
        [--size 512 512] [--workers K] [--overwrite]

Writes, in the model zoo layout (the same JPEGs and image ids for both tasks):
    DIR/parts/{train,validation,test}/data/*.jpg + labels.json   front_bumper, rear_bumper, headlamp, door, hood
    DIR/damage/{train,validation,test}/data/*.jpg + labels.json  minor (scratch), moderate (dent), severe (break)
    DIR/claims.csv   one row per damage: part dice features, unknown flag, one-hot severity, damage_area (fraction
                     of the image area) and price

Price of a damage (see src/tools/synthetic/claims.py and docs/synthetic_data.md):
    raw   = BASE_PRICE[severity] * PART_FACTOR[main part] * (1 + 6 * sqrt(damage_area))
            with BASE_PRICE minor 150, moderate 400, severe 900 and PART_FACTOR front_bumper 1.0, rear_bumper 0.9,
            headlamp 1.4, door 1.3, hood 1.2, unknown 1.1; a severe damage on a headlamp costs 1500 (replacement)
    price = max(10, 10 * floor(raw * exp(noise) / 10 + 0.5)),  noise ~ Normal(0, 0.1)
The main part is the part with the largest dice ('unknown' when the damage overlaps no annotated part).

The output is byte-identical for a given seed, size and number of images, whatever the number of workers: every
image draws from its own random stream derived from (seed, image index). The dataset is built in a temporary
folder next to DIR and renamed into place at the end.
"""
import argparse
import csv
import os
import shutil
import sys
import tempfile
import multiprocessing
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from src.tools.synthetic.car_layouts import PART_NAMES
from src.tools.synthetic.claims import CLAIM_COLUMNS
from src.tools.synthetic.coco_writer import coco_document, write_json
from src.tools.synthetic.damage_renderer import SEVERITIES
from src.tools.synthetic.sample import SampleResult, SampleTask, render_sample

SUBSETS = ("train", "validation", "test")
DATASETS = {"parts": (PART_NAMES, "car_part"), "damage": (SEVERITIES, "damage")}


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of the generator."""
    parser = argparse.ArgumentParser(description="Generate the synthetic car parts / car damage dataset.")
    parser.add_argument("--out", required=True, help="output dataset folder")
    parser.add_argument("--seed", type=int, required=True, help="dataset seed (same seed -> identical files)")
    parser.add_argument("--num-images", type=int, default=300, help="number of images (default 300)")
    parser.add_argument("--split", type=float, nargs=3, default=(0.7, 0.15, 0.15),
                        metavar=("TRAIN", "VALIDATION", "TEST"), help="subset fractions, summing to 1")
    parser.add_argument("--size", type=int, nargs=2, default=(512, 512), metavar=("W", "H"), help="image size")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="worker processes")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing non-empty --out folder")
    return parser


def validate_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Reject impossible values with a message naming the option."""
    if args.num_images < 1:
        parser.error(f"--num-images: expected a positive integer, got {args.num_images}")
    if args.seed < 0:
        parser.error(f"--seed: expected a non-negative integer, got {args.seed}")
    if any(fraction < 0 for fraction in args.split) or abs(sum(args.split) - 1.0) > 1e-6:
        parser.error(f"--split: expected three non-negative fractions summing to 1, got {list(args.split)}")
    if min(args.size) < 64:
        parser.error(f"--size: expected width and height of at least 64 pixels, got {list(args.size)}")
    if args.workers < 1:
        parser.error(f"--workers: expected a positive integer, got {args.workers}")
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        if not out.is_dir():
            parser.error(f"--out: {out} exists and is not a folder (use --overwrite to replace it)")
        if any(out.iterdir()):
            parser.error(f"--out: {out} is not empty (use --overwrite to replace it)")


def assign_subsets(num_images: int, split: tuple[float, float, float], seed: int) -> list[str]:
    """Subset name of every image index: a seeded shuffle cut into round(fraction * N) validation and test images,
    the rest train."""
    num_validation = int(round(split[1] * num_images))
    num_test = min(int(round(split[2] * num_images)), num_images - num_validation)
    num_train = num_images - num_validation - num_test
    order = np.random.default_rng(np.random.SeedSequence(seed)).permutation(num_images)
    subsets = [""] * num_images
    for position, index in enumerate(order.tolist()):
        if position < num_train:
            subsets[index] = "train"
        elif position < num_train + num_validation:
            subsets[index] = "validation"
        else:
            subsets[index] = "test"
    return subsets


def _init_worker() -> None:
    """Keep OpenCV single-threaded inside worker processes."""
    cv2.setNumThreads(1)


def render_all(tasks: list[SampleTask], workers: int) -> list[SampleResult]:
    """Render every task (in worker processes when workers > 1) with a progress bar; results in task order."""
    progress = dict(total=len(tasks), desc="rendering", unit="img", file=sys.stderr)
    if workers == 1:
        return [render_sample(task) for task in tqdm(tasks, **progress)]
    # fresh interpreters, not forks: a fork of a process whose other threads hold locks (MindSpore's, OpenMP's, e.g.
    # when called from a test session or a training script) can deadlock in the child
    with multiprocessing.get_context("spawn").Pool(processes=workers, initializer=_init_worker) as pool:
        return list(tqdm(pool.imap(render_sample, tasks, chunksize=4), **progress))


def write_annotations(root: Path, results: list[SampleResult]) -> None:
    """labels.json of every subset of both tasks and claims.csv; annotation ids run 1.. per task, by image id."""
    images = {(dataset, subset): [] for dataset in DATASETS for subset in SUBSETS}
    annotations = {(dataset, subset): [] for dataset in DATASETS for subset in SUBSETS}
    next_id = {dataset: 1 for dataset in DATASETS}
    claim_rows = []
    for result in sorted(results, key=lambda item: item.task.image_id):
        task = result.task
        image_entry = {"id": task.image_id, "file_name": task.file_name, "height": task.height, "width": task.width}
        for dataset, (category_names, _) in DATASETS.items():
            images[(dataset, task.subset)].append(image_entry)
            instances = result.parts if dataset == "parts" else result.damages
            for instance in instances:
                annotation_id = next_id[dataset]
                next_id[dataset] += 1
                annotations[(dataset, task.subset)].append({
                    "id": annotation_id, "image_id": task.image_id,
                    "category_id": category_names.index(instance.category) + 1,
                    "segmentation": instance.polygons, "area": instance.area, "bbox": instance.bbox, "iscrowd": 0})
        first_damage_id = next_id["damage"] - len(result.damages)
        for offset, (instance, claim) in enumerate(zip(result.damages, result.claims)):
            severity_flags = [int(instance.category == name) for name in SEVERITIES]
            claim_rows.append([task.image_id, task.file_name, task.subset, first_damage_id + offset]
                              + [f"{claim.dice[name]:.6f}" for name in PART_NAMES]
                              + [claim.unknown] + severity_flags + [f"{claim.area_fraction:.8f}", claim.price])
    for (dataset, subset), subset_images in images.items():
        category_names, supercategory = DATASETS[dataset]
        document = coco_document(subset_images, annotations[(dataset, subset)], category_names, supercategory,
                                 f"synthetic car {dataset} ({subset})")
        write_json(root / dataset / subset / "labels.json", document)
    with open(root / "claims.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(CLAIM_COLUMNS)
        writer.writerows(claim_rows)


def generate(out: Path, seed: int, num_images: int, split: tuple[float, float, float], width: int, height: int,
             workers: int, overwrite: bool) -> None:
    """Build the whole dataset in a temporary folder beside out, then move it to out (replacing it if overwrite)."""
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        for dataset in DATASETS:
            for subset in SUBSETS:
                (staging / dataset / subset / "data").mkdir(parents=True)
        subsets = assign_subsets(num_images, split, seed)
        tasks = [SampleTask(index, index + 1, f"{index + 1:06d}.jpg", subsets[index], seed, width, height,
                            str(staging)) for index in range(num_images)]
        results = render_all(tasks, min(workers, num_images))
        write_annotations(staging, results)
        if out.exists() or out.is_symlink():
            if not overwrite and (not out.is_dir() or any(out.iterdir())):
                raise FileExistsError(f"{out}: appeared while generating and is not empty")
            previous = out.with_name(f".{out.name}.{os.getpid()}.old")
            out.rename(previous)
            staging.rename(out)
            if previous.is_dir() and not previous.is_symlink():
                shutil.rmtree(previous)
            else:
                previous.unlink()
        else:
            staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and generate the dataset."""
    parser = build_parser()
    args = parser.parse_args(argv)
    validate_args(parser, args)
    width, height = args.size
    generate(Path(args.out), args.seed, args.num_images, tuple(args.split), width, height, args.workers,
             args.overwrite)


if __name__ == "__main__":
    main()

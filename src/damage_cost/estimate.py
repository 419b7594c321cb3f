"""Estimate the repair cost of the damages on car images.

    python -m src.damage_cost.estimate --parts-config C --parts-ckpt K [--damage-config C2 --damage-ckpt K2]
        --price-model P.json --input IMAGE_OR_DIR --output OUT_DIR [--score-thr X] [--save-detections]
        [--device-target GPU|CPU] [--device-id N]

Without the damage options (or with the same config and checkpoint as the parts model) one joint model, whose
``coco_classes`` hold the part names and the severities, detects both. Writes ``OUT_DIR/report.json``,
``OUT_DIR/report.csv`` (see :mod:`src.damage_cost.report`) and ``OUT_DIR/<image stem>_cost.png`` per image (see
:mod:`src.damage_cost.render`), then prints a cost table. Files of the input folder that are not images, or not
readable as one, are named in a warning and in the report's ``images_skipped``; the exit code is 2 when no image can
be read or a model cannot be loaded. With ``--save-detections`` the models' detections (masks included) go to
``OUT_DIR/detections.json`` too, for ``evaluate_cost --detections`` (see :mod:`src.damage_cost.saved_detections`).
"""
import argparse
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
from tqdm import tqdm

from infer import IMAGE_EXTENSIONS, list_images, output_names
from src.callback import setup_logger
from src.damage_cost.detector import Detector
from src.damage_cost.pipeline import DamageCostEstimator
from src.damage_cost.price_models import load_price_model
from src.damage_cost.render import render_estimate, save_rendering
from src.damage_cost.report import build_report, describe_models, write_report
from src.damage_cost.saved_detections import DETECTIONS_JSON, RecordingDetector, image_entry, write_detections

NOT_AN_IMAGE = f"not an image file (expected {', '.join(IMAGE_EXTENSIONS)})"
UNREADABLE = "not readable as an image (corrupt or unsupported content)"


def add_model_arguments(parser: argparse.ArgumentParser, models_required: bool = True) -> None:
    """The options naming the models: parts (or joint) and damage config + checkpoint, price model, device;
    ``models_required`` False leaves the parts model's options optional (the caller checks them)."""
    parser.add_argument("--parts-config", required=models_required, help="config YAML of the parts (or joint) model")
    parser.add_argument("--parts-ckpt", required=models_required, help="checkpoint of the parts (or joint) model")
    parser.add_argument("--damage-config", help="config YAML of the damage model (omit both for a joint model)")
    parser.add_argument("--damage-ckpt", help="checkpoint of the damage model")
    parser.add_argument("--price-model", required=True, help="price model JSON (src.damage_cost.price_models)")
    parser.add_argument("--device-target", choices=("GPU", "CPU"), help="override the configs' device_target")
    parser.add_argument("--device-id", type=int, help="override the configs' device_id")


def check_model_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exit through ``parser.error`` when only one of --damage-config and --damage-ckpt is given."""
    if bool(args.damage_config) != bool(args.damage_ckpt):
        parser.error("--damage-config and --damage-ckpt go together (omit both for one joint model)")


def build_parser() -> argparse.ArgumentParser:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m src.damage_cost.estimate",
                                     description="Repair-cost estimate of car damages from images")
    add_model_arguments(parser)
    parser.add_argument("--input", required=True, help="an image or a folder of images")
    parser.add_argument("--output", required=True, help="folder for report.json, report.csv and the PNGs")
    parser.add_argument("--score-thr", type=float, default=None,
                        help="keep detections with score * mask IoU >= this (default: each config's "
                             "visualize_score_thr)")
    parser.add_argument("--save-detections", action="store_true",
                        help=f"also write the models' detections to OUT_DIR/{DETECTIONS_JSON} (for "
                             "src.damage_cost.evaluate_cost --detections)")
    return parser


def list_inputs(input_path: str) -> Tuple[List[Path], List[Dict[str, str]]]:
    """(images whose content OpenCV recognises, skipped files as ``{"path", "reason"}``) of an image or a folder.

    Raises FileNotFoundError for a missing path and ValueError when no file can be read as an image."""
    try:
        candidates = list_images(input_path)
    except ValueError:
        candidates = []
    path = Path(input_path)
    skipped = [{"path": str(item), "reason": NOT_AN_IMAGE} for item in sorted(path.iterdir())
               if item.is_file() and item.suffix.lower() not in IMAGE_EXTENSIONS] if path.is_dir() else []
    images = []
    for candidate in candidates:
        if cv2.haveImageReader(str(candidate)):
            images.append(candidate)
        else:
            skipped.append({"path": str(candidate), "reason": UNREADABLE})
    if not images:
        raise ValueError(f"input: no readable image in '{input_path}' "
                         f"({len(skipped)} file(s) skipped: {[item['path'] for item in skipped]})")
    return images, skipped


def same_model(config_a: str, checkpoint_a: str, config_b: Optional[str], checkpoint_b: Optional[str]) -> bool:
    """True when the damage model is absent or is the same config and checkpoint files as the parts model."""
    if not config_b and not checkpoint_b:
        return True
    return Path(config_a).resolve() == Path(config_b).resolve() and \
        Path(checkpoint_a).resolve() == Path(checkpoint_b).resolve()


def format_cost_table(records: Sequence[Dict[str, object]]) -> str:
    """Image, number of damages, total and inspection flag per image, then the grand total."""
    width = max([len("image"), len("TOTAL")] + [len(str(record["image"])) for record in records])
    lines = [f"{'image':<{width}}  {'damages':>7}  {'total':>10}  inspection"]
    for record in records:
        lines.append(f"{record['image']:<{width}}  {len(record['damages']):>7}  {record['total']:>10,}  "
                     f"{'YES' if record['inspection_needed'] else 'no'}")
    lines.append(f"{'TOTAL':<{width}}  {sum(len(record['damages']) for record in records):>7}  "
                 f"{sum(record['total'] for record in records):>10,}")
    return "\n".join(lines)


def load_detectors(args: argparse.Namespace, score_thr: Optional[float]) -> Tuple[Detector, Optional[Detector]]:
    """(parts or joint detector, damage detector or None for a joint model) of the model options of
    :func:`add_model_arguments`, keeping detections whose confidence reaches ``score_thr`` (None: each config's)."""
    overrides = {key: value for key, value in (("device_target", args.device_target), ("device_id", args.device_id))
                 if value is not None}
    parts = Detector.from_files(args.parts_config, args.parts_ckpt, overrides, score_thr)
    if same_model(args.parts_config, args.parts_ckpt, args.damage_config, args.damage_ckpt):
        return parts, None
    return parts, Detector.from_files(args.damage_config, args.damage_ckpt, overrides, score_thr)


def load_estimator(args: argparse.Namespace,
                   record_detections: bool = False) -> Tuple[DamageCostEstimator, Dict[str, object]]:
    """The estimator of the command line and the ``models`` entry of its report (paths, hashes, classes). With
    ``record_detections`` its detectors are :class:`RecordingDetector` wrappers.

    Raises FileNotFoundError / ValueError naming the config, checkpoint or price model at fault."""
    price_model = load_price_model(args.price_model)
    parts, damage = load_detectors(args, args.score_thr)
    models = describe_models(parts, damage, price_model, Path(args.price_model))
    if record_detections:
        parts, damage = RecordingDetector(parts), None if damage is None else RecordingDetector(damage)
    return DamageCostEstimator(parts, damage, price_model), models


def estimate_images(estimator: DamageCostEstimator, images: Sequence[Path], skipped: List[Dict[str, str]],
                    out_dir: Path) -> Tuple[List[Dict[str, object]], Dict[str, Dict[str, object]]]:
    """Estimate and render each image (progress bar); images OpenCV fails to decode are added to ``skipped``.

    Returns (the estimator's results, {image file name: detections entry} when its detectors record them, else
    an empty dict)."""
    names = output_names(images, "_cost")
    recording = isinstance(estimator.parts, RecordingDetector)
    results, detections = [], {}
    for path in tqdm(images, desc="estimate", unit="image"):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            skipped.append({"path": str(path), "reason": UNREADABLE})
            continue
        result = estimator.estimate(image, path.name)
        if recording:
            detections[path.name] = image_entry(image.shape[0], image.shape[1], estimator.parts.last,
                                                None if estimator.joint else estimator.damage.last)
        save_rendering(render_estimate(image, result, estimator.severities), out_dir / names[path])
        results.append(result)
    return results, detections


def main(argv: Optional[List[str]] = None) -> int:
    """Command-line entry point; returns the process exit code (2 on unusable arguments, models or input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    check_model_arguments(parser, args)
    logger = setup_logger(None)
    try:
        images, skipped = list_inputs(args.input)
        estimator, models = load_estimator(args, record_detections=args.save_detections)
    except (FileNotFoundError, ValueError) as error:
        print(f"estimate: error: {error}", file=sys.stderr)
        return 2
    logger.info("%s, %d image(s), %d file(s) skipped", "One joint model" if estimator.joint else
                "Parts and damage models", len(images), len(skipped))
    out_dir = Path(args.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    results, detections = estimate_images(estimator, images, skipped, out_dir)
    for item in skipped:
        logger.warning("Skipped %s: %s", item["path"], item["reason"])
    if not results:
        print(f"estimate: error: none of the {len(images)} image(s) of '{args.input}' could be read",
              file=sys.stderr)
        return 2
    report = build_report(args.input, results, models, skipped)
    json_path, csv_path = write_report(out_dir, report, results, estimator.part_names, estimator.severities)
    print(format_cost_table(report["images"]))
    print(f"Report: {json_path} and {csv_path}\nPictures: {out_dir}/*_cost.png ({len(results)})")
    if args.save_detections:
        print(f"Detections: {write_detections(out_dir / DETECTIONS_JSON, models, detections)}")
    if skipped:
        print(f"Skipped {len(skipped)} file(s), named in the log above and in {json_path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

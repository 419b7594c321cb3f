"""Predict instances on an image or a folder of images and write the model zoo JSON.

    python infer.py --config_path CONFIG --checkpoint_path CKPT --pred_input IMAGE_OR_DIR --pred_output OUT.json
                    [--visualize DIR]

The JSON maps each image path to ``{"height", "width", "predictions": [{"bbox": {"x_min", "y_min", "width",
"height"}, "class": {"label", "category_id", "name"}, "mask": {"size", "counts"}, "score", "iou_score"}]}`` in the
original image's pixels. ``score`` is the class confidence, ``iou_score`` the predicted IoU of the mask; the mask
score of Mask Scoring R-CNN is their product. ``category_id`` is the id used by the dataset annotation file
(val_dataset, else train_dataset) when one is readable, otherwise the label. Images are .jpg, .jpeg, .png or .bmp
(any case); unreadable files are reported by name and skipped. ``--visualize DIR`` writes one overlay PNG per image,
``<stem>_pred.png``, with the detections whose mask score (score * iou_score) reaches ``visualize_score_thr``.
"""
import src  # noqa: F401  first: sets MindSpore's log level before MindSpore is imported (src/__init__.py)
import colorsys
import logging
import sys
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import cv2
import numpy as np

from src.callback import setup_logger
from src.eval_utils import detect_image, encode_mask, save_json_atomic, xyxy_to_xywh
from src.model_utils.config import Config, parse_cli
from src.model_utils.device_adapter import init_env

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")


def list_images(pred_input: str) -> List[Path]:
    """The image itself, or the images of a folder (sorted, by extension, case-insensitive).

    Raises FileNotFoundError when the path does not exist and ValueError when a folder holds no image."""
    path = Path(pred_input)
    if not pred_input or not path.exists():
        raise FileNotFoundError(f"pred_input: '{pred_input}' is neither an image nor a folder")
    if path.is_file():
        return [path]
    images = sorted(item for item in path.iterdir() if item.is_file() and item.suffix.lower() in IMAGE_EXTENSIONS)
    if not images:
        raise ValueError(f"pred_input: folder {path} holds no image ({', '.join(IMAGE_EXTENSIONS)})")
    return images


def category_lookup(cfg: Config, logger: logging.Logger) -> Callable[[int], int]:
    """label -> category id of the first readable annotation file among val_dataset, train_dataset; the label
    itself when none is readable or the file lacks that class."""
    from src.data.coco import CocoDataset

    for data_dir in (cfg.val_dataset, cfg.train_dataset):
        try:
            coco = CocoDataset(data_dir, cfg.coco_classes)
        except (OSError, ValueError, KeyError) as error:
            logger.info("No category ids from %s (%s)", data_dir, str(error).splitlines()[0])
            continue

        def lookup(label: int, dataset: CocoDataset = coco) -> int:
            try:
                return dataset.category_id_of(label)
            except KeyError:
                return label
        return lookup
    logger.warning("category_id = label: no readable annotation file in val_dataset or train_dataset")
    return lambda label: label


def prediction_entry(detection: Dict[str, object], class_names: Sequence[str],
                     category_of: Callable[[int], int]) -> Dict[str, object]:
    """One detection of :func:`src.eval_utils.postprocess_image` in the model zoo JSON format."""
    x_min, y_min, width, height = xyxy_to_xywh(detection["box"])
    label = int(detection["label"])
    return {
        "bbox": {"x_min": x_min, "y_min": y_min, "width": width, "height": height},
        "class": {"label": label, "category_id": category_of(label), "name": class_names[label]},
        "mask": encode_mask(detection["mask"]),
        "score": detection["score"],
        "iou_score": detection["mask_iou"],
    }


def output_names(images: Sequence[Path], suffix: str) -> Dict[Path, str]:
    """``<stem><suffix>.png`` per image; ``<file name><suffix>.png`` when that stem is taken (a.jpg and a.png)."""
    names: Dict[Path, str] = {}
    for image in images:
        name = f"{image.stem}{suffix}.png"
        names[image] = f"{image.name}{suffix}.png" if name in names.values() else name
    return names


def label_color(label: int) -> tuple:
    """A distinct BGR colour per label (golden-ratio hue steps)."""
    red, green, blue = colorsys.hsv_to_rgb((label * 0.618034) % 1.0, 0.85, 1.0)
    return int(255 * blue), int(255 * green), int(255 * red)


def draw_overlay(image: np.ndarray, detections: Sequence[Dict[str, object]], class_names: Sequence[str]) -> np.ndarray:
    """BGR image with each mask tinted (50%) in its class colour, its box, and ``name score iou`` in black on a label
    of the class colour above the box."""
    canvas = image.astype(np.float32)
    for detection in detections:
        mask = np.asarray(detection["mask"], dtype=bool)
        canvas[mask] = 0.5 * canvas[mask] + 0.5 * np.array(label_color(detection["label"]), np.float32)
    canvas = canvas.clip(0, 255).astype(np.uint8)
    for detection in detections:
        color = label_color(detection["label"])
        x1, y1, x2, y2 = (int(round(value)) for value in detection["box"])
        cv2.rectangle(canvas, (x1, y1), (x2, y2), color, 2)
        text = f"{class_names[detection['label']]} {detection['score']:.2f} iou {detection['mask_iou']:.2f}"
        (text_width, text_height), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
        top = max(y1 - text_height - baseline - 2, 0)
        cv2.rectangle(canvas, (x1, top), (x1 + text_width + 2, top + text_height + baseline + 2), color, cv2.FILLED)
        cv2.putText(canvas, text, (x1 + 1, top + text_height + 1), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1,
                    cv2.LINE_AA)
    return canvas


def predict(cfg: Config) -> Dict[str, object]:
    """Run inference on ``cfg.pred_input``, write ``cfg.pred_output`` (and overlays to ``cfg.visualize``); returns
    the JSON content."""
    from eval import load_inference_net
    from src.data.transforms import TransformParams

    logger = setup_logger(None)
    if not cfg.pred_output:
        raise ValueError("pred_output: set the output JSON path (--pred_output OUT.json)")
    images = list_images(cfg.pred_input)
    init_env(cfg)
    infer_net = load_inference_net(cfg)
    category_of = category_lookup(cfg, logger)
    params = TransformParams.from_config(cfg)
    visualize_dir = Path(cfg.visualize) if cfg.visualize else None
    if visualize_dir is not None:
        visualize_dir.mkdir(parents=True, exist_ok=True)
    overlay_names = output_names(images, "_pred")
    results: Dict[str, object] = {}
    skipped = []
    for path in images:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            logger.warning("Skipping %s: not readable as an image", path)
            skipped.append(str(path))
            continue
        detections = detect_image(infer_net, image, params, cfg.test_cfg.rcnn.mask_thr_binary,
                                  cfg.test_cfg.rcnn.mask_paste)
        results[str(path)] = {"height": int(image.shape[0]), "width": int(image.shape[1]),
                              "predictions": [prediction_entry(detection, cfg.coco_classes, category_of)
                                              for detection in detections]}
        if visualize_dir is not None:
            overlay_path = visualize_dir / overlay_names[path]
            shown = [detection for detection in detections
                     if detection["score"] * detection["mask_iou"] >= cfg.visualize_score_thr]
            cv2.imwrite(str(overlay_path), draw_overlay(image, shown, cfg.coco_classes))
        logger.info("%s: %d detections", path, len(detections))
    if not results:
        raise ValueError(f"pred_input: none of the {len(images)} image(s) could be read: {skipped}")
    save_json_atomic(results, Path(cfg.pred_output))
    logger.info("Predictions for %d image(s) written to %s%s", len(results), cfg.pred_output,
                f" ({len(skipped)} skipped: {skipped})" if skipped else "")
    return results


def main(argv: Optional[List[str]] = None) -> int:
    """Command-line entry point; returns the process exit code."""
    predict(parse_cli(argv, description="Mask Scoring R-CNN inference on images"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

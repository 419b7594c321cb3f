"""From raw detector outputs to COCO results and metrics.

Post-processing (host side, per image): boxes go from network-input pixels back to the original image (divided by
``img_meta`` scale, clipped); each 28x28 mask probability map is resized to its box and pasted into an image-sized
canvas (``mask_paste``: 'box', 'subpixel' or torchvision's way, see :func:`paste_mask`), binarised at
``mask_thr_binary`` and RLE-encoded with pycocotools.

A prediction (one detection, what ``eval.py`` saves as JSON) is
``{"image_id", "category_id" (real COCO id), "label" (1..), "bbox": [x, y, w, h], "score" (class score),
"mask_iou" (predicted mask IoU), "segmentation": {"size": [h, w], "counts": str}}``.
Box AP is scored with ``score``; mask AP with ``score * mask_iou`` (Mask Scoring R-CNN) and, for comparison, with
``score`` alone. The report also gives the Pearson and Spearman correlation between the predicted mask IoU and the
real IoU of each mask with its best-matching ground-truth mask of the same class.
"""
import contextlib
import io
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import pandas as pd
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from src.model_utils.config import MASK_PASTE_MODES

if TYPE_CHECKING:
    from mindspore.dataset import Dataset

    from src.data.transforms import TransformParams

LOGGER = logging.getLogger(__name__)

SUMMARY_NAMES = ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large",
                 "AR_1", "AR_10", "AR_100", "AR_small", "AR_medium", "AR_large")


def boxes_to_original(bboxes: np.ndarray, img_meta: np.ndarray) -> np.ndarray:
    """Boxes ``[N,4]`` x1,y1,x2,y2 in network-input pixels -> original-image pixels, clipped to the image.

    ``img_meta`` = (orig_h, orig_w, scaled_h, scaled_w, scale_h, scale_w).
    """
    orig_h, orig_w, _, _, scale_h, scale_w = (float(value) for value in img_meta)
    boxes = np.asarray(bboxes, dtype=np.float64).reshape(-1, 4) / np.array([scale_w, scale_h, scale_w, scale_h])
    boxes[:, 0::2] = boxes[:, 0::2].clip(0.0, orig_w)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0.0, orig_h)
    return boxes


class BoxMask:
    """A binary mask of an ``[height, width]`` image kept as the crop of its box: ``crop`` uint8 ``[h, w]`` {0, 1} at
    (``top``, ``left``), zero elsewhere. Memory is the box's, not the image's (100 detections on a 24-megapixel photo
    would otherwise hold 2.4 GB of masks); ``np.asarray(box_mask)`` gives the full ``[height, width]`` uint8 mask
    when one is needed, :func:`encode_mask` encodes it one detection at a time."""

    def __init__(self, crop: np.ndarray, top: int, left: int, height: int, width: int) -> None:
        self.crop, self.top, self.left, self.height, self.width = crop, top, left, height, width

    @property
    def shape(self) -> tuple:
        return self.height, self.width

    def sum(self) -> int:
        """Number of pixels in the mask."""
        return int(self.crop.sum())

    def full(self) -> np.ndarray:
        """The uint8 ``[height, width]`` mask."""
        canvas = np.zeros((self.height, self.width), dtype=np.uint8)
        canvas[self.top:self.top + self.crop.shape[0], self.left:self.left + self.crop.shape[1]] = self.crop
        return canvas

    def __array__(self, dtype: object = None, copy: object = None) -> np.ndarray:
        full = self.full()
        return full if dtype is None else full.astype(dtype)


def _subpixel_weights(start: float, end: float, mask_size: int, limit: int) -> Tuple[int, np.ndarray]:
    """Bilinear weights ``[P, S]`` that sample an ``S``-cell map laid on the float interval ``[start, end)`` at the
    centres of the whole pixels it reaches (the first is returned with them, pixels cut to ``[0, limit)``).

    Cell ``j`` is centred at ``start + (j + 0.5) * (end - start) / S``, where the aligned RoIAlign crop of the mask
    targets took it, so pixel ``p`` reads the map at cell coordinate
    ``u = (p + 0.5 - start) * S / (end - start) - 0.5``; cells outside the map are zero, so the map fades out half a
    cell beyond the interval."""
    length = max(end - start, 1e-6)
    cell = length / mask_size
    first = min(max(int(np.floor(start - cell)), 0), limit)
    last = min(max(int(np.ceil(end + cell)), first), limit)
    coords = (np.arange(first, last, dtype=np.float64) + 0.5 - start) / cell - 0.5
    low = np.floor(coords).astype(np.int64)
    frac = coords - low
    weights = np.zeros((last - first, mask_size + 2), dtype=np.float64)
    rows = np.arange(last - first)
    np.add.at(weights, (rows, np.clip(low + 1, 0, mask_size + 1)), 1.0 - frac)
    np.add.at(weights, (rows, np.clip(low + 2, 0, mask_size + 1)), frac)
    return first, weights[:, 1:-1]


def _torchvision_paste_box(box: Sequence[float], mask_size: int) -> Tuple[int, int, int, int]:
    """(x1, y1, width, height) in whole pixels of torchvision's paste of an ``[S,S]`` map padded to ``[S+2,S+2]``:
    the box widened about its centre by (S + 2) / S in float32, truncated towards zero, both ends included."""
    box = np.asarray(box, dtype=np.float32)
    scale = np.float32((mask_size + 2) / mask_size)
    half_w, half_h = (box[2] - box[0]) * np.float32(0.5) * scale, (box[3] - box[1]) * np.float32(0.5) * scale
    centre_x, centre_y = (box[2] + box[0]) * np.float32(0.5), (box[3] + box[1]) * np.float32(0.5)
    x1, y1, x2, y2 = (int(value) for value in (centre_x - half_w, centre_y - half_h, centre_x + half_w,
                                                centre_y + half_h))
    return x1, y1, max(x2 - x1 + 1, 1), max(y2 - y1 + 1, 1)


def paste_mask(mask_prob: np.ndarray, box: Sequence[float], img_h: int, img_w: int, threshold: float,
               mode: str = "box") -> BoxMask:
    """Paste one ``[S,S]`` mask probability map into an ``[img_h, img_w]`` {0,1} mask (a :class:`BoxMask`).

    mode 'box': the map is resized (bilinear, half-pixel centres) to the box rounded to whole pixels,
    ``[round(x1), round(x2))`` by ``[round(y1), round(y2))`` (at least 1x1). mode 'torchvision' (its
    ``paste_masks_in_image``): the map gets a border of zeros ([S+2, S+2]) and is resized to the box widened by
    (S + 2) / S and truncated to whole pixels, ``x1..x2`` inclusive (:func:`_torchvision_paste_box`). Then
    thresholded with ``prob > threshold`` and cut to the image. mode 'subpixel': the map is sampled bilinearly at
    every pixel centre near the float box, as the inverse of the aligned RoIAlign crop that made the mask targets
    (:func:`_subpixel_weights`; no rounding of the box, which shifts a 30-pixel mask by up to half a pixel in 'box').
    """
    mask_prob = np.asarray(mask_prob, dtype=np.float32)
    if mode == "subpixel":
        left, col_weights = _subpixel_weights(float(box[0]), float(box[2]), mask_prob.shape[1], img_w)
        top, row_weights = _subpixel_weights(float(box[1]), float(box[3]), mask_prob.shape[0], img_h)
        probs = row_weights @ mask_prob.astype(np.float64) @ col_weights.T
        return BoxMask((probs > threshold).astype(np.uint8), top, left, img_h, img_w)
    if mode == "torchvision":
        mask_prob = np.pad(mask_prob, 1)
        x1, y1, width, height = _torchvision_paste_box(box, mask_prob.shape[-1] - 2)
    elif mode == "box":
        x1, y1, x2, y2 = (int(round(float(value))) for value in box)
        width, height = max(x2 - x1, 1), max(y2 - y1, 1)
    else:
        raise ValueError(f"mask_paste: expected one of {MASK_PASTE_MODES}, got '{mode}'")
    resized = cv2.resize(mask_prob, (width, height), interpolation=cv2.INTER_LINEAR)
    box_mask = (resized > threshold).astype(np.uint8)
    left, top = min(max(x1, 0), img_w), min(max(y1, 0), img_h)
    right, bottom = max(min(x1 + width, img_w), left), max(min(y1 + height, img_h), top)
    return BoxMask(box_mask[top - y1:bottom - y1, left - x1:right - x1], top, left, img_h, img_w)


def encode_mask(mask: "np.ndarray | BoxMask") -> Dict[str, object]:
    """Binary ``[H,W]`` mask (array or :class:`BoxMask`) -> COCO RLE ``{"size": [H, W], "counts": str}`` (JSON
    serialisable)."""
    rle = mask_utils.encode(np.asfortranarray(np.asarray(mask, dtype=np.uint8)))
    return {"size": [int(size) for size in rle["size"]], "counts": rle["counts"].decode("ascii")}


def decode_mask(rle: Dict[str, object]) -> np.ndarray:
    """COCO RLE (counts as str or bytes) -> uint8 ``[H,W]`` mask."""
    counts = rle["counts"]
    return mask_utils.decode({"size": list(rle["size"]),
                              "counts": counts.encode("ascii") if isinstance(counts, str) else counts})


def postprocess_image(bboxes: np.ndarray, labels: np.ndarray, cls_scores: np.ndarray, mask_probs: np.ndarray,
                      mask_ious: np.ndarray, valids: np.ndarray, img_meta: np.ndarray, mask_thr_binary: float,
                      mask_paste: str = "box") -> List[Dict[str, object]]:
    """Detections of one image from the inference outputs (``[M,4]``, ``[M]``, ``[M]``, ``[M,S,S]``, ``[M]``,
    ``[M]`` bool, ``[6]``), masks pasted by :func:`paste_mask` in mode ``mask_paste`` (test_cfg.rcnn.mask_paste).
    Returns a list, by decreasing class score, of
    ``{"box": [x1,y1,x2,y2] original pixels, "label", "score", "mask_iou" (the predicted IoU clipped to [0, 1]: the
    regression is unbounded), "mask": :class:`BoxMask` of [orig_h, orig_w]}``."""
    orig_h, orig_w = int(round(float(img_meta[0]))), int(round(float(img_meta[1])))
    keep = np.flatnonzero(np.asarray(valids, dtype=bool))
    keep = keep[np.argsort(-np.asarray(cls_scores)[keep], kind="stable")]
    boxes = boxes_to_original(np.asarray(bboxes)[keep], img_meta)
    detections = []
    for box, index in zip(boxes, keep):
        detections.append({
            "box": [float(value) for value in box],
            "label": int(labels[index]),
            "score": float(cls_scores[index]),
            "mask_iou": float(np.clip(mask_ious[index], 0.0, 1.0)),
            "mask": paste_mask(mask_probs[index], box, orig_h, orig_w, mask_thr_binary, mask_paste),
        })
    return detections


def xyxy_to_xywh(box: Sequence[float]) -> List[float]:
    """[x1, y1, x2, y2] -> [x, y, width, height] (COCO's box format)."""
    x1, y1, x2, y2 = box
    return [x1, y1, x2 - x1, y2 - y1]


def detect_image(infer_net: Callable, image_bgr: np.ndarray, params: "TransformParams", mask_thr_binary: float,
                 mask_paste: str = "box") -> List[Dict[str, object]]:
    """Detections (:func:`postprocess_image`) of one BGR uint8 [H,W,3] image: resized, normalised and padded by
    ``params`` as at training time, run through ``infer_net(img, img_meta)`` as a batch of one."""
    from mindspore import Tensor

    from src.data.transforms import prepare_image

    img, meta = prepare_image(image_bgr, params)
    outputs = [output.asnumpy()[0] for output in infer_net(Tensor(img[None]), Tensor(meta[None]))]
    return postprocess_image(*outputs, meta, mask_thr_binary, mask_paste)


def to_prediction(detection: Dict[str, object], image_id: int, category_id: int) -> Dict[str, object]:
    """One detection of :func:`postprocess_image` -> a saved prediction (see module docstring)."""
    return {
        "image_id": int(image_id),
        "category_id": int(category_id),
        "label": int(detection["label"]),
        "bbox": xyxy_to_xywh(detection["box"]),
        "score": float(detection["score"]),
        "mask_iou": float(detection["mask_iou"]),
        "segmentation": encode_mask(detection["mask"]),
    }


def run_inference(infer_net: Callable, dataset: "Dataset", category_id_of: Callable[[int], int], mask_thr_binary: float,
                  known_image_ids: Optional[Iterable[int]] = None, progress: bool = True,
                  mask_paste: str = "box") -> List[Dict[str, object]]:
    """Run ``infer_net(img, img_meta)`` over an eval-mode dataset (columns img, img_meta, image_id) and return the
    predictions (masks pasted in mode ``mask_paste``). Each image id is processed once; ids outside
    ``known_image_ids`` are dropped with a warning naming them."""
    from tqdm import tqdm

    known = set(int(image_id) for image_id in known_image_ids) if known_image_ids is not None else None
    seen, unknown = set(), set()
    predictions: List[Dict[str, object]] = []
    iterator = dataset.create_tuple_iterator(num_epochs=1)
    for img, img_meta, image_ids in tqdm(iterator, total=dataset.get_dataset_size(), disable=not progress,
                                         desc="eval", unit="batch"):
        outputs = [output.asnumpy() for output in infer_net(img, img_meta)]
        bboxes, labels, cls_scores, mask_probs, mask_ious, valids = outputs
        metas = img_meta.asnumpy()
        for index, image_id in enumerate(int(value) for value in image_ids.asnumpy()):
            if known is not None and image_id not in known:
                unknown.add(image_id)
                continue
            if image_id in seen:
                continue
            seen.add(image_id)
            detections = postprocess_image(bboxes[index], labels[index], cls_scores[index], mask_probs[index],
                                           mask_ious[index], valids[index], metas[index], mask_thr_binary,
                                           mask_paste)
            predictions.extend(to_prediction(detection, image_id, category_id_of(detection["label"]))
                               for detection in detections)
    if unknown:
        LOGGER.warning("%d image id(s) of the dataset are not in its annotation file; their predictions were dropped: "
                       "%s", len(unknown), sorted(unknown)[:10])
    return predictions


def save_json_atomic(data: object, path: Path) -> Path:
    """Write ``data`` as JSON to ``path`` through a temporary file in the same folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".tmp-{path.name}")
    with open(temporary, "w", encoding="utf-8") as stream:
        json.dump(data, stream, indent=1)
    os.replace(temporary, path)
    return path


def load_predictions(path: Path) -> List[Dict[str, object]]:
    """Read predictions saved by eval.py; raises ValueError naming the file when it is not a list of predictions."""
    with open(path, encoding="utf-8") as stream:
        data = json.load(stream)
    required = {"image_id", "category_id", "bbox", "score", "mask_iou", "segmentation"}
    if not isinstance(data, list) or any(not isinstance(item, dict) or not required <= set(item) for item in data):
        raise ValueError(f"{path}: expected a JSON list of predictions with keys {sorted(required)}")
    return data


def coco_results(predictions: Sequence[Dict[str, object]], iou_type: str,
                 rescore: bool = True) -> List[Dict[str, object]]:
    """COCO result entries: ``bbox`` scored by class score; ``segm`` by class score * mask IoU (``rescore``) or by
    class score alone."""
    results = []
    for prediction in predictions:
        entry = {"image_id": prediction["image_id"], "category_id": prediction["category_id"],
                 "score": prediction["score"]}
        if iou_type == "bbox":
            entry["bbox"] = list(prediction["bbox"])
        elif iou_type == "segm":
            entry["segmentation"] = dict(prediction["segmentation"])
            if rescore:
                entry["score"] = prediction["score"] * prediction["mask_iou"]
        else:
            raise ValueError(f"iou_type: expected 'bbox' or 'segm', got '{iou_type}'")
        results.append(entry)
    return results


def run_cocoeval(coco_gt: COCO, results: List[Dict[str, object]], iou_type: str) -> Optional[COCOeval]:
    """Evaluate, accumulate and summarise; None when there are no results. pycocotools' own prints are captured in
    the returned object's ``summary_text`` attribute (the standard 12 lines)."""
    if not results:
        return None
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes([dict(result) for result in results])
    evaluator = COCOeval(coco_gt, coco_dt, iou_type)
    evaluator.params.imgIds = sorted(coco_gt.getImgIds())
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):
        evaluator.evaluate()
        evaluator.accumulate()
    summary = io.StringIO()
    with contextlib.redirect_stdout(summary):
        evaluator.summarize()
    evaluator.summary_text = summary.getvalue().rstrip()
    return evaluator


def _iou_index(evaluator: COCOeval, threshold: float) -> int:
    """Index of ``threshold`` among the evaluator's IoU thresholds."""
    return int(np.flatnonzero(np.isclose(evaluator.params.iouThrs, threshold))[0])


def per_category_ap(coco_gt: COCO, evaluators: Dict[str, Optional[COCOeval]]) -> pd.DataFrame:
    """Per category and evaluator (all areas, 100 detections): ``{name}_AP`` (AP@[.50:.95]), ``{name}_AP50``,
    ``{name}_AP75`` and ``{name}_R50`` (the share of its gt instances found at IoU >= 0.5); -1 where a category has no
    gt, 0 for an evaluator without detections. A high R50 with a low AP50 means found but outranked by false positives;
    a high AP50 with a low AP75 means found but poorly outlined."""
    categories = coco_gt.loadCats(sorted(coco_gt.getCatIds()))
    table = pd.DataFrame({"category_id": [category["id"] for category in categories],
                          "name": [category["name"] for category in categories]})
    metrics = ("AP", "AP50", "AP75", "R50")
    for name, evaluator in evaluators.items():
        if evaluator is None:
            for metric in metrics:
                table[f"{name}_{metric}"] = 0.0
            continue
        at_50, at_75 = _iou_index(evaluator, 0.5), _iou_index(evaluator, 0.75)
        columns: Dict[str, List[float]] = {f"{name}_{metric}": [] for metric in metrics}
        for category in categories:
            index = list(evaluator.params.catIds).index(category["id"])
            precision = evaluator.eval["precision"][:, :, index, 0, -1]
            for metric, values in (("AP", precision), ("AP50", precision[at_50]), ("AP75", precision[at_75])):
                valid = values[values > -1]
                columns[f"{name}_{metric}"].append(float(valid.mean()) if valid.size else -1.0)
            columns[f"{name}_R50"].append(float(evaluator.eval["recall"][at_50, index, 0, -1]))
        for column, values in columns.items():
            table[column] = values
    return table


def real_mask_ious(coco_gt: COCO, predictions: Sequence[Dict[str, object]]) -> np.ndarray:
    """For each prediction: the IoU of its mask with the best-matching non-crowd gt mask of the same category in the
    same image (0 when there is none)."""
    ious = np.zeros(len(predictions), dtype=np.float64)
    gt_cache: Dict[tuple, list] = {}
    for index, prediction in enumerate(predictions):
        key = (prediction["image_id"], prediction["category_id"])
        if key not in gt_cache:
            annotation_ids = coco_gt.getAnnIds(imgIds=[key[0]], catIds=[key[1]], iscrowd=False)
            gt_cache[key] = [coco_gt.annToRLE(annotation) for annotation in coco_gt.loadAnns(annotation_ids)]
        gts = gt_cache[key]
        if not gts:
            continue
        segmentation = prediction["segmentation"]
        rle = {"size": list(segmentation["size"]), "counts": segmentation["counts"].encode("ascii")
               if isinstance(segmentation["counts"], str) else segmentation["counts"]}
        ious[index] = float(np.max(mask_utils.iou([rle], gts, [0] * len(gts))))
    return ious


def correlations(predicted: np.ndarray, real: np.ndarray) -> Dict[str, float]:
    """Pearson and Spearman (Pearson of average ranks) correlation; NaN with fewer than 2 points or no spread."""
    if len(predicted) < 2 or np.std(predicted) == 0 or np.std(real) == 0:
        return {"pearson": float("nan"), "spearman": float("nan")}
    pearson = float(np.corrcoef(predicted, real)[0, 1])
    ranks_predicted = pd.Series(predicted).rank(method="average").to_numpy()
    ranks_real = pd.Series(real).rank(method="average").to_numpy()
    spearman = float(np.corrcoef(ranks_predicted, ranks_real)[0, 1])
    return {"pearson": pearson, "spearman": spearman}


def evaluate_predictions(coco_gt: COCO, predictions: Sequence[Dict[str, object]]) -> Dict[str, object]:
    """All metrics of a prediction list against ``coco_gt``.

    Returns ``{"bbox_mAP", "seg_mAP" (rescored), "seg_mAP_cls_score", "bbox_stats", "segm_stats" (12 values each,
    SUMMARY_NAMES order, -1 = no gt in that area range), "bbox_summary", "segm_summary" (the printed lines),
    "per_category" (DataFrame), "mask_iou_pearson", "mask_iou_spearman", "num_predictions"}``.
    """
    bbox_eval = run_cocoeval(coco_gt, coco_results(predictions, "bbox"), "bbox")
    segm_eval = run_cocoeval(coco_gt, coco_results(predictions, "segm", rescore=True), "segm")
    segm_cls_eval = run_cocoeval(coco_gt, coco_results(predictions, "segm", rescore=False), "segm")
    zeros = [0.0] * len(SUMMARY_NAMES)
    predicted_ious = np.array([prediction["mask_iou"] for prediction in predictions], dtype=np.float64)
    correlation = correlations(predicted_ious, real_mask_ious(coco_gt, predictions))
    return {
        "bbox_mAP": float(bbox_eval.stats[0]) if bbox_eval else 0.0,
        "seg_mAP": float(segm_eval.stats[0]) if segm_eval else 0.0,
        "seg_mAP_cls_score": float(segm_cls_eval.stats[0]) if segm_cls_eval else 0.0,
        "bbox_stats": [float(value) for value in bbox_eval.stats] if bbox_eval else zeros,
        "segm_stats": [float(value) for value in segm_eval.stats] if segm_eval else zeros,
        "bbox_summary": bbox_eval.summary_text if bbox_eval else "no detections",
        "segm_summary": segm_eval.summary_text if segm_eval else "no detections",
        "per_category": per_category_ap(coco_gt, {"bbox": bbox_eval, "segm": segm_eval}),
        "mask_iou_pearson": correlation["pearson"],
        "mask_iou_spearman": correlation["spearman"],
        "num_predictions": len(predictions),
    }


def format_report(metrics: Dict[str, object]) -> str:
    """Human-readable report: both COCO summaries, the per-category table and the mask-scoring comparison."""
    table = metrics["per_category"].to_string(index=False, float_format=lambda value: f"{value:.3f}")
    return "\n".join([
        f"Predictions: {metrics['num_predictions']}",
        "IoU metric: bbox", metrics["bbox_summary"],
        "IoU metric: segm (score = class score * predicted mask IoU)", metrics["segm_summary"],
        "Per category (AP = AP@[.50:.95]; R50 = share of the instances found at IoU >= 0.5):", table,
        "Mask scoring:",
        f"  segm mAP with class score alone:        {metrics['seg_mAP_cls_score']:.4f}",
        f"  segm mAP with class score * mask IoU:   {metrics['seg_mAP']:.4f}",
        f"  predicted vs real mask IoU: Pearson {metrics['mask_iou_pearson']:.4f}, "
        f"Spearman {metrics['mask_iou_spearman']:.4f}",
    ])

"""Where a trained detector loses its instances, per class: does the first stage propose them, and does the second
stage recognise them when shown their annotated box?

    python -m src.tools.diagnose_detector --config_path CONFIG --val_dataset DIR --checkpoint_path CKPT [--key value]

For every annotated instance of the dataset:
- **proposal recall**: the best IoU between its box and the test-time RPN proposals (``test_cfg.rpn``), counted at
  IoU 0.5 and 0.7 per class;
- **box head on the annotated box**: the class the box head gives when the annotated box itself is the RoI (a
  confusion matrix whose first column is background).
Low recall points at anchors and the RPN (anchor scales, ``nms_pre``); good recall with annotated boxes called
background points at the second stage (features, training length); confusion between classes at the classes
themselves. Runs in PYNATIVE mode, one image at a time.
"""
import src  # noqa: F401  first: sets MindSpore's log level before MindSpore is imported (src/__init__.py)
import sys
from typing import List, Optional, Sequence

import numpy as np
from pycocotools import mask as mask_utils

from src.model_utils.config import Config, parse_cli

RECALL_IOUS = (0.5, 0.7)


def best_overlaps(proposals: np.ndarray, gt_boxes: np.ndarray) -> np.ndarray:
    """proposals [P,4], gt_boxes [G,4] (x1, y1, x2, y2) -> [G] float: each gt box's highest IoU with a proposal (0
    without proposals), by pycocotools' box IoU."""
    if len(proposals) == 0:
        return np.zeros(len(gt_boxes))
    gt_xywh = np.concatenate([gt_boxes[:, :2], gt_boxes[:, 2:] - gt_boxes[:, :2]], axis=1).astype(np.float64)
    proposal_xywh = np.concatenate([proposals[:, :2], proposals[:, 2:] - proposals[:, :2]], axis=1).astype(np.float64)
    ious = mask_utils.iou(gt_xywh, proposal_xywh, [0] * len(proposals))
    return np.asarray(ious).reshape(len(gt_boxes), len(proposals)).max(axis=1)


def format_diagnosis(labels: np.ndarray, overlaps: np.ndarray, predicted: np.ndarray,
                     class_names: Sequence[str]) -> str:
    """The report: per class (label 1..) its instances, proposal recall at RECALL_IOUS and the median best IoU,
    then the confusion matrix of the box head on the annotated boxes (rows: annotated class, columns: predicted
    class, background first) with each row's share recognised."""
    lines = ["Proposal recall (best IoU of the test-time proposals with each annotated box):",
             f"  {'class':<16}{'instances':>10}" + "".join(f"{f'@{iou}':>9}" for iou in RECALL_IOUS)
             + f"{'median IoU':>12}"]
    for label in range(1, len(class_names)):
        best = overlaps[labels == label]
        recalls = "".join(f"{(best >= iou).mean() if len(best) else float('nan'):>9.3f}" for iou in RECALL_IOUS)
        median = float(np.median(best)) if len(best) else float("nan")
        lines.append(f"  {class_names[label]:<16}{len(best):>10d}{recalls}{median:>12.3f}")
    lines.append("Box head on the annotated boxes (rows: annotated class, columns: predicted class):")
    width = max(12, max(len(name) for name in class_names) + 2)
    lines.append(f"  {'':<16}" + "".join(f"{name:>{width}}" for name in class_names) + f"{'recognised':>12}")
    for label in range(1, len(class_names)):
        row = np.bincount(predicted[labels == label], minlength=len(class_names))
        share = row[label] / row.sum() if row.sum() else float("nan")
        lines.append(f"  {class_names[label]:<16}" + "".join(f"{count:>{width}d}" for count in row)
                     + f"{share:>12.3f}")
    return "\n".join(lines)


def diagnose(cfg: Config) -> str:
    """Run the checkpoint's first stage and its box head on the annotated boxes of ``cfg.val_dataset``; returns the
    report of :func:`format_diagnosis`."""
    import mindspore as ms
    from mindspore import Tensor, ops
    from tqdm import tqdm

    from eval import WithoutMaskScoring, load_inference_net
    from src.data import CocoDataset, prepare_image, read_image
    from src.data.transforms import TransformParams

    ms.set_context(mode=ms.PYNATIVE_MODE, device_target=str(cfg.device_target))
    infer_net = load_inference_net(cfg)
    if isinstance(infer_net, WithoutMaskScoring):
        infer_net = infer_net.infer_net
    model = infer_net.model
    coco = CocoDataset(cfg.val_dataset, cfg.coco_classes)
    params = TransformParams.from_config(cfg)
    labels, overlaps, predicted = [], [], []
    for image_id in tqdm(coco.image_ids, desc="diagnose", unit="image"):
        record = coco.record(image_id)
        if not len(record.labels):
            continue
        img, meta = prepare_image(read_image(record.path, record.height, record.width), params)
        gt_boxes = record.boxes * np.array([meta[5], meta[4], meta[5], meta[4]], np.float32)
        features = model.features(Tensor(img[None]))
        rpn_cls, rpn_reg = model.rpn_head(features)
        proposals, _, valids = infer_net.test_proposals(rpn_cls, rpn_reg, Tensor(meta[None]))
        proposals = proposals.asnumpy()[0][valids.asnumpy()[0]]
        rois = np.concatenate([np.zeros((len(gt_boxes), 1), np.float32), gt_boxes], axis=1)
        cls_score, _ = model.bbox_head(model.bbox_roi_extractor(features[:model.num_bbox_levels], Tensor(rois)))
        labels.append(record.labels)
        overlaps.append(best_overlaps(proposals, gt_boxes))
        predicted.append(ops.argmax(cls_score, dim=1).asnumpy())
    if not labels:
        raise ValueError(f"val_dataset: {cfg.val_dataset} has no annotated instance to diagnose")
    return format_diagnosis(np.concatenate(labels), np.concatenate(overlaps), np.concatenate(predicted),
                            cfg.coco_classes)


def main(argv: Optional[List[str]] = None) -> int:
    """Command-line entry point (see the module docstring)."""
    cfg = parse_cli(argv, description=__doc__.splitlines()[0])
    print(diagnose(cfg))
    return 0


if __name__ == "__main__":
    sys.exit(main())

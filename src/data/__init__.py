"""COCO-format instance segmentation data: reading, checking, transforms and fixed-shape MindSpore batches.

* ``annotations.py``: segmentation formats and masks, boxes, which annotations training keeps, the structural check
  of an annotation file, :class:`DatasetError`;
* ``coco.py``: dataset layouts, the annotation file as a whole (:class:`CocoDataset`), images and masks;
* ``transforms.py``: image and mask transforms (resize, flip, normalise, pad, random crops, scale jitter and quarter
  turns), inference input;
* ``batching.py``: fixed-shape training samples;
* ``pipeline.py``: the sharded, batched ``mindspore.dataset`` (:func:`create_dataset`).
"""
from src.data.annotations import (ERROR, MAX_LISTED_PROBLEMS, WARNING, DatasetError, Problem, format_problems,
                                  inspect_annotations, is_trainable, mask_tight_box, segmentation_format,
                                  segmentation_to_mask, segmentation_to_rle, usable_polygons, xywh_to_clipped_xyxy)
from src.data.batching import largest_instances, pad_instances, prepare_train_sample
from src.data.coco import CocoDataset, ImageRecord, decode_masks, read_coco_json, read_image, resolve_dataset
from src.data.pipeline import (EVAL_COLUMNS, TRAIN_COLUMNS, EvalSource, ShardSampler, TrainSource, create_dataset,
                               train_records)
from src.data.transforms import (CROP_ATTEMPTS, TransformParams, choose_crop_window, crop_instances,
                                 crop_visible_instances, downsample_masks, flip_horizontal, image_meta, jitter_size,
                                 normalized_chw, pad_masks, prepare_image, rescale_size, resize_boxes,
                                 resize_image, resize_masks, rotate90, tight_boxes)

__all__ = [
    "ERROR", "MAX_LISTED_PROBLEMS", "WARNING", "DatasetError", "Problem", "format_problems", "inspect_annotations",
    "is_trainable", "mask_tight_box", "segmentation_format", "segmentation_to_mask", "segmentation_to_rle",
    "usable_polygons", "xywh_to_clipped_xyxy",
    "largest_instances", "pad_instances", "prepare_train_sample",
    "CocoDataset", "ImageRecord", "decode_masks", "read_coco_json", "read_image", "resolve_dataset",
    "EVAL_COLUMNS", "TRAIN_COLUMNS", "EvalSource", "ShardSampler", "TrainSource", "create_dataset", "train_records",
    "CROP_ATTEMPTS", "TransformParams", "choose_crop_window", "crop_instances", "crop_visible_instances",
    "downsample_masks", "flip_horizontal", "image_meta", "jitter_size", "normalized_chw", "pad_masks",
    "prepare_image", "rescale_size", "resize_boxes", "resize_image", "resize_masks", "rotate90", "tight_boxes",
]

"""Fixed-shape training samples: the ``num_gts`` largest instances, padded to ``num_gts``.

Training transform order (all pure NumPy, exposed for tests): read BGR -> resize (keep ratio or stretch; with crops,
times a random factor of crop_scale_range) -> horizontal flip of the resized content -> optional random crop (and,
with crop_rotate90, a random number of quarter turns of the crop) -> keep the ``num_gts`` largest instances ->
normalise (optional BGR->RGB, mean, std) -> pad bottom/right with zeros to the training shape (zeros of the
normalised image, i.e. the mean colour) -> CHW. Masks follow the same resize/flip/crop/pad and are then reduced to
``1/mask_divider`` resolution.
"""
from __future__ import annotations

import numpy as np

from src.data.transforms import (TransformParams, choose_crop_window, crop_instances, downsample_masks, flip_horizontal,
                                 image_meta, jitter_size, normalized_chw, pad_masks, resize_boxes,
                                 resize_image, resize_masks, rotate90, tight_boxes)


def largest_instances(masks: np.ndarray, max_count: int) -> np.ndarray:
    """Indices of the ``max_count`` masks [N,H,W] with the largest area (ties: file order), in file order."""
    if masks.shape[0] <= max_count:
        return np.arange(masks.shape[0])
    areas = masks.reshape(masks.shape[0], -1).sum(axis=1)
    return np.sort(np.argsort(-areas, kind="stable")[:max_count])


def pad_instances(boxes: np.ndarray, labels: np.ndarray, masks: np.ndarray,
                  num_gts: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pad N <= num_gts instances to num_gts: boxes [num_gts,4] f32, labels int32, valids bool, masks uint8."""
    count = boxes.shape[0]
    padded_boxes = np.zeros((num_gts, 4), np.float32)
    padded_labels = np.zeros((num_gts,), np.int32)
    valids = np.zeros((num_gts,), np.bool_)
    padded_masks = np.zeros((num_gts,) + masks.shape[1:], np.uint8)
    padded_boxes[:count], padded_labels[:count], valids[:count], padded_masks[:count] = boxes, labels, True, masks
    return padded_boxes, padded_labels, valids, padded_masks


def prepare_train_sample(image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, masks: np.ndarray,
                         params: TransformParams, flip: bool,
                         rng: np.random.Generator | None = None) -> tuple[np.ndarray, ...]:
    """One training sample in the batch layout (without the batch axis).

    Args:
        image: BGR uint8 [h,w,3]; boxes [N,4] x1,y1,x2,y2 original pixels; labels [N] int32; masks [N,h,w] uint8.
        params: geometry/normalisation; flip: mirror horizontally.
        rng: draws the crop window when ``params.crops`` (required then): the image is resized as for inference
            (times a factor drawn from ``params.crop_scale_range``, :func:`jitter_size`), flipped, then a
            crop_height x crop_width window is cut (:func:`choose_crop_window`, a fraction
            ``params.crop_background_fraction`` of them anywhere; :func:`crop_instances`), turned by
            a random number of quarter turns when ``params.crop_rotate90`` (square crops), and becomes the sample.

    Returns:
        img [3,H,W] f32, img_meta [6] f32, gt_bboxes [num_gts,4] f32 (input pixels), gt_labels [num_gts] int32,
        gt_valids [num_gts] bool, gt_masks [num_gts,H/d,W/d] uint8 (the num_gts largest instances kept); H x W is
        ``params.train_shape``. With a crop, img_meta's scaled size is the part of the window inside the image and
        its scale factors are those of the resize.
    """
    orig_h, orig_w = image.shape[:2]
    scaled_h, scaled_w = params.scaled_size(orig_h, orig_w)
    if params.crops:
        if rng is None:
            raise ValueError("prepare_train_sample: crop training needs an rng for the crop window")
        scaled_h, scaled_w = jitter_size(scaled_h, scaled_w, params.crop_scale_range, rng)
    image = resize_image(image, scaled_h, scaled_w)
    masks = resize_masks(masks, scaled_h, scaled_w)
    boxes = resize_boxes(boxes, scaled_h / orig_h, scaled_w / orig_w, scaled_h, scaled_w)
    if flip:
        image, boxes, masks = flip_horizontal(image, boxes, masks, scaled_w)
    meta = image_meta(orig_h, orig_w, scaled_h, scaled_w)
    if params.crops:
        top, left = choose_crop_window(masks, params.crop_height, params.crop_width, params.crop_min_visible, rng,
                                       params.crop_background_fraction)
        image, boxes, labels, masks = crop_instances(image, labels, masks, top, left, params.crop_height,
                                                     params.crop_width, params.crop_min_visible)
        if params.crop_rotate90:
            image, masks = rotate90(image, masks, int(rng.integers(0, 4)))
            boxes = tight_boxes(masks)
        meta[2:4] = image.shape[:2]
    keep = largest_instances(masks, params.num_gts)
    boxes, labels, masks = boxes[keep], labels[keep], masks[keep]
    height, width = params.train_shape
    img = normalized_chw(image, params.img_mean, params.img_std, params.to_rgb, height, width)
    masks = downsample_masks(pad_masks(masks, height, width), params.mask_divider)
    gt_bboxes, gt_labels, gt_valids, gt_masks = pad_instances(boxes, labels, masks, params.num_gts)
    return img, meta, gt_bboxes, gt_labels, gt_valids, gt_masks

"""Image and mask transforms (pure NumPy / OpenCV): resize, flip, normalise, pad, downsample, random crops with scale
jitter and quarter turns, and the inference input of one image (:func:`prepare_image`)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import cv2
import numpy as np

from src.data.annotations import mask_tight_box

CROP_ATTEMPTS = 10


@dataclass(frozen=True)
class TransformParams:
    """Image geometry and normalisation taken from the config."""

    img_height: int
    img_width: int
    keep_ratio: bool
    img_mean: tuple[float, float, float]
    img_std: tuple[float, float, float]
    to_rgb: bool
    mask_divider: int
    num_gts: int
    crop_height: int = 0
    crop_width: int = 0
    crop_min_visible: float = 0.5
    crop_scale_range: tuple[float, float] = (1.0, 1.0)
    crop_rotate90: bool = False
    crop_background_fraction: float = 0.0
    resize_rule: str = "fit"
    resize_short_side: int = 800
    resize_long_side: int = 1333

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> "TransformParams":
        """Read img_height, img_width, keep_ratio, img_mean, img_std, to_rgb, mask_divider, num_gts, the crop
        keys (crop_height, crop_width, crop_min_visible, crop_scale_range, crop_rotate90,
        crop_background_fraction) and the resize keys (resize_rule, resize_short_side, resize_long_side)."""
        return cls(int(cfg["img_height"]), int(cfg["img_width"]), bool(cfg["keep_ratio"]),
                   tuple(float(v) for v in cfg["img_mean"]), tuple(float(v) for v in cfg["img_std"]),
                   bool(cfg["to_rgb"]), int(cfg["mask_divider"]), int(cfg["num_gts"]), int(cfg["crop_height"]),
                   int(cfg["crop_width"]), float(cfg["crop_min_visible"]),
                   tuple(float(v) for v in cfg["crop_scale_range"]), bool(cfg["crop_rotate90"]),
                   float(cfg["crop_background_fraction"]), str(cfg["resize_rule"]), int(cfg["resize_short_side"]),
                   int(cfg["resize_long_side"]))

    def scaled_size(self, orig_h: int, orig_w: int) -> tuple[int, int]:
        """(scaled_h, scaled_w) of an orig_h x orig_w image under these params (:func:`rescale_size`)."""
        return rescale_size(orig_h, orig_w, self.img_height, self.img_width, self.keep_ratio, self.resize_rule,
                            self.resize_short_side, self.resize_long_side)

    @property
    def crops(self) -> bool:
        """True when training samples are random crop_height x crop_width windows."""
        return self.crop_height > 0

    @property
    def train_shape(self) -> tuple[int, int]:
        """(h, w) of a training sample: the crop window, or img_height x img_width."""
        return (self.crop_height, self.crop_width) if self.crops else (self.img_height, self.img_width)


def rescale_size(orig_h: int, orig_w: int, img_h: int, img_w: int, keep_ratio: bool, rule: str = "fit",
                 short_side: int = 800, long_side: int = 1333) -> tuple[int, int]:
    """(scaled_h, scaled_w) of an orig_h x orig_w image on an img_h x img_w canvas.

    rule 'fit': the largest size fitting the canvas with the same aspect ratio (sides rounded), or the canvas
    itself without ``keep_ratio``. rule 'short_long' (torchvision's ``GeneralizedRCNNTransform``): scale =
    min(short_side / shorter side, long_side / longer side) and each side floor(side * scale) (at least 1), computed
    in double precision as torch's ``interpolate`` does; ValueError when the result does not fit the canvas.
    """
    if rule == "short_long":
        scale = min(short_side / min(orig_h, orig_w), long_side / max(orig_h, orig_w))
        scaled_h, scaled_w = max(1, math.floor(orig_h * scale)), max(1, math.floor(orig_w * scale))
        if scaled_h > img_h or scaled_w > img_w:
            raise ValueError(f"resize_rule 'short_long': {orig_h}x{orig_w} resizes to {scaled_h}x{scaled_w}, which "
                             f"does not fit the {img_h}x{img_w} canvas (img_height x img_width)")
        return scaled_h, scaled_w
    if rule != "fit":
        raise ValueError(f"resize_rule: expected 'fit' or 'short_long', got '{rule}'")
    if not keep_ratio:
        return img_h, img_w
    scale = min(img_h / orig_h, img_w / orig_w)
    return min(img_h, max(1, int(round(orig_h * scale)))), min(img_w, max(1, int(round(orig_w * scale))))


def resize_image(image: np.ndarray, scaled_h: int, scaled_w: int) -> np.ndarray:
    """Bilinear resize of an [H,W,C] image to [scaled_h, scaled_w, C]."""
    return cv2.resize(image, (scaled_w, scaled_h), interpolation=cv2.INTER_LINEAR)


def resize_boxes(boxes: np.ndarray, scale_h: float, scale_w: float, scaled_h: int, scaled_w: int) -> np.ndarray:
    """Boxes [N,4] x1,y1,x2,y2 scaled by (scale_w, scale_h) and clipped to the scaled content."""
    scaled = boxes.astype(np.float32) * np.array([scale_w, scale_h, scale_w, scale_h], np.float32)
    scaled[:, 0::2] = np.clip(scaled[:, 0::2], 0, scaled_w)
    scaled[:, 1::2] = np.clip(scaled[:, 1::2], 0, scaled_h)
    return scaled


def resize_masks(masks: np.ndarray, scaled_h: int, scaled_w: int) -> np.ndarray:
    """Nearest-neighbour resize of masks [N,H,W] uint8 to [N, scaled_h, scaled_w]."""
    resized = np.zeros((masks.shape[0], scaled_h, scaled_w), np.uint8)
    for index, mask in enumerate(masks):
        resized[index] = cv2.resize(mask, (scaled_w, scaled_h), interpolation=cv2.INTER_NEAREST)
    return resized


def flip_horizontal(image: np.ndarray, boxes: np.ndarray, masks: np.ndarray,
                    content_width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mirror an unpadded [H,W,C] image, its boxes [N,4] (x1' = W - x2, x2' = W - x1) and masks [N,H,W].

    Flip before padding so the content stays at the top-left; ``content_width`` is the image width W.
    """
    flipped_boxes = boxes.copy()
    flipped_boxes[:, 0] = content_width - boxes[:, 2]
    flipped_boxes[:, 2] = content_width - boxes[:, 0]
    return np.ascontiguousarray(image[:, ::-1]), flipped_boxes, np.ascontiguousarray(masks[:, :, ::-1])


def jitter_size(scaled_h: int, scaled_w: int, scale_range: tuple[float, float],
                rng: np.random.Generator) -> tuple[int, int]:
    """(scaled_h, scaled_w) times a factor drawn log-uniformly from scale_range = (low, high), each side rounded
    and at least 1; the size unchanged (and nothing drawn) when low == high == 1."""
    low, high = scale_range
    if low == high == 1.0:
        return scaled_h, scaled_w
    factor = math.exp(rng.uniform(math.log(low), math.log(high)))
    return max(1, round(scaled_h * factor)), max(1, round(scaled_w * factor))


def rotate90(image: np.ndarray, masks: np.ndarray, turns: int) -> tuple[np.ndarray, np.ndarray]:
    """Rotate an unpadded [H,W,C] image and its masks [N,H,W] by turns x 90 degrees counter-clockwise (np.rot90):
    [W,H,C] and [N,W,H] for an odd number of turns. Boxes are re-derived from the rotated masks."""
    return (np.ascontiguousarray(np.rot90(image, turns, axes=(0, 1))),
            np.ascontiguousarray(np.rot90(masks, turns, axes=(1, 2))))


def tight_boxes(masks: np.ndarray) -> np.ndarray:
    """[N,4] float32 x1,y1,x2,y2 tight boxes (x2 exclusive) of non-empty masks [N,H,W]."""
    return np.array([mask_tight_box(mask) for mask in masks], np.float32).reshape(-1, 4)


def normalized_chw(image: np.ndarray, mean: Sequence[float], std: Sequence[float], to_rgb: bool, height: int,
                   width: int) -> np.ndarray:
    """BGR uint8 [h,w,3] -> float32 [3, height, width]: each channel (in RGB order when ``to_rgb``) minus ``mean``,
    over ``std`` (both given in the output order), written into a zero canvas at the top left (padding at the bottom
    and right), one channel at a time without intermediate copies."""
    canvas = np.zeros((3, height, width), np.float32)
    mean = np.asarray(mean, np.float32)
    std = np.asarray(std, np.float32)
    content_h, content_w = image.shape[:2]
    for channel in range(3):
        plane = canvas[channel, :content_h, :content_w]
        np.subtract(image[:, :, 2 - channel if to_rgb else channel], mean[channel], out=plane, dtype=np.float32)
        np.divide(plane, std[channel], out=plane)
    return canvas


def pad_masks(masks: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pad masks [N,h,w] with zeros at the bottom/right to [N, height, width]."""
    padded = np.zeros((masks.shape[0], height, width), masks.dtype)
    padded[:, :masks.shape[1], :masks.shape[2]] = masks
    return padded


def downsample_masks(masks: np.ndarray, divider: int) -> np.ndarray:
    """Masks [N,H,W] (H, W divisible by ``divider``) -> [N,H/d,W/d] uint8: 1 where >= half of the d x d block is 1."""
    if divider == 1:
        return masks.astype(np.uint8)
    ones = np.zeros((masks.shape[0], masks.shape[1] // divider, masks.shape[2] // divider), np.uint8)
    for row in range(divider):
        for col in range(divider):
            ones += masks[:, row::divider, col::divider]
    return (2 * ones.astype(np.uint16) >= divider * divider).astype(np.uint8)


def mask_areas(masks: np.ndarray) -> np.ndarray:
    """[N] int64 pixel counts of the masks [N,H,W]."""
    return masks.sum(axis=(1, 2), dtype=np.int64)


def crop_visible_instances(masks: np.ndarray, top: int, left: int, crop_h: int, crop_w: int,
                           min_visible: float, areas: np.ndarray | None = None) -> np.ndarray:
    """Indices of the masks [N,H,W] that keep at least ``min_visible`` of their pixels (and at least one) inside the
    window rows [top, top + crop_h), columns [left, left + crop_w). ``areas``: their :func:`mask_areas`, when known."""
    areas = mask_areas(masks) if areas is None else areas
    inside = masks[:, top:top + crop_h, left:left + crop_w].reshape(masks.shape[0], -1).sum(axis=1, dtype=np.int64)
    return np.flatnonzero((inside > 0) & (inside >= min_visible * areas))


def choose_crop_window(masks: np.ndarray, crop_h: int, crop_w: int, min_visible: float,
                       rng: np.random.Generator, background_fraction: float = 0.0) -> tuple[int, int]:
    """(top, left) of a crop_h x crop_w window of the [H,W] content of masks [N,H,W].

    With probability ``background_fraction`` the first uniformly drawn window is kept whatever it holds (the
    network then also sees the parts of the image where no object lies, which it meets at test time on the whole
    image; nothing is drawn for it when the fraction is 0). Otherwise up to CROP_ATTEMPTS - 1 uniformly drawn
    windows are tried, the first that keeps an instance (see
    :func:`crop_visible_instances`) wins; otherwise a randomly chosen instance is placed at a uniformly drawn
    position inside the window (its whole box when it fits, else as much of it as fits). A window larger than the
    content starts at 0. Objects must not sit at a fixed place in the crops (e.g. their centre): a network learns
    such a position from the zero padding at the crop's border, and at test time, on the whole image, misses
    objects elsewhere.
    """
    height, width = masks.shape[1:]
    max_top, max_left = max(height - crop_h, 0), max(width - crop_w, 0)
    areas = mask_areas(masks)
    any_window = background_fraction > 0 and rng.random() < background_fraction
    for _ in range(CROP_ATTEMPTS - 1):
        top, left = int(rng.integers(0, max_top + 1)), int(rng.integers(0, max_left + 1))
        if any_window or masks.shape[0] == 0 or crop_visible_instances(masks, top, left, crop_h, crop_w,
                                                                       min_visible, areas).size:
            return top, left
    box = mask_tight_box(masks[int(rng.integers(0, masks.shape[0]))])
    if box is None:
        return top, left
    return (_offset_covering(int(box[1]), int(box[3]), crop_h, max_top, rng),
            _offset_covering(int(box[0]), int(box[2]), crop_w, max_left, rng))


def _offset_covering(start: int, end: int, size: int, max_offset: int, rng: np.random.Generator) -> int:
    """A uniformly drawn window offset in [0, max_offset] such that the window [offset, offset + size) covers
    [start, end), or, when the span is longer than the window, lies inside it."""
    low, high = end - size, start
    if low > high:
        low, high = high, low
    low, high = min(max(low, 0), max_offset), min(max(high, 0), max_offset)
    return int(rng.integers(low, high + 1))


def crop_instances(image: np.ndarray, labels: np.ndarray, masks: np.ndarray, top: int, left: int, crop_h: int,
                   crop_w: int, min_visible: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cut the window (top, left, crop_h, crop_w) out of an [H,W,C] image and its instances.

    Returns (image [h',w',C] with h' = min(crop_h, H - top), w' likewise; boxes [K,4] x1,y1,x2,y2 the tight boxes
    of the cropped masks (x2 exclusive); labels [K]; masks [K,h',w']) for the K instances that keep at least
    ``min_visible`` of their pixels in the window; the others are dropped.
    """
    keep = crop_visible_instances(masks, top, left, crop_h, crop_w, min_visible)
    cropped_masks = np.ascontiguousarray(masks[keep, top:top + crop_h, left:left + crop_w])
    return (np.ascontiguousarray(image[top:top + crop_h, left:left + crop_w]), tight_boxes(cropped_masks),
            labels[keep], cropped_masks)


def image_meta(orig_h: int, orig_w: int, scaled_h: int, scaled_w: int) -> np.ndarray:
    """[6] float32: orig_h, orig_w, scaled_h, scaled_w, scale_h = scaled_h/orig_h, scale_w = scaled_w/orig_w."""
    return np.array([orig_h, orig_w, scaled_h, scaled_w, scaled_h / orig_h, scaled_w / orig_w], np.float32)


def prepare_image(image: np.ndarray, params: TransformParams) -> tuple[np.ndarray, np.ndarray]:
    """BGR uint8 [h,w,3] -> (img [3,H,W] float32 normalised and padded, img_meta [6] float32), no flip."""
    orig_h, orig_w = image.shape[:2]
    scaled_h, scaled_w = params.scaled_size(orig_h, orig_w)
    resized = resize_image(image, scaled_h, scaled_w)
    img = normalized_chw(resized, params.img_mean, params.img_std, params.to_rgb, params.img_height, params.img_width)
    return img, image_meta(orig_h, orig_w, scaled_h, scaled_w)

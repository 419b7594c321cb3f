"""Masks to COCO polygon annotations (box and area taken from the decoded polygon mask) and COCO JSON files."""
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_utils

POLYGON_TOLERANCE_PX = 0.6


@dataclass
class EncodedMask:
    """A mask as COCO polygons [[x, y, ...], ...], its pycocotools-decoded mask [H, W] bool, the tight box
    [x, y, w, h] of that decoded mask (w = x_max + 1 - x_min) and its pixel area."""

    polygons: list[list[float]]
    decoded: np.ndarray
    bbox: list[float]
    area: int


def mask_to_polygons(mask: np.ndarray) -> list[list[float]]:
    """Outer contours of mask [H, W] bool as simplified polygons (pixel centres), each with at least 3 points."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polygons = []
    for contour in contours:
        simplified = cv2.approxPolyDP(contour, POLYGON_TOLERANCE_PX, True).reshape(-1, 2)
        if len(simplified) < 3 or cv2.contourArea(simplified.astype(np.float32)) < 1.0:
            continue
        polygons.append([float(value) for value in simplified.reshape(-1)])
    return polygons


def decode_polygons(polygons: list[list[float]], height: int, width: int) -> np.ndarray:
    """Rasterise COCO polygons with pycocotools into a [height, width] bool mask (their union)."""
    rles = mask_utils.frPyObjects(polygons, height, width)
    return mask_utils.decode(mask_utils.merge(rles)).astype(bool)


def tight_bbox(mask: np.ndarray) -> list[float]:
    """Tight box [x, y, w, h] of a non-empty bool mask, w = x_max + 1 - x_min (pixel count)."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return [float(cols[0]), float(rows[0]), float(cols[-1] + 1 - cols[0]), float(rows[-1] + 1 - rows[0])]


def encode_mask(mask: np.ndarray, min_area: int) -> EncodedMask | None:
    """Polygons of mask [H, W] bool with box and area from their decoded mask; None if the decoded area is
    below min_area pixels."""
    polygons = mask_to_polygons(mask)
    if not polygons:
        return None
    decoded = decode_polygons(polygons, *mask.shape)
    area = int(decoded.sum())
    if area < min_area:
        return None
    return EncodedMask(polygons, decoded, tight_bbox(decoded), area)


def coco_document(images: list[dict], annotations: list[dict], category_names: tuple[str, ...],
                  supercategory: str, description: str) -> dict:
    """COCO instances document; categories get ids 1..len(category_names) in the given order."""
    categories = [{"id": index, "name": name, "supercategory": supercategory}
                  for index, name in enumerate(category_names, start=1)]
    return {"info": {"description": description, "version": "1.0"}, "licenses": [], "images": images,
            "annotations": annotations, "categories": categories}


def write_json(path: Path, document: dict) -> None:
    """Write document as compact JSON with a trailing newline (byte-identical for identical input)."""
    path.write_text(json.dumps(document, separators=(",", ":")) + "\n", encoding="utf-8")

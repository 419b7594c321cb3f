"""Place a canonical car layout in the image and paint it, building the label map of visible components."""
from dataclasses import dataclass

import cv2
import numpy as np

from src.tools.synthetic.car_layouts import CarLayout, Component
from src.tools.synthetic.geometry import apply_affine, rasterize


@dataclass
class Placement:
    """Where the car goes: [2, 3] affine matrix canonical -> image pixels, pixels per canonical unit, ground row."""

    matrix: np.ndarray
    scale_px: float
    ground_y: float


@dataclass
class PaintedCar:
    """Result of painting: label_map [H, W] int32 (0 = not the car, k = components[k - 1] visible there),
    body_mask [H, W] bool (body silhouette), the layout components and the placement."""

    label_map: np.ndarray
    body_mask: np.ndarray
    components: list[Component]
    placement: Placement


def sample_placement(rng: np.random.Generator, layout: CarLayout, height: int, width: int) -> Placement:
    """Random size, position, slight rotation, aspect jitter and mirroring; sometimes partly out of frame."""
    if layout.view == "side":
        scale = rng.uniform(0.55, 1.0) * width
    else:
        scale = rng.uniform(0.40, 0.75) * width
    half_width = 0.5 * scale
    if rng.random() < 0.25:
        overhang = rng.uniform(0.1, 0.4) * scale
        center_x = half_width - overhang if rng.random() < 0.5 else width - half_width + overhang
    else:
        slack = max(0.0, width / 2 - half_width - 0.02 * width)
        center_x = width / 2 + rng.uniform(-slack, slack)
    car_height = layout.roof_height * scale
    if rng.random() < 0.08:
        ground_y = height + rng.uniform(0.0, 0.15) * car_height
    else:
        lowest = min(0.92 * height, max(0.45 * height, car_height + 0.03 * height))
        ground_y = rng.uniform(lowest, 0.92 * height)
    angle = np.deg2rad(rng.uniform(-3.0, 3.0))
    flip = -1.0 if (layout.view == "side" and rng.random() < 0.5) else 1.0
    stretch = rng.uniform(0.92, 1.08)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    linear = rotation @ np.diag([flip * scale * stretch, scale])
    anchor = np.array([center_x, ground_y])
    translation = anchor - linear @ np.array([0.5, 0.0])
    return Placement(np.concatenate([linear, translation[:, None]], axis=1), scale, ground_y)


def _fill(image: np.ndarray, mask: np.ndarray, points: np.ndarray, colour: np.ndarray,
          gradient: tuple[float, float]) -> None:
    """Paint mask pixels of image [H, W, 3] float32 with colour, brightness varying linearly from gradient[0]
    at the top of points (polygon in pixels) to gradient[1] at its bottom."""
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return
    top, bottom = points[:, 1].min(), points[:, 1].max()
    position = np.clip((rows - top) / max(bottom - top, 1.0), 0.0, 1.0)
    factor = gradient[0] + (gradient[1] - gradient[0]) * position
    image[rows, cols] = np.clip(colour[None, :] * factor[:, None], 0, 255)


def paint_car(image: np.ndarray, layout: CarLayout, placement: Placement) -> PaintedCar:
    """Paint layout components in order onto image [H, W, 3] float32 (in place) and build the label map."""
    height, width = image.shape[:2]
    label_map = np.zeros((height, width), dtype=np.int32)
    body_mask = np.zeros((height, width), dtype=bool)
    for index, component in enumerate(layout.components, start=1):
        points = apply_affine(component.polygon, placement.matrix)
        mask = rasterize(points, height, width)
        if component.clip_to_body:
            mask &= body_mask
        if component.name == "body":
            body_mask = mask.copy()
        _fill(image, mask, points, component.colour, component.gradient)
        if component.labelled:
            label_map[mask] = index
        if component.outline is not None and mask.any():
            thickness = max(1, int(round(component.outline_width * placement.scale_px)))
            contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
            cv2.drawContours(image, contours, -1, tuple(float(c) for c in component.outline), thickness)
    return PaintedCar(label_map, body_mask, layout.components, placement)

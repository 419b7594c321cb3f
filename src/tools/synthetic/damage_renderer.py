"""Damages painted on the car surface: minor = scratch, moderate = dent, severe = broken/cracked region.

Each damage is a clean region (rotated band, ellipse or jagged polygon) clipped to the damageable car surface and
kept apart from the other damages of the image; its severity is decided before it is drawn.
"""
from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from src.tools.synthetic.car_layouts import DAMAGEABLE_NAMES, PART_NAMES, UNANNOTATED_HOSTS
from src.tools.synthetic.car_renderer import PaintedCar
from src.tools.synthetic.geometry import ellipse_polygon, rasterize

SEVERITIES = ("minor", "moderate", "severe")
SEVERITY_PROBABILITIES = {"default": (0.35, 0.40, 0.25), "headlamp": (0.30, 0.10, 0.60)}
DAMAGE_COUNT_PROBABILITIES = (0.40, 0.35, 0.20, 0.05)
UNANNOTATED_HOST_PROBABILITY = 0.3
PLACEMENT_ATTEMPTS = 12


@dataclass
class Damage:
    """A placed damage: severity name, raster mask [H, W] bool and whatever `accept` returned for it."""

    severity: str
    mask: np.ndarray
    record: object


def _band_polygon(center: np.ndarray, angle: float, length: float, width: float) -> np.ndarray:
    """Rotated rectangle [4, 2] of size length x width centred on center, long side at angle (radians)."""
    along = np.array([np.cos(angle), np.sin(angle)])
    across = np.array([-along[1], along[0]])
    return np.array([center + along * sx * length / 2 + across * sy * width / 2
                     for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1))])


def _jagged_polygon(rng: np.random.Generator, center: np.ndarray, radius: float) -> np.ndarray:
    """Star-like irregular polygon [K, 2] around center with radii in [0.5, 1] * radius."""
    count = int(rng.integers(10, 17))
    angles = np.sort(rng.uniform(0, 2 * np.pi, count))
    radii = radius * rng.uniform(0.5, 1.0, count) * np.where(np.arange(count) % 2 == 0, 1.0, 0.8)
    aspect = rng.uniform(0.6, 1.0)
    return center + np.stack([radii * np.cos(angles), aspect * radii * np.sin(angles)], axis=1)


def _paint_scratch(rng: np.random.Generator, image: np.ndarray, mask: np.ndarray, center: np.ndarray,
                   angle: float, length: float, width: float) -> None:
    """Thin bright or dark strokes along the band; the band itself is slightly abraded."""
    layer = image.copy()
    layer[mask] = layer[mask] * 0.8 + 0.2 * 170.0
    bright = rng.random() < 0.7
    thickness = 1 if width < 9 else 2
    along = np.array([np.cos(angle), np.sin(angle)])
    across = np.array([-along[1], along[0]])
    for _ in range(int(rng.integers(3, 8))):
        offset = rng.uniform(-0.4, 0.4) * width
        start = center + along * rng.uniform(-0.5, -0.2) * length + across * offset
        end = center + along * rng.uniform(0.2, 0.5) * length + across * (offset + rng.uniform(-0.2, 0.2) * width)
        colour = rng.uniform(215, 255) if bright else rng.uniform(10, 40)
        cv2.line(layer, tuple(int(v) for v in np.round(start)), tuple(int(v) for v in np.round(end)),
                 (colour, colour, colour), thickness, cv2.LINE_AA)
    image[mask] = layer[mask]


def _paint_dent(rng: np.random.Generator, image: np.ndarray, mask: np.ndarray, center: np.ndarray,
                axes: tuple[float, float], angle: float) -> None:
    """Shaded concave ellipse: one side darker, the other lighter, a darker rim."""
    rows, cols = np.nonzero(mask)
    offset = np.stack([cols - center[0], rows - center[1]], axis=1)
    rotation = np.array([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]])
    local = offset @ rotation.T / np.array(axes)
    rho2 = np.clip((local ** 2).sum(axis=1), 0.0, 1.0)
    light = rng.uniform(0, 2 * np.pi)
    directional = (local[:, 0] * np.cos(light) + local[:, 1] * np.sin(light)) * np.sqrt(1.0 - rho2)
    strength = rng.uniform(0.45, 0.7)
    factor = 1.0 + strength * directional - 0.2 * (1.0 - rho2) - 0.25 * (rho2 > 0.8)
    pixels = image[rows, cols] * factor[:, None] + 45.0 * strength * directional[:, None]
    image[rows, cols] = np.clip(pixels, 0, 255)


def _paint_break(rng: np.random.Generator, image: np.ndarray, mask: np.ndarray, surface: np.ndarray,
                 center: np.ndarray, radius: float) -> None:
    """Dark broken region with light shards, and dark crack lines radiating out over the surface."""
    rows, cols = np.nonzero(mask)
    base = rng.uniform(15, 45)
    image[rows, cols] = np.clip(base + rng.normal(0.0, 12.0, (rows.size, 1)), 0, 255)
    layer = image.copy()
    for _ in range(int(rng.integers(2, 5))):
        shard_center = center + rng.uniform(-0.5, 0.5, 2) * radius
        shard = shard_center + rng.uniform(-0.25, 0.25, (3, 2)) * radius
        shade = rng.uniform(120, 190)
        cv2.fillPoly(layer, [np.round(shard).astype(np.int32)], (shade, shade, shade), cv2.LINE_AA)
    image[mask] = layer[mask]
    cracks = image.copy()
    thickness = 1 if radius < 25 else 2
    for _ in range(int(rng.integers(4, 8))):
        direction = rng.uniform(0, 2 * np.pi)
        point = center.copy()
        for step in range(3):
            direction += rng.uniform(-0.5, 0.5)
            reach = radius * rng.uniform(0.35, 0.45)
            next_point = point + reach * np.array([np.cos(direction), np.sin(direction)])
            cv2.line(cracks, tuple(int(v) for v in np.round(point)), tuple(int(v) for v in np.round(next_point)),
                     (8.0, 8.0, 8.0), thickness, cv2.LINE_AA)
            point = next_point
    image[surface] = cracks[surface]


def _choose_host(rng: np.random.Generator, car: PaintedCar, min_area: int) -> int | None:
    """Index (1-based) of the visible component a damage is centred on, or None when nothing is big enough."""
    annotated, unannotated = [], []
    for index, component in enumerate(car.components, start=1):
        if not component.labelled:
            continue
        if component.name in PART_NAMES:
            annotated.append(index)
        elif component.name in UNANNOTATED_HOSTS:
            unannotated.append(index)
    visible = set(np.unique(car.label_map).tolist())
    areas = {index: int((car.label_map == index).sum()) for index in annotated + unannotated if index in visible}
    annotated = [index for index in annotated if areas.get(index, 0) >= min_area]
    unannotated = [index for index in unannotated if areas.get(index, 0) >= min_area]
    if unannotated and (not annotated or rng.random() < UNANNOTATED_HOST_PROBABILITY):
        return int(unannotated[rng.integers(len(unannotated))])
    if annotated:
        return int(annotated[rng.integers(len(annotated))])
    return None


def add_damages(rng: np.random.Generator, image: np.ndarray, car: PaintedCar, min_area: int,
                accept: Callable[[np.ndarray], object | None]) -> list[Damage]:
    """Place 1-4 non-overlapping damages on the car and paint them onto image [H, W, 3] float32 in place.

    accept(mask) turns a candidate mask into an annotation record or returns None to reject it (too small once
    encoded). Returns the accepted damages in placement order.
    """
    damageable_ids = [index for index, component in enumerate(car.components, start=1)
                      if component.labelled and component.name in DAMAGEABLE_NAMES]
    surface = np.isin(car.label_map, damageable_ids)
    occupied = np.zeros_like(surface)
    height, width = surface.shape
    scale = car.placement.scale_px
    wanted = 1 + int(rng.choice(len(DAMAGE_COUNT_PROBABILITIES), p=DAMAGE_COUNT_PROBABILITIES))
    damages: list[Damage] = []
    for _ in range(wanted * PLACEMENT_ATTEMPTS):
        if len(damages) == wanted:
            break
        host = _choose_host(rng, car, min_area)
        if host is None:
            break
        host_mask = car.label_map == host
        host_name = car.components[host - 1].name
        rows, cols = np.nonzero(host_mask)
        pick = int(rng.integers(rows.size))
        center = np.array([cols[pick], rows[pick]], dtype=np.float64)
        size = min(1.0, 1.5 * np.sqrt(rows.size) / (0.12 * scale))
        probabilities = SEVERITY_PROBABILITIES.get(host_name, SEVERITY_PROBABILITIES["default"])
        severity = SEVERITIES[int(rng.choice(3, p=probabilities))]
        angle = rng.uniform(0, np.pi)
        if severity == "minor":
            length = rng.uniform(0.1, 0.25) * scale * size
            band_width = max(3.0, rng.uniform(0.02, 0.035) * scale * size)
            shape = _band_polygon(center, angle, length, band_width)
        elif severity == "moderate":
            major = rng.uniform(0.04, 0.09) * scale * size
            axes = (major, major * rng.uniform(0.5, 1.0))
            shape = ellipse_polygon(tuple(center), axes, np.rad2deg(angle), count=40)
        else:
            radius = rng.uniform(0.045, 0.1) * scale * size
            shape = _jagged_polygon(rng, center, radius)
        mask = rasterize(shape, height, width) & surface
        if (mask & occupied).any() or mask.sum() < min_area:
            continue
        record = accept(mask)
        if record is None:
            continue
        if severity == "minor":
            _paint_scratch(rng, image, mask, center, angle, length, band_width)
        elif severity == "moderate":
            _paint_dent(rng, image, mask, center, axes, angle)
        else:
            _paint_break(rng, image, mask, surface, center, radius)
        occupied |= cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        damages.append(Damage(severity, mask, record))
    return damages

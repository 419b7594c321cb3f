"""One synthetic sample end to end: scene, car, damages, lighting, JPEG files and its annotation records."""
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from src.tools.synthetic.backdrop import add_shadow, apply_lighting, make_background
from src.tools.synthetic.car_layouts import PART_NAMES, VIEWS, build_layout, sample_style
from src.tools.synthetic.car_renderer import paint_car, sample_placement
from src.tools.synthetic.claims import NOISE_SIGMA, main_part, part_dice, price
from src.tools.synthetic.coco_writer import encode_mask
from src.tools.synthetic.damage_renderer import add_damages
from src.tools.synthetic.geometry import apply_affine

VIEW_PROBABILITIES = (0.5, 0.3, 0.2)
JPEG_QUALITY = 92
MIN_AREA_FRACTION = 2e-4
MIN_AREA_PX = 12
IMAGE_STREAM, PRICE_STREAM = 0, 1


@dataclass
class SampleTask:
    """What to render: global index (fixes the random stream), image id, file name, subset, the dataset seed,
    image size and the dataset root the JPEG goes to (under parts/<subset>/data and damage/<subset>/data)."""

    index: int
    image_id: int
    file_name: str
    subset: str
    seed: int
    width: int
    height: int
    root: str


@dataclass
class InstanceRecord:
    """One annotation without ids: category name, COCO polygons, bbox [x, y, w, h] and area in pixels."""

    category: str
    polygons: list[list[float]]
    bbox: list[float]
    area: int


@dataclass
class ClaimRecord:
    """Claim features of one damage: dice per part, unknown flag, area fraction of the image and price."""

    dice: dict[str, float]
    unknown: int
    area_fraction: float
    price: int


@dataclass
class SampleResult:
    """Annotation records of one rendered image; claims[i] belongs to damages[i]."""

    task: SampleTask
    view: str
    parts: list[InstanceRecord] = field(default_factory=list)
    damages: list[InstanceRecord] = field(default_factory=list)
    claims: list[ClaimRecord] = field(default_factory=list)


def sample_rng(seed: int, index: int, stream: int) -> np.random.Generator:
    """Independent random stream for (dataset seed, image index, stream), whatever process renders it."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index, stream)))


def min_instance_area(height: int, width: int) -> int:
    """Smallest decoded mask area (pixels) kept as an instance for an image of this size."""
    return max(MIN_AREA_PX, int(round(MIN_AREA_FRACTION * height * width)))


def render_sample(task: SampleTask) -> SampleResult:
    """Render image task.index, write its JPEG for both tasks and return its part, damage and claim records."""
    rng = sample_rng(task.seed, task.index, IMAGE_STREAM)
    height, width = task.height, task.width
    min_area = min_instance_area(height, width)
    view = VIEWS[int(rng.choice(len(VIEWS), p=VIEW_PROBABILITIES))]
    style = sample_style(rng)
    layout = build_layout(view, rng, style)
    placement = sample_placement(rng, layout, height, width)
    image = make_background(rng, height, width, placement.ground_y)
    ends = apply_affine(np.array([[0.0, 0.0], [1.0, 0.0]]), placement.matrix)
    add_shadow(image, float(ends[:, 0].min()), float(ends[:, 0].max()), placement.ground_y,
               0.04 * placement.scale_px, rng.uniform(0.35, 0.6))
    car = paint_car(image, layout, placement)

    result = SampleResult(task, view)
    part_masks: dict[str, list[np.ndarray]] = {}
    for index, component in enumerate(car.components, start=1):
        if not component.labelled or component.name not in PART_NAMES:
            continue
        encoded = encode_mask(car.label_map == index, min_area)
        if encoded is None:
            continue
        part_masks.setdefault(component.name, []).append(encoded.decoded)
        result.parts.append(InstanceRecord(component.name, encoded.polygons, encoded.bbox, encoded.area))

    damages = add_damages(rng, image, car, min_area, lambda mask: encode_mask(mask, min_area))
    pixel_count = height * width
    price_rng = sample_rng(task.seed, task.index, PRICE_STREAM)
    for damage in damages:
        encoded = damage.record
        result.damages.append(InstanceRecord(damage.severity, encoded.polygons, encoded.bbox, encoded.area))
        dice_by_part = part_dice(encoded.decoded, part_masks)
        part = main_part(dice_by_part)
        area_fraction = encoded.area / pixel_count
        noise = float(price_rng.normal(0.0, NOISE_SIGMA))
        result.claims.append(ClaimRecord(dice_by_part, int(part == "unknown"), area_fraction,
                                         price(damage.severity, part, area_fraction, noise)))

    final = apply_lighting(rng, image)
    ok, jpeg = cv2.imencode(".jpg", final, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError(f"{task.file_name}: JPEG encoding failed")
    for dataset in ("parts", "damage"):
        (Path(task.root) / dataset / task.subset / "data" / task.file_name).write_bytes(jpeg.tobytes())
    return result

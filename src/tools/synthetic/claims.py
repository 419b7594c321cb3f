"""Claims table of the synthetic dataset: dice features of each damage against the part masks, and its price.

Price rule (one row per damage; area_fraction = damage pixels / image pixels; main part = the part with the
largest dice, ties broken in the order of PART_NAMES; 'unknown' when the damage overlaps no annotated part):

    raw   = BASE_PRICE[severity] * PART_FACTOR[main part] * (1 + AREA_GAIN * sqrt(area_fraction))
    raw   = HEADLAMP_REPLACEMENT_PRICE            if severity == 'severe' and main part == 'headlamp'
    price = max(10, 10 * floor(raw * exp(noise) / 10 + 0.5)),  noise ~ Normal(0, NOISE_SIGMA)
"""
import math

import numpy as np

from src.tools.synthetic.car_layouts import PART_NAMES

BASE_PRICE = {"minor": 150.0, "moderate": 400.0, "severe": 900.0}
PART_FACTOR = {"front_bumper": 1.0, "rear_bumper": 0.9, "headlamp": 1.4, "door": 1.3, "hood": 1.2, "unknown": 1.1}
AREA_GAIN = 6.0
HEADLAMP_REPLACEMENT_PRICE = 1500.0
NOISE_SIGMA = 0.1
CLAIM_COLUMNS = ("image_id", "file_name", "subset", "annotation_id") + tuple(f"{name}_dice" for name in PART_NAMES) \
    + ("unknown", "minor", "moderate", "severe", "damage_area", "price")


def dice(first: np.ndarray, second: np.ndarray) -> float:
    """Dice coefficient 2|A∩B| / (|A| + |B|) of two bool masks of equal shape (0 when both are empty)."""
    total = int(first.sum()) + int(second.sum())
    if total == 0:
        return 0.0
    return 2.0 * int(np.logical_and(first, second).sum()) / total


def part_dice(damage_mask: np.ndarray, part_masks: dict[str, list[np.ndarray]]) -> dict[str, float]:
    """For each name in PART_NAMES, the largest dice of damage_mask [H, W] bool with that part's instance masks
    (0 when the image has no instance of the part)."""
    return {name: max((dice(damage_mask, mask) for mask in part_masks.get(name, [])), default=0.0)
            for name in PART_NAMES}


def main_part(dice_by_part: dict[str, float]) -> str:
    """Part with the largest dice (first in PART_NAMES on ties), or 'unknown' when every dice is 0."""
    best = max(PART_NAMES, key=lambda name: (dice_by_part[name], -PART_NAMES.index(name)))
    return best if dice_by_part[best] > 0 else "unknown"


def price(severity: str, part: str, area_fraction: float, noise: float) -> int:
    """Repair price of one damage by the rule in this module's docstring; noise is the Normal(0, NOISE_SIGMA) draw."""
    if severity == "severe" and part == "headlamp":
        raw = HEADLAMP_REPLACEMENT_PRICE
    else:
        raw = BASE_PRICE[severity] * PART_FACTOR[part] * (1.0 + AREA_GAIN * math.sqrt(area_fraction))
    return max(10, 10 * int(math.floor(raw * math.exp(noise) / 10.0 + 0.5)))

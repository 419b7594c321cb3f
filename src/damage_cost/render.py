"""Picture of an estimate: damages tinted by severity with their price, part outlines with names, the image total.

Minor damages are yellow, moderate orange, severe red (legend bottom-left); parts are outlined in cyan and named; each
damage carries a ``severity price`` label in dark text on a light box, kept inside the image and off the damages and
the other labels where a free spot is near; the top-left panel shows the total and, when a damage is severe,
INSPECTION NEEDED. Images whose long side is under ``MIN_SIDE`` pixels are enlarged by a whole factor first so the
text stays legible.
"""
import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

SEVERITY_COLORS = {"minor": (0, 215, 255), "moderate": (0, 140, 255), "severe": (0, 0, 230)}  # BGR
SEVERITY_LABELS = {"minor": "minor (scratch)", "moderate": "moderate (dent)", "severe": "severe (broken)"}
PART_COLOR = (255, 255, 0)
DARK = (25, 25, 25)
LIGHT = (245, 245, 245)
ALERT = (0, 0, 200)
FONT = cv2.FONT_HERSHEY_SIMPLEX
MIN_SIDE = 512
TINT = 0.45
MAX_SHIFT = 4  # a label moves at most this many label heights away from its spot to find a free one

Color = Tuple[int, int, int]
Rect = Tuple[int, int, int, int]


def _overlaps(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


class _Painter:
    """Label boxes on a canvas: inside it, and off the earlier labels and the reserved areas when a spot near the
    wanted one is free (see :meth:`place`)."""

    def __init__(self, canvas: np.ndarray) -> None:
        self.canvas = canvas
        self.height, self.width = canvas.shape[:2]
        self.scale = max(0.5, min(self.height, self.width) / 700.0)
        self.labels: List[Rect] = []
        self.reserved: List[Rect] = []

    def _font(self, size: float) -> Tuple[float, int, int]:
        """(font scale, thickness, padding) for a label ``size`` times the base size."""
        scale = self.scale * size
        return scale, 1 if scale < 0.9 else 2, max(3, int(round(5 * scale)))

    def size(self, text: str, size: float = 1.0) -> Tuple[int, int]:
        """(width, height) of ``text``'s box, padding included."""
        scale, thickness, pad = self._font(size)
        (width, height), baseline = cv2.getTextSize(text, FONT, scale, thickness)
        return width + 2 * pad, height + baseline + 2 * pad

    def reserve(self, rect: Rect) -> None:
        """Keep labels off ``rect`` (x1, y1, x2, y2) where they can."""
        self.reserved.append(rect)

    def place(self, width: int, height: int, x: int, y: int) -> Rect:
        """The box of a label near its top-left (x, y): inside the canvas, moved (nearest first, up to ``MAX_SHIFT``
        label heights down or up and one label width sideways) off the other labels and the reserved areas, else off
        the other labels only; (x, y) itself when nothing is free."""
        x = min(max(x, 0), max(self.width - width, 0))
        y = min(max(y, 0), max(self.height - height, 0))
        moves = sorted(((dx, dy) for dx in (0, -width // 2, width // 2, -width, width)
                        for dy in range(-MAX_SHIFT * height, MAX_SHIFT * height + 1, height)),
                       key=lambda move: (abs(move[0]) + abs(move[1]), move[1] < 0))
        for avoid in (self.labels + self.reserved, self.labels):
            for dx, dy in moves:
                candidate = (x + dx, y + dy, x + dx + width, y + dy + height)
                if candidate[0] >= 0 and candidate[1] >= 0 and candidate[2] <= self.width and \
                        candidate[3] <= self.height and not any(_overlaps(candidate, other) for other in avoid):
                    return candidate
        return x, y, x + width, y + height

    def spot(self, text: str, x: int, y: int, size: float = 1.0, fixed: bool = False) -> Rect:
        """Take the box of a label at (x, y) (``fixed``) or near it (see :meth:`place`)."""
        width, height = self.size(text, size)
        rect = (x, y, x + width, y + height) if fixed else self.place(width, height, x, y)
        self.labels.append(rect)
        return rect

    def draw(self, rect: Rect, text: str, text_color: Color, box_color: Color, border: Optional[Color] = None,
             size: float = 1.0) -> Rect:
        """Draw ``text`` on a filled box (with a ``border`` when given) at ``rect``; returns it."""
        scale, thickness, pad = self._font(size)
        cv2.rectangle(self.canvas, rect[:2], (rect[2] - 1, rect[3] - 1), box_color, cv2.FILLED)
        if border is not None:
            cv2.rectangle(self.canvas, rect[:2], (rect[2] - 1, rect[3] - 1), border, max(2, thickness))
        (_, text_height), _ = cv2.getTextSize(text, FONT, scale, thickness)
        cv2.putText(self.canvas, text, (rect[0] + pad, rect[1] + pad + text_height), FONT, scale, text_color,
                    thickness, cv2.LINE_AA)
        return rect

    def label(self, text: str, x: int, y: int, text_color: Color, box_color: Color, border: Optional[Color] = None,
              size: float = 1.0, fixed: bool = False) -> Rect:
        """:meth:`spot` then :meth:`draw`."""
        return self.draw(self.spot(text, x, y, size, fixed), text, text_color, box_color, border, size)


def _leader(canvas: np.ndarray, rect: Rect, anchor: Tuple[int, int], color: Color) -> None:
    """A line in ``color`` (dark halo) from the centre of a label box to ``anchor``."""
    start = ((rect[0] + rect[2]) // 2, (rect[1] + rect[3]) // 2)
    cv2.line(canvas, start, anchor, DARK, 4, cv2.LINE_AA)
    cv2.line(canvas, start, anchor, color, 2, cv2.LINE_AA)


def _outline(canvas: np.ndarray, mask: np.ndarray, color: Color, width: int) -> None:
    """Contour of a binary mask, in ``color`` over a dark halo."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(canvas, contours, -1, DARK, width + 2, cv2.LINE_AA)
    cv2.drawContours(canvas, contours, -1, color, width, cv2.LINE_AA)


def render_estimate(image_bgr: np.ndarray, result: Dict[str, object],
                    severities: Sequence[str] = tuple(SEVERITY_COLORS)) -> np.ndarray:
    """BGR picture ``[H*k, W*k, 3]`` uint8 of one result of :meth:`DamageCostEstimator.estimate` over its image,
    ``k`` = 1 or the whole factor bringing the long side to ``MIN_SIDE``."""
    factor = max(1, math.ceil(MIN_SIDE / max(image_bgr.shape[:2])))
    size = (image_bgr.shape[1] * factor, image_bgr.shape[0] * factor)

    def grow(mask: np.ndarray) -> np.ndarray:
        return cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) if factor > 1 else mask

    def scaled_box(box: Sequence[float]) -> Rect:
        return tuple(int(round(value * factor)) for value in box)

    canvas = cv2.resize(image_bgr, size, interpolation=cv2.INTER_LINEAR) if factor > 1 else image_bgr.copy()
    damage_masks = [grow(mask) for mask in result["masks"]["damages"]]
    part_masks = [grow(mask) for mask in result["masks"]["parts"]]
    painter = _Painter(canvas)
    line = max(1, int(round(2 * painter.scale)))

    blended = canvas.astype(np.float32)
    for damage, mask in zip(result["damages"], damage_masks):
        inside = mask.astype(bool)
        blended[inside] = (1 - TINT) * blended[inside] + TINT * np.array(SEVERITY_COLORS[damage["severity"]])
    canvas[:] = blended.clip(0, 255).astype(np.uint8)
    for mask in part_masks:
        _outline(canvas, mask, PART_COLOR, line)
    for damage, mask in zip(result["damages"], damage_masks):
        _outline(canvas, mask, SEVERITY_COLORS[damage["severity"]], line)

    # corner panel and legend first (fixed places), then the damages kept clear, then prices and part names
    panel_y = 0
    for text, alert in [(f"Total: {result['total']:,}", False)] + \
            ([("INSPECTION NEEDED", True)] if result["inspection_needed"] else []):
        panel_y = painter.label(text, 0, panel_y, LIGHT if alert else DARK, ALERT if alert else LIGHT, size=1.3,
                                fixed=True)[3]
    legend = [severity for severity in severities if severity in SEVERITY_COLORS]
    legend_height = painter.size("Ag", 0.85)[1]
    for index, severity in enumerate(legend):
        painter.label(SEVERITY_LABELS[severity], 0, painter.height - (len(legend) - index) * legend_height, DARK,
                      LIGHT, border=SEVERITY_COLORS[severity], size=0.85, fixed=True)
    for damage in result["damages"]:
        painter.reserve(scaled_box(damage["box"]))
    prices = []  # placed first, leader lines (for labels that had to move) drawn under all of them
    for damage in result["damages"]:
        x1, y1, x2, y2 = scaled_box(damage["box"])
        text = f"{damage['severity']} {damage['price']:,}"
        y = y1 - painter.size(text)[1] if y1 >= painter.size(text)[1] else y2
        rect = painter.spot(text, x1, y)
        if abs(rect[1] - y) > rect[3] - rect[1] or abs(rect[0] - x1) > (rect[2] - rect[0]) // 2:  # moved away
            _leader(canvas, rect, ((x1 + x2) // 2, (y1 + y2) // 2), SEVERITY_COLORS[damage["severity"]])
        prices.append((rect, text, SEVERITY_COLORS[damage["severity"]]))
    for rect, text, color in prices:
        painter.draw(rect, text, DARK, LIGHT, border=color)
    for part, mask in zip(result["parts"], part_masks):  # names centred on their part
        ys, xs = np.nonzero(mask)
        x1, y1, x2, y2 = scaled_box(part["box"])
        center_x, center_y = (xs.mean(), ys.mean()) if xs.size else ((x1 + x2) / 2, (y1 + y2) / 2)
        width, height = painter.size(part["name"], 0.85)
        painter.label(part["name"], int(center_x - width / 2), int(center_y - height / 2), PART_COLOR, DARK,
                      size=0.85)
    return canvas


def save_rendering(canvas: np.ndarray, path: Path) -> Path:
    """Write a PNG; raises OSError naming the file when OpenCV cannot."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), canvas):
        raise OSError(f"{path}: could not write the PNG")
    return path

"""Polygon helpers shared by the synthetic car renderer: rounding, affine placement and rasterisation."""
import cv2
import numpy as np

SUBPIXEL_BITS = 4


def rounded_polygon(points: np.ndarray, radius: float, steps: int = 5) -> np.ndarray:
    """Round every corner of a closed polygon.

    points: [N, 2] float vertices. radius: corner radius in the same units (clamped to half of each edge).
    Returns [N * steps, 2] float vertices; each corner becomes a quadratic Bezier arc.
    """
    points = np.asarray(points, dtype=np.float64)
    count = len(points)
    weights = np.linspace(0.0, 1.0, steps)[:, None]
    rounded = []
    for index in range(count):
        vertex = points[index]
        previous_point = points[index - 1]
        next_point = points[(index + 1) % count]
        to_previous = previous_point - vertex
        to_next = next_point - vertex
        start = vertex + to_previous * min(0.5, radius / max(np.linalg.norm(to_previous), 1e-9))
        end = vertex + to_next * min(0.5, radius / max(np.linalg.norm(to_next), 1e-9))
        arc = (1 - weights) ** 2 * start + 2 * (1 - weights) * weights * vertex + weights ** 2 * end
        rounded.append(arc)
    return np.concatenate(rounded, axis=0)


def rectangle(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """Axis-aligned rectangle [4, 2] from its corners (x0, y0) and (x1, y1)."""
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


def ellipse_polygon(center: tuple[float, float], axes: tuple[float, float], angle_deg: float = 0.0,
                    count: int = 32) -> np.ndarray:
    """Ellipse outline [count, 2] with semi-axes `axes` rotated by `angle_deg` around `center`."""
    theta = np.linspace(0.0, 2 * np.pi, count, endpoint=False)
    local = np.stack([axes[0] * np.cos(theta), axes[1] * np.sin(theta)], axis=1)
    angle = np.deg2rad(angle_deg)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return local @ rotation.T + np.asarray(center, dtype=np.float64)


def mirror_x(points: np.ndarray, axis_x: float = 0.5) -> np.ndarray:
    """Mirror [N, 2] points about the vertical line x = axis_x."""
    mirrored = np.array(points, dtype=np.float64)
    mirrored[:, 0] = 2 * axis_x - mirrored[:, 0]
    return mirrored


def apply_affine(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Map [N, 2] points with a [2, 3] affine matrix; returns [N, 2] float."""
    points = np.asarray(points, dtype=np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def rasterize(points: np.ndarray, height: int, width: int) -> np.ndarray:
    """Fill a polygon given in image pixels ([N, 2] float x, y) into a [height, width] bool mask."""
    mask = np.zeros((height, width), dtype=np.uint8)
    fixed_point = np.round(np.asarray(points) * (1 << SUBPIXEL_BITS)).astype(np.int32)
    cv2.fillPoly(mask, [fixed_point], 1, lineType=cv2.LINE_8, shift=SUBPIXEL_BITS)
    return mask.astype(bool)

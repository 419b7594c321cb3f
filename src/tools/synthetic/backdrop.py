"""Backgrounds (sky/wall above a ground plane), the car's ground shadow and the final lighting and sensor noise."""
import cv2
import numpy as np


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    """Smooth random field [height, width] float32 in about [-1, 1], with `cells` blobs across the width."""
    grid = rng.uniform(-1.0, 1.0, (max(2, cells * height // width), max(2, cells))).astype(np.float32)
    return cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)


def _random_colour(rng: np.random.Generator, low: float, high: float) -> np.ndarray:
    """Random BGR colour with channels in [low, high], mildly correlated (muted)."""
    grey = rng.uniform(low, high)
    return np.clip(grey + rng.normal(0.0, 25.0, 3), 0, 255)


def _gradient(height: int, width: int, top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """Vertical colour gradient [height, width, 3] float32 from top to bottom colour."""
    weights = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    column = (1 - weights) * top.astype(np.float32) + weights * bottom.astype(np.float32)
    return np.broadcast_to(column, (height, width, 3)).copy()


def make_background(rng: np.random.Generator, height: int, width: int, ground_y: float) -> np.ndarray:
    """Background [height, width, 3] float32 BGR: a sky, wall or textured upper area, a horizon above ground_y
    and a ground plane (asphalt, grass or tiles) below it."""
    horizon = int(np.clip(ground_y - rng.uniform(0.08, 0.3) * height, 0.15 * height, 0.85 * height))
    style = rng.integers(4)
    if style == 0:
        upper = _gradient(height, width, _random_colour(rng, 150, 240), _random_colour(rng, 100, 220))
    elif style == 1:
        upper = _gradient(height, width, _random_colour(rng, 60, 200), _random_colour(rng, 60, 200))
        upper += 30.0 * _smooth_noise(rng, height, width, int(rng.integers(3, 12)))[..., None]
    elif style == 2:
        upper = _gradient(height, width, _random_colour(rng, 80, 210), _random_colour(rng, 80, 210))
        period = int(rng.integers(max(4, width // 20), max(6, width // 5)))
        stripes = ((np.arange(width) // period) % 2).astype(np.float32) * rng.uniform(-35, 35)
        upper += stripes[None, :, None]
    else:
        upper = np.broadcast_to(_random_colour(rng, 90, 220).astype(np.float32), (height, width, 3)).copy()
        brick = int(rng.integers(max(4, width // 25), max(6, width // 8)))
        mortar = _random_colour(rng, 40, 230).astype(np.float32)
        upper[::brick] = mortar
        upper[:, ::brick * 2] = mortar
    ground_kind = rng.integers(3)
    ground_colour = (_random_colour(rng, 60, 140), np.array([60.0, rng.uniform(100, 150), 70.0]),
                     _random_colour(rng, 120, 200))[ground_kind]
    ground = _gradient(height, width, ground_colour * 0.85, ground_colour * 1.1)
    ground += rng.uniform(8, 20) * _smooth_noise(rng, height, width, int(rng.integers(20, 60)))[..., None]
    if ground_kind == 2:
        tile = int(rng.integers(max(4, height // 20), max(6, height // 8)))
        ground[::tile] *= 0.75
    image = upper
    image[horizon:] = ground[horizon:]
    line_colour = _random_colour(rng, 30, 220).astype(np.float32)
    line_width = max(1, height // 150)
    image[max(0, horizon - line_width):horizon + line_width] = line_colour
    return np.clip(image, 0, 255).astype(np.float32)


def add_shadow(image: np.ndarray, left_x: float, right_x: float, ground_y: float, depth_px: float,
               strength: float) -> None:
    """Darken image [H, W, 3] float32 in place with a soft ellipse between left_x and right_x on row ground_y."""
    height, width = image.shape[:2]
    shade = np.zeros((height, width), dtype=np.float32)
    center = (int(round((left_x + right_x) / 2)), int(round(ground_y)))
    axes = (max(1, int(round(abs(right_x - left_x) / 2 * 1.05))), max(1, int(round(depth_px))))
    cv2.ellipse(shade, center, axes, 0.0, 0.0, 360.0, 1.0, -1)
    blur = max(3, int(depth_px) | 1)
    shade = cv2.GaussianBlur(shade, (blur, blur), 0)
    image *= (1.0 - strength * shade)[..., None]


def apply_lighting(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Directional illumination, brightness/contrast change, optional blur and sensor noise; returns uint8 BGR."""
    height, width = image.shape[:2]
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    ramp = (np.cos(angle) * (xs / width - 0.5) + np.sin(angle) * (ys / height - 0.5)) * 2
    illumination = 1.0 + rng.uniform(0.0, 0.3) * ramp
    lit = image * illumination[..., None]
    contrast = rng.uniform(0.75, 1.2)
    brightness = rng.uniform(-25, 25)
    lit = (lit - 128.0) * contrast + 128.0 + brightness
    if rng.random() < 0.3:
        lit = cv2.GaussianBlur(lit, (0, 0), rng.uniform(0.5, 0.9))
    lit += rng.normal(0.0, rng.uniform(1.0, 5.0), lit.shape).astype(np.float32)
    return np.clip(np.round(lit), 0, 255).astype(np.uint8)

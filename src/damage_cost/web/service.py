"""What the web app does with an upload: decode the photos in memory, estimate them one at a time, build the report.

Nothing is written to disk: the uploaded bytes are decoded with OpenCV (EXIF orientation applied, as ``cv2.imread``
does), the annotated pictures are PNG-encoded in memory. The estimator (MindSpore graphs, not safe to call from two
threads at once) is guarded by a lock, so concurrent requests are served one photo at a time and each gets exactly
what it would get alone.
"""
import base64
import io
import re
import threading
from dataclasses import asdict, dataclass
from typing import Dict, Optional, Sequence, Tuple

import cv2
import numpy as np
from PIL import Image

from src.damage_cost.pipeline import DamageCostEstimator
from src.damage_cost.render import render_estimate
from src.damage_cost.report import build_report, damage_rows

UPLOAD_INPUT = "upload"
NOT_DECODABLE = "not decodable as an image (expected a JPEG, PNG or BMP photo)"
EMPTY_FILE = "empty file"
MAX_NAME_LENGTH = 120


@dataclass(frozen=True)
class UploadLimits:
    """Limits on one request: files per request, bytes per request (answered 413 above it), pixels per image."""

    max_files: int = 16
    max_request_mb: float = 64.0
    max_pixels: int = 40_000_000

    @property
    def max_request_bytes(self) -> int:
        return int(self.max_request_mb * 1024 * 1024)


@dataclass(frozen=True)
class Upload:
    """One uploaded file: the name the client gave it (display only, never a path) and its bytes."""

    name: str
    data: bytes


def display_name(client_name: Optional[str], index: int) -> str:
    """A name to show for an upload: the client's file name without any folder part, control characters or more than
    ``MAX_NAME_LENGTH`` characters; ``photo_<index + 1>`` when nothing is left."""
    name = re.split(r"[\\/]", client_name or "")[-1]
    name = "".join(character for character in name if character.isprintable()).strip()[:MAX_NAME_LENGTH]
    return name or f"photo_{index + 1}"


def decode_image(data: bytes, max_pixels: int) -> Tuple[Optional[np.ndarray], str]:
    """(BGR uint8 ``[H,W,3]`` image, '') of an image file's bytes, or (None, why not) when they are empty, not an
    image, or an image of more than ``max_pixels`` pixels (read from the header, before decoding)."""
    if not data:
        return None, EMPTY_FILE
    try:
        with Image.open(io.BytesIO(data)) as header:
            width, height = header.size
    except Exception:  # Pillow raises many types for files it does not know; OpenCV decides below
        width = height = 0
    if width * height > max_pixels:
        return None, f"too large: {width}x{height} pixels (at most {max_pixels:,} per image)"
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        return None, NOT_DECODABLE
    if image.shape[0] * image.shape[1] > max_pixels:
        return None, f"too large: {image.shape[1]}x{image.shape[0]} pixels (at most {max_pixels:,} per image)"
    return image, ""


def png_data_url(image_bgr: np.ndarray) -> str:
    """``data:image/png;base64,...`` of a BGR image."""
    ok, encoded = cv2.imencode(".png", image_bgr)
    if not ok:
        raise ValueError("could not encode the annotated picture as PNG")
    return "data:image/png;base64," + base64.b64encode(encoded.tobytes()).decode("ascii")


class EstimateService:
    """Turns uploads into the estimator's report (the ``report.json`` of :mod:`src.damage_cost.report`)."""

    def __init__(self, estimator: DamageCostEstimator, models: Dict[str, object],
                 limits: UploadLimits = UploadLimits()) -> None:
        self.estimator = estimator
        self.models = models
        self.limits = limits
        self._lock = threading.Lock()

    def estimate(self, uploads: Sequence[Upload], pictures: bool = False) -> Dict[str, object]:
        """The report of the decodable uploads, in upload order; the others are in its ``images_skipped`` as
        ``{"path": display name, "reason"}``. With ``pictures`` the report also has ``pictures`` (a PNG data URL of
        the annotated photo per entry of ``images``) and ``csv`` (the report.csv text).

        Raises ValueError when no upload is a decodable image (the report's skipped list is in its ``args[1]``)."""
        results, rendered, skipped = [], [], []
        for index, upload in enumerate(uploads):
            name = display_name(upload.name, index)
            image, reason = decode_image(upload.data, self.limits.max_pixels)
            if image is None:
                skipped.append({"path": name, "reason": reason})
                continue
            with self._lock:
                result = self.estimator.estimate(image, name)
            results.append(result)
            if pictures:
                rendered.append(png_data_url(render_estimate(image, result, self.estimator.severities)))
        if not results:
            raise ValueError(f"none of the {len(uploads)} file(s) is a decodable image", skipped)
        report = build_report(UPLOAD_INPUT, results, self.models, skipped)
        if pictures:
            report["pictures"] = rendered
            report["csv"] = damage_rows(results, self.estimator.part_names,
                                        self.estimator.severities).to_csv(index=False)
        return report

    def health(self) -> Dict[str, object]:
        """``{"status": "ok", "models", "limits"}``."""
        return {"status": "ok", "models": self.models, "limits": asdict(self.limits)}


"""Start-up check of a subset's image files, without decoding them: found, not empty, a JPEG, PNG or BMP whose content
matches its extension, not truncated, and of the size the annotation file gives (as stored, or as displayed after its
EXIF orientation). All bad files are reported at once, before training starts.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional, Sequence

from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

FORMATS = {"JPEG": (".jpg", ".jpeg"), "PNG": (".png",), "BMP": (".bmp",)}
MAGIC = ((b"\xff\xd8\xff", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"), (b"BM", "BMP"))
JPEG_END = b"\xff\xd9"
PNG_END = b"IEND"
TAIL_BYTES = 4096
EXIF_ORIENTATION = 0x0112
TRANSPOSED_ORIENTATIONS = (5, 6, 7, 8)  # EXIF orientations that swap width and height
CHECK_THREADS = 8


def content_format(head: bytes) -> Optional[str]:
    """'JPEG', 'PNG' or 'BMP' from a file's first bytes, else None."""
    return next((name for magic, name in MAGIC if head.startswith(magic)), None)


def check_image_file(path: Path, height: Optional[int] = None, width: Optional[int] = None) -> Optional[str]:
    """Why an image file is unusable, or None when it looks whole and has the expected size (see the module
    docstring); ``height``/``width`` None skips the size test."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as stream:
            head = stream.read(16)
            stream.seek(max(size - TAIL_BYTES, 0))
            tail = stream.read()
    except OSError as error:
        return f"cannot be read ({error.strerror or error})"
    if size == 0:
        return "empty file (0 bytes)"
    kind = content_format(head)
    if kind is None:
        return "not a JPEG, PNG or BMP image"
    if Path(path).suffix.lower() not in FORMATS[kind]:
        return f"{kind} content in a '{Path(path).suffix}' file"
    if kind == "JPEG" and JPEG_END not in tail.rstrip(b"\x00"):
        return "truncated JPEG (no end-of-image marker)"
    if kind == "PNG" and PNG_END not in tail[-12:]:
        return "truncated PNG (no IEND chunk)"
    try:
        with Image.open(path) as image:
            stored = (image.height, image.width)
            orientation = image.getexif().get(EXIF_ORIENTATION, 1) if kind == "JPEG" else 1
    except (UnidentifiedImageError, OSError, ValueError) as error:
        return f"unreadable header ({error})"
    if height is None:
        return None
    displayed = stored[::-1] if orientation in TRANSPOSED_ORIENTATIONS else stored
    if (height, width) not in (stored, displayed):
        rotated = f", {displayed[0]}x{displayed[1]} as its EXIF orientation shows it" if displayed != stored else ""
        return f"is {stored[0]}x{stored[1]} (h x w{rotated}) but the annotation file says {height}x{width}"
    return None


def check_images(images: Sequence[tuple[Path, Optional[int], Optional[int]]], progress: bool = True,
                 threads: int = CHECK_THREADS) -> list[tuple[Path, str]]:
    """(path, reason) of every unusable file among (path, height, width) entries, in their order; checked by
    ``threads`` threads with a progress bar."""
    with ThreadPoolExecutor(max_workers=threads) as pool:
        reasons = list(tqdm(pool.map(lambda entry: check_image_file(*entry), images), total=len(images),
                            desc="checking images", unit="image", disable=not progress, leave=False))
    return [(entry[0], reason) for entry, reason in zip(images, reasons) if reason is not None]

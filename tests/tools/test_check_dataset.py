"""Tests of src/tools/check_dataset.py on deliberately broken datasets: each problem, its message and exit code."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pytest

from src.tools.check_dataset import box_iou, main
from tests.helpers.coco_fixtures import (PARTS_CLASSES, categories_of, polygon_annotation, rect_polygon,
                                         write_coco_dataset)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONFIG = str(PROJECT_ROOT / "configs" / "tiny_parts.yaml")


def _clean_data() -> dict:
    """Three 48x64 images, two rectangles each, every tiny_parts class listed (ids 1..5)."""
    images = [{"id": i, "file_name": f"{i}.jpg", "height": 48, "width": 64} for i in (1, 2, 3)]
    annotations = []
    for image in images:
        for x in (4, 30):
            annotations.append(polygon_annotation(len(annotations) + 1, image["id"], 1 + len(annotations) % 5,
                                                  [rect_polygon(x, 6, x + 20, 30)]))
    return {"images": images, "annotations": annotations, "categories": categories_of(PARTS_CLASSES[1:])}


def _write(root: Path, data: dict) -> Path:
    return write_coco_dataset(root, data["images"], data["annotations"], data["categories"])


def _rewrite_json(root: Path, data: dict) -> None:
    (root / "labels.json").write_text(json.dumps(data), encoding="utf-8")


def _run(root: Path, capsys, *extra: str) -> tuple[int, str]:
    code = main([CONFIG, str(root), "--no_progress", *extra])
    return code, capsys.readouterr().out


def test_clean_dataset_passes_without_warnings(tmp_path, capsys):
    code, out = _run(_write(tmp_path, _clean_data()), capsys)
    assert code == 0
    assert "OK: 0 error(s), 0 warning(s)" in out and "6 instances usable for training" in out


def test_exif_rotated_photos_annotated_either_way_pass(tmp_path, capsys):
    """As training reads them (src.data.read_image): displayed (EXIF applied) or stored, whichever is annotated."""
    from PIL import Image

    root = _write(tmp_path, _clean_data())
    for name, orientation in (("1.jpg", 6), ("2.jpg", 1)):
        exif = Image.Exif()
        exif[0x0112] = orientation  # 6: shown rotated 90 degrees, 64x48 (h x w) on screen
        Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(root / "data" / name, "JPEG", exif=exif.tobytes())
    code, out = _run(root, capsys)
    assert code == 0 and "image size mismatch" not in out, out


def _unknown_category(data: dict, root: Path) -> None:
    data["categories"].append({"id": 99, "name": "fender"})
    data["annotations"][0]["category_id"] = 99
    _rewrite_json(root, data)


def _absent_class(data: dict, root: Path) -> None:
    data["categories"] = [c for c in data["categories"] if c["name"] != "hood"]
    data["annotations"] = [a for a in data["annotations"] if a["category_id"] != 5]
    _rewrite_json(root, data)


def _image_without_annotations(data: dict, root: Path) -> None:
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] != 2]
    _rewrite_json(root, data)


def _empty_polygon(data: dict, root: Path) -> None:
    data["annotations"][0]["segmentation"] = []
    _rewrite_json(root, data)


def _short_polygon(data: dict, root: Path) -> None:
    data["annotations"][0]["segmentation"].append([1, 1, 5, 5])
    _rewrite_json(root, data)


def _polygon_outside(data: dict, root: Path) -> None:
    data["annotations"][1].update(polygon_annotation(2, 1, 2, [rect_polygon(50, 10, 80, 20)]))
    _rewrite_json(root, data)


def _box_disagrees(data: dict, root: Path) -> None:
    data["annotations"][0]["bbox"] = [4, 6, 40, 40]
    _rewrite_json(root, data)


def _missing_image(data: dict, root: Path) -> None:
    (root / "data" / "2.jpg").unlink()


def _corrupt_image(data: dict, root: Path) -> None:
    (root / "data" / "2.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")


def _resized_image(data: dict, root: Path) -> None:
    cv2.imwrite(str(root / "data" / "3.jpg"), np.zeros((64, 48, 3), np.uint8))


def _malformed_json(data: dict, root: Path) -> None:
    (root / "labels.json").write_text('{"images": [\n\n  {"id": 1,, }]}', encoding="utf-8")


def _unknown_image_id(data: dict, root: Path) -> None:
    data["annotations"][2]["image_id"] = 404
    _rewrite_json(root, data)


def _unknown_category_id(data: dict, root: Path) -> None:
    data["annotations"][2]["category_id"] = 404
    _rewrite_json(root, data)


def _unknown_segmentation(data: dict, root: Path) -> None:
    data["annotations"][2]["segmentation"] = {"polygon": [1, 2, 3]}
    _rewrite_json(root, data)


@pytest.mark.parametrize("breaker, code, messages", [
    (_unknown_category, 1, ["ERRORS (1)", "category not in coco_classes", "annotated categories ['fender']"]),
    (_absent_class, 0, ["class absent from the file", "['hood']"]),
    (_image_without_annotations, 0, ["image without valid annotations (1)", "2.jpg (id 2)"]),
    (_empty_polygon, 0, ["empty segmentation", "annotation id 1: no polygon; dropped"]),
    (_short_polygon, 0, ["polygon with < 3 points", "annotation id 1: 1 of 2 polygon(s) ignored"]),
    (_polygon_outside, 0, ["polygon outside the image", "x [50, 80]", "box outside the image"]),
    (_box_disagrees, 0, ["box disagrees with mask", "annotation id 1 (1.jpg)"]),
    (_missing_image, 1, ["missing image file", "data/2.jpg"]),
    (_corrupt_image, 1, ["corrupt image", "data/2.jpg: OpenCV cannot decode it"]),
    (_resized_image, 1, ["image size mismatch", "3.jpg: the file is 64x48 (h x w), the annotation file says 48x64"]),
    (_malformed_json, 1, ["malformed JSON at line 3, column 12"]),
    (_unknown_image_id, 1, ["unknown image id", "annotation id 3 points at image_id 404"]),
    (_unknown_category_id, 1, ["unknown category id", "annotation id 3 points at category_id 404"]),
    (_unknown_segmentation, 1, ["unknown segmentation format", "annotation id 3"]),
])
def test_each_problem_is_reported(tmp_path, capsys, breaker: Callable, code: int, messages: list[str]):
    data = _clean_data()
    root = _write(tmp_path, data)
    breaker(data, root)
    status, out = _run(root, capsys)
    assert status == code, out
    assert ("FAILED" if code else "OK") in out.splitlines()[-1]
    for message in messages:
        assert message in out, out


def test_num_gts_override_flags_crowded_images(tmp_path, capsys):
    status, out = _run(_write(tmp_path, _clean_data()), capsys, "--num_gts", "1")
    assert status == 0
    assert "more instances than num_gts (3)" in out and "1.jpg: 2 instances > num_gts=1" in out


def test_bad_paths_and_usage(tmp_path, capsys):
    status, out = _run(tmp_path / "missing", capsys)
    assert status == 1 and "dataset path does not exist" in out
    assert main([CONFIG, str(tmp_path), "--no_such_key", "1"]) == 2
    assert "unknown config key 'no_such_key'" in capsys.readouterr().err


def test_box_iou_by_hand():
    assert box_iou(np.array([0, 0, 10, 10.0]), np.array([5, 0, 15, 10.0])) == pytest.approx(50 / 150)
    assert box_iou(np.array([0, 0, 1, 1.0]), np.array([2, 2, 3, 3.0])) == 0.0


def test_command_line_exit_status(tmp_path):
    data = _clean_data()
    root = _write(tmp_path, data)
    _unknown_category(data, root)
    result = subprocess.run([sys.executable, "-m", "src.tools.check_dataset", CONFIG, str(root), "--no_progress"],
                            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    assert "annotated categories ['fender'] are not in coco_classes" in result.stdout

"""Bad image files: the start-up check names each (truncated, empty, wrong format, wrong size), skip_bad_images trains
on the rest, a file that breaks mid-run is replaced by the next image, and EXIF-rotated JPEGs match their
annotations whichever orientation these were made in."""
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from src import data as D
from src.data import image_check
from src.model_utils.config import Config
from tests.helpers.coco_fixtures import make_random_dataset


def write_jpeg(path: Path, image: np.ndarray, orientation: int = 1) -> None:
    """Save a BGR image as JPEG (quality 95) with the given EXIF orientation tag."""
    exif = Image.Exif()
    exif[image_check.EXIF_ORIENTATION] = orientation
    Image.fromarray(image[:, :, ::-1]).save(path, "JPEG", quality=95, exif=exif.tobytes())


def break_three_files(image_dir: Path) -> list:
    """Truncate 000001.jpg, empty 000002.jpg, write PNG content into 000003.jpg; returns their paths."""
    truncated, empty, png = (image_dir / f"00000{index}.jpg" for index in (1, 2, 3))
    truncated.write_bytes(truncated.read_bytes()[:-200])
    empty.write_bytes(b"")
    ok, encoded = cv2.imencode(".png", cv2.imread(str(png)))
    png.write_bytes(encoded.tobytes())
    return [truncated, empty, png]


def test_check_image_file_names_what_is_wrong(tmp_path: Path):
    image = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    good = tmp_path / "good.jpg"
    write_jpeg(good, image)
    assert image_check.check_image_file(good, 40, 60) is None
    assert image_check.check_image_file(good, 60, 40) == "is 40x60 (h x w) but the annotation file says 60x40"
    rotated = tmp_path / "rotated.jpg"
    write_jpeg(rotated, image, orientation=6)
    assert image_check.check_image_file(rotated, 40, 60) is None and image_check.check_image_file(rotated, 60, 40) \
        is None
    assert "as its EXIF orientation shows it" in image_check.check_image_file(rotated, 50, 50)
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(good.read_bytes()[:-300])
    assert image_check.check_image_file(truncated, 40, 60) == "truncated JPEG (no end-of-image marker)"
    (tmp_path / "empty.png").write_bytes(b"")
    assert image_check.check_image_file(tmp_path / "empty.png") == "empty file (0 bytes)"
    png_as_jpg = tmp_path / "png.jpg"
    png_as_jpg.write_bytes(cv2.imencode(".png", image)[1].tobytes())
    assert image_check.check_image_file(png_as_jpg) == "PNG content in a '.jpg' file"
    cut_png = tmp_path / "cut.png"
    cut_png.write_bytes(cv2.imencode(".png", image)[1].tobytes()[:-20])
    assert image_check.check_image_file(cut_png) == "truncated PNG (no IEND chunk)"
    (tmp_path / "notes.jpg").write_text("hello")
    assert image_check.check_image_file(tmp_path / "notes.jpg") == "not a JPEG, PNG or BMP image"
    assert image_check.check_image_file(tmp_path / "missing.jpg").startswith("cannot be read")


def test_exif_rotated_jpeg_matches_annotations_in_either_orientation(tmp_path: Path):
    image = np.zeros((40, 60, 3), np.uint8)
    image[:10, :20] = 255  # a white block at the stored top-left corner
    path = tmp_path / "phone.jpg"
    write_jpeg(path, image, orientation=6)  # displayed rotated 90 degrees clockwise
    displayed = D.read_image(path, 60, 40)
    assert displayed.shape == (60, 40, 3) and displayed[:10, -5:].mean() > 200  # the block is now top-right
    stored = D.read_image(path, 40, 60)
    assert stored.shape == (40, 60, 3) and stored[:5, :15].mean() > 200
    with pytest.raises(D.DatasetError, match="annotation file says 50x50"):
        D.read_image(path, 50, 50)


def small_cfg(tiny_cfg: Config, **values) -> Config:
    return Config.from_dict({**tiny_cfg.to_dict(), "batch_size": 1, **values})


def test_bad_files_are_all_named_and_skip_bad_images_trains_on_the_rest(tmp_path: Path, tiny_cfg: Config, caplog):
    root = tmp_path / "train"
    make_random_dataset(root, num_images=6, seed=3)
    broken = break_three_files(root / "data")
    with pytest.raises(D.DatasetError) as error:
        D.create_dataset(small_cfg(tiny_cfg), root, mode="train")
    message = str(error.value)
    assert "3 of 6 image file(s) are unusable" in message and "skip_bad_images: 1" in message
    assert all(str(path) in message for path in broken)
    assert "truncated JPEG" in message and "empty file" in message and "PNG content in a '.jpg' file" in message
    with caplog.at_level(logging.WARNING, logger="src.data"):
        dataset = D.create_dataset(small_cfg(tiny_cfg, skip_bad_images=1), root, mode="train")
    assert "leaving out 3 of 6 image file(s)" in caplog.text and all(str(path) in caplog.text for path in broken)
    assert dataset.get_dataset_size() == 3
    assert len(list(dataset.create_tuple_iterator(num_epochs=1, output_numpy=True))) == 3
    evaluation = D.create_dataset(small_cfg(tiny_cfg, skip_bad_images=1), root, mode="eval")
    image_ids = [int(ids[0]) for _, _, ids in evaluation.create_tuple_iterator(num_epochs=1, output_numpy=True)]
    assert image_ids == [4, 5, 6]


def test_an_image_that_breaks_mid_run_is_replaced_by_the_next(tmp_path: Path, tiny_cfg: Config, caplog):
    root = tmp_path / "train"
    make_random_dataset(root, num_images=3, seed=4)
    coco = D.CocoDataset(root, tiny_cfg.coco_classes)
    records = D.train_records(coco, tiny_cfg.num_gts)
    source = D.TrainSource(records, D.TransformParams.from_config(tiny_cfg))
    expected = source[2 * 1]
    records[0].path.unlink()
    with caplog.at_level(logging.WARNING, logger="src.data"):
        replaced = source[2 * 0]
    assert f"cannot read image {records[0].path}" in caplog.text and "training on the next image" in caplog.text
    assert all(np.array_equal(a, b) for a, b in zip(replaced, expected))

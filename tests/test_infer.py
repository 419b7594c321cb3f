"""Tests of infer.py with the real (randomly initialised) tiny model in PYNATIVE mode."""
import json

import cv2
import mindspore as ms
import numpy as np
from pycocotools import mask as mask_utils
import pytest

import infer
from src.model_utils.config import Config
from src.network_define import build_detector


def test_list_images_filters_extensions_case_insensitively(tmp_path):
    for name in ("b.JPG", "a.png", "c.Bmp", "d.jpeg", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert [path.name for path in infer.list_images(str(tmp_path))] == ["a.png", "b.JPG", "c.Bmp", "d.jpeg"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="holds no image"):
        infer.list_images(str(empty))
    with pytest.raises(FileNotFoundError, match="missing"):
        infer.list_images(str(tmp_path / "missing"))


def test_infer_writes_model_zoo_json_and_overlays(tiny_cfg, tmp_path, parts_dataset):
    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    data_dir, coco = parts_dataset
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    cv2.imwrite(str(images / "car.png"), rng.integers(0, 256, (50, 70, 3), dtype=np.uint8))
    (images / "broken.jpg").write_bytes(b"not an image")
    values = tiny_cfg.to_dict()
    values.update(mode="pynative", img_width=64, img_height=64, val_dataset=str(data_dir),
                  train_dataset=str(tmp_path / "none"), checkpoint_path=str(tmp_path / "model.ckpt"),
                  pred_input=str(images), pred_output=str(tmp_path / "out" / "pred.json"),
                  visualize=str(tmp_path / "overlays"))
    values["test_cfg"]["rcnn"]["score_thr"] = 0.0  # random weights: keep every candidate
    cfg = Config.from_dict(values)
    model, _ = build_detector(cfg)
    ms.save_checkpoint(model, cfg.checkpoint_path)

    results = infer.predict(cfg)
    written = json.loads((tmp_path / "out" / "pred.json").read_text())
    assert written == json.loads(json.dumps(results))
    assert list(written) == [str(images / "car.png")]  # the unreadable file is skipped
    entry = written[str(images / "car.png")]
    assert (entry["height"], entry["width"]) == (50, 70)
    assert entry["predictions"], "score_thr 0 keeps detections"
    category_ids = {category["name"]: category["id"] for category in coco["categories"]}
    for prediction in entry["predictions"]:
        assert set(prediction) == {"bbox", "class", "mask", "score", "iou_score"}
        box = prediction["bbox"]
        assert 0 <= box["x_min"] and box["x_min"] + box["width"] <= 70 + 1e-3
        assert 0 <= box["y_min"] and box["y_min"] + box["height"] <= 50 + 1e-3
        assert prediction["class"]["category_id"] == category_ids[prediction["class"]["name"]]
        assert prediction["class"]["name"] == cfg.coco_classes[prediction["class"]["label"]]
        assert prediction["mask"]["size"] == [50, 70] and isinstance(prediction["mask"]["counts"], str)
        mask = mask_utils.decode({"size": prediction["mask"]["size"], "counts": prediction["mask"]["counts"].encode()})
        assert mask.shape == (50, 70) and set(np.unique(mask)) <= {0, 1}
    scores = [prediction["score"] for prediction in entry["predictions"]]
    assert scores == sorted(scores, reverse=True)
    overlay = cv2.imread(str(tmp_path / "overlays" / "car_pred.png"))
    assert overlay.shape == (50, 70, 3)


def test_output_names_keep_the_stem_unless_two_images_share_it(tmp_path):
    assert infer.output_names([tmp_path / "a.jpg", tmp_path / "a.png", tmp_path / "b.bmp"], "_pred") == {
        tmp_path / "a.jpg": "a_pred.png", tmp_path / "a.png": "a.png_pred.png", tmp_path / "b.bmp": "b_pred.png"}

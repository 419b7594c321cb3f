"""Tests of infer.py with the real (randomly initialised) tiny model in PYNATIVE mode."""
import json
import subprocess
import sys

import cv2
import mindspore as ms
import numpy as np
from pycocotools import mask as mask_utils
import pytest
import yaml

import infer
from src.model_utils.config import Config
from src.network_define import build_detector
from tests.conftest import PROJECT_ROOT


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


PEAK_MEMORY_MB = 1500


def test_a_24_megapixel_photo_is_predicted_under_a_memory_bound(tiny_cfg, tmp_path):
    """100 detections on a 6000x4000 photo: full-size masks would take 2.4 GB; box-sized ones keep infer.py's peak
    resident memory (MindSpore and the model included) under PEAK_MEMORY_MB."""
    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    images = tmp_path / "images"
    images.mkdir()
    gradient = np.linspace(0, 255, 6000, dtype=np.float32)[None, :, None] * np.ones((4000, 1, 3), np.float32)
    cv2.imwrite(str(images / "big.jpg"), gradient.astype(np.uint8))
    values = tiny_cfg.to_dict()
    values.update(mode="pynative", img_width=64, img_height=64, checkpoint_path=str(tmp_path / "model.ckpt"))
    values["test_cfg"]["rcnn"].update(score_thr=0.0, max_per_img=100, iou_threshold=1.0)  # no suppression
    values["test_cfg"]["rpn"]["max_per_img"] = 200
    values["roi"]["sample_num"] = 128  # the NMS candidates
    cfg = Config.from_dict(values)
    model, _ = build_detector(cfg)
    ms.save_checkpoint(model, cfg.checkpoint_path)
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(values))
    # VmHWM: this process's own peak (ru_maxrss would include the test process's, inherited at fork)
    script = ("import sys, infer; infer.main(sys.argv[1:]); print('peak', [line.split()[1] for line in "
              "open('/proc/self/status') if line.startswith('VmHWM')][0])")
    result = subprocess.run([sys.executable, "-c", script, "--config_path", str(config_path), "--pred_input",
                             str(images), "--pred_output", str(tmp_path / "pred.json")], cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    written = json.loads((tmp_path / "pred.json").read_text())[str(images / "big.jpg")]
    assert (written["height"], written["width"]) == (4000, 6000) and len(written["predictions"]) == 100
    peak_mb = int(result.stdout.split("peak")[-1]) / 1024.0
    print(f"peak resident memory {peak_mb:.0f} MB")
    assert peak_mb < PEAK_MEMORY_MB, f"peak resident memory {peak_mb:.0f} MB"


def test_a_checkpoint_without_maskiou_head_scores_masks_by_class_alone(tiny_cfg, tmp_path, capsys):
    """A converted Mask R-CNN has no MaskIoU head: it runs with a warning, the same detections as the full model and
    iou_score 1; a checkpoint lacking any other parameter is still refused."""
    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    images = tmp_path / "images"
    images.mkdir()
    cv2.imwrite(str(images / "car.png"), np.random.default_rng(1).integers(0, 256, (60, 64, 3), dtype=np.uint8))
    values = tiny_cfg.to_dict()
    values.update(mode="pynative", img_width=64, img_height=64, pred_input=str(images))
    values["test_cfg"]["rcnn"]["score_thr"] = 0.0
    model, _ = build_detector(Config.from_dict(values))
    parameters = [{"name": parameter.name, "data": parameter} for parameter in model.get_parameters()]
    ms.save_checkpoint(parameters, str(tmp_path / "full.ckpt"))
    ms.save_checkpoint([entry for entry in parameters if not entry["name"].startswith("mask_iou_head.")],
                       str(tmp_path / "no_maskiou.ckpt"))
    ms.save_checkpoint([entry for entry in parameters if not entry["name"].startswith("bbox_head.")],
                       str(tmp_path / "no_bbox_head.ckpt"))

    def predictions(checkpoint: str) -> list:
        cfg = Config.from_dict({**values, "checkpoint_path": str(tmp_path / checkpoint),
                                "pred_output": str(tmp_path / f"{checkpoint}.json")})
        return infer.predict(cfg)[str(images / "car.png")]["predictions"]

    full = predictions("full.ckpt")
    assert "has no MaskIoU head" not in capsys.readouterr().out
    converted = predictions("no_maskiou.ckpt")
    assert "has no MaskIoU head" in capsys.readouterr().out
    assert full and [entry["bbox"] for entry in converted] == [entry["bbox"] for entry in full]
    assert [entry["score"] for entry in converted] == [entry["score"] for entry in full]
    assert {entry["iou_score"] for entry in converted} == {1.0}
    assert {entry["iou_score"] for entry in full} != {1.0}
    with pytest.raises(ValueError, match="lacks .* parameters of this model"):
        predictions("no_bbox_head.ckpt")

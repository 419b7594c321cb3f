"""Saved detections: an estimate run's detections.json, scored by evaluate_cost, gives the same table as running the
models again (two models and one joint model), and files that cannot answer are refused with their name."""
import json
import shutil

import numpy as np
import pandas as pd
import pytest

from src.damage_cost import estimate, evaluate_cost
from src.damage_cost.price_models import GroupMeanPriceModel, save_price_model
from src.damage_cost.saved_detections import FORMAT, RecordingDetector, image_entry, read_detections


@pytest.fixture
def price_model_path(synthetic_dataset, tmp_path):
    claims = pd.read_csv(synthetic_dataset / "claims.csv")
    path = tmp_path / "price.json"
    save_price_model(GroupMeanPriceModel().fit(claims[claims["subset"] == "train"]), path)
    return path


def model_options(tiny_joint_model, tmp_path, joint: bool) -> list:
    """The tiny joint model, or it as parts model and a copy of it (another file: a second model) for damages."""
    config_path, checkpoint = tiny_joint_model
    options = ["--parts-config", str(config_path), "--parts-ckpt", str(checkpoint)]
    if not joint:
        copy = shutil.copy(checkpoint, tmp_path / "damage.ckpt")
        options += ["--damage-config", str(config_path), "--damage-ckpt", str(copy)]
    return options


@pytest.mark.parametrize("joint", [False, True], ids=["two-models", "joint"])
def test_saved_detections_give_the_models_table(synthetic_dataset, tiny_joint_model, price_model_path, tmp_path,
                                                joint):
    options = model_options(tiny_joint_model, tmp_path, joint)
    photos = synthetic_dataset / "damage" / "train" / "data"
    out_dir = tmp_path / "estimate"
    assert estimate.main([*options, "--price-model", str(price_model_path), "--input", str(photos),
                          "--output", str(out_dir), "--score-thr", "0.0", "--save-detections",
                          "--device-target", "CPU"]) == 0
    saved = json.loads((out_dir / "detections.json").read_text())
    assert saved["format"] == FORMAT and saved["models"]["joint"] is joint
    assert sorted(saved["images"]) == sorted(path.name for path in photos.iterdir())
    report = json.loads((out_dir / "report.json").read_text())
    assert saved["models"]["parts"] == report["models"]["parts"]

    common = ["--price-model", str(price_model_path), "--dataset", str(synthetic_dataset), "--subset", "train",
              "--score-thr", "0.0", "0.5"]
    assert evaluate_cost.main([*options, *common, "--out", str(tmp_path / "models.csv"),
                               "--device-target", "CPU"]) == 0
    assert evaluate_cost.main(["--detections", str(out_dir / "detections.json"), *common,
                               "--out", str(tmp_path / "saved.csv")]) == 0
    from_models, from_file = pd.read_csv(tmp_path / "models.csv"), pd.read_csv(tmp_path / "saved.csv")
    assert from_file["ms_per_image"].isna().all() and (from_models["ms_per_image"].iloc[1:] > 0).all()
    columns = [column for column in from_models.columns if column != "ms_per_image"]
    pd.testing.assert_frame_equal(from_models[columns], from_file[columns])
    images = pd.read_csv(tmp_path / "models_images.csv")
    pd.testing.assert_frame_equal(images, pd.read_csv(tmp_path / "saved_images.csv"))
    assert images.loc[images["pipeline"] == "models, score >= 0", "predicted"].sum() > 0  # not an empty comparison


def write_saved(path, score_thr=0.3, images=None):
    entry = {"config": "c.yaml", "checkpoint": "k.ckpt", "checkpoint_sha256": "0" * 64,
             "classes": ["background", "door", "minor"], "score_thr": score_thr}
    path.write_text(json.dumps({"format": FORMAT, "models": {"joint": True, "parts": entry, "damage": entry},
                                "images": images or {}}))
    return path


def test_image_entry_round_trip_by_hand(tmp_path):
    mask = np.zeros((4, 6), np.uint8)
    mask[1:3, 2:5] = 1
    detection = {"box": np.array([2.0, 1.0, 5.0, 3.0], np.float32), "label": np.int64(2), "name": "minor",
                 "score": np.float32(0.75), "mask_iou": 0.5, "confidence": 0.375, "mask": mask}
    entry = image_entry(4, 6, [detection], None)  # write_saved describes one joint model
    assert "damage" not in entry
    path = write_saved(tmp_path / "detections.json", images={"a.jpg": entry})
    parts, damage = read_detections(path).detections("a.jpg", 4, 6)
    assert parts[0]["box"] == [2.0, 1.0, 5.0, 3.0] and parts[0]["label"] == 2 and parts[0]["score"] == 0.75
    assert np.array_equal(parts[0]["mask"], mask) and np.array_equal(damage[0]["mask"], mask)
    with pytest.raises(ValueError, match="no detections of image 'b.jpg'"):
        read_detections(path).detections("b.jpg", 4, 6)
    with pytest.raises(ValueError, match="was 4x6 when detected, it is 8x6 now"):
        read_detections(path).detections("a.jpg", 8, 6)


def test_unusable_files_are_refused_by_name(tmp_path):
    with pytest.raises(FileNotFoundError, match="no file at"):
        read_detections(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(ValueError, match="broken.json: not valid JSON"):
        read_detections(broken)
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"images": []}))
    with pytest.raises(ValueError, match="report.json: expected a detections file"):
        read_detections(report)
    saved = read_detections(write_saved(tmp_path / "detections.json", score_thr=0.3))
    saved.check_thresholds([(0.3, 0.3), (0.5, 0.4)])
    with pytest.raises(ValueError, match="from score 0.3 \\(parts\\) and 0.3 \\(damage\\) up; threshold 0.2 / 0.2"):
        saved.check_thresholds([(0.2, 0.2)])


def test_a_tagged_file_missing_a_key_is_refused_by_name(tmp_path):
    path = write_saved(tmp_path / "detections.json")
    data = json.loads(path.read_text())
    del data["models"]["damage"]["score_thr"]
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="detections.json: models.damage has no 'score_thr'"):
        read_detections(path)
    detection = {"box": [0, 0, 1, 1], "label": 1, "name": "door", "score": 0.9, "mask_iou": 0.8, "confidence": 0.72}
    path = write_saved(tmp_path / "detections.json",
                       images={"a.jpg": {"height": 4, "width": 6, "parts": [detection]}})
    with pytest.raises(ValueError, match="image 'a.jpg', parts detection 0 has no 'mask'"):
        read_detections(path)
    path = write_saved(tmp_path / "detections.json", images={"a.jpg": {"height": 4, "parts": []}})
    with pytest.raises(ValueError, match="image 'a.jpg' has no 'width'"):
        read_detections(path)


def test_recording_detector_keeps_the_last_call():
    class Counting:
        class_names = ["background", "door"]
        calls = 0

        def detect(self, image):
            self.calls += 1
            return [{"call": self.calls}]

    recorder = RecordingDetector(Counting())
    assert recorder.class_names == ["background", "door"] and recorder.last == []
    assert recorder.detect(None) == [{"call": 1}] and recorder.detect(None) == recorder.last == [{"call": 2}]


def test_evaluate_cost_takes_the_models_or_the_detections(tmp_path, capsys):
    with pytest.raises(SystemExit):
        evaluate_cost.parse_args(["--price-model", "p.json", "--dataset", "d"])
    assert "--parts-config and --parts-ckpt are required (or --detections)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        evaluate_cost.parse_args(["--parts-config", "c", "--parts-ckpt", "k", "--detections", "x.json",
                                  "--price-model", "p.json", "--dataset", "d"])
    assert "not both" in capsys.readouterr().err


def test_evaluate_cost_refuses_thresholds_below_the_saved_ones(synthetic_dataset, price_model_path, tmp_path,
                                                               capsys):
    path = write_saved(tmp_path / "detections.json", score_thr=0.3)
    assert evaluate_cost.main(["--detections", str(path), "--price-model", str(price_model_path),
                               "--dataset", str(synthetic_dataset), "--subset", "train", "--score-thr", "0.1"]) == 2
    assert "threshold 0.1 / 0.1 needs the models run again" in capsys.readouterr().err

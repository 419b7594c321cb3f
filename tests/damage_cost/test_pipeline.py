"""Tests of the repair-cost estimator: pipeline values by hand with fake detectors, report files, rendering, the
class-name check, input listing, and an end-to-end run of ``python -m src.damage_cost.estimate`` with a tiny
randomly initialised joint model on synthetic images."""
import json
import logging

import cv2
import mindspore as ms
import numpy as np
import pandas as pd
import pytest
from mindspore import nn

from src.callback import atomic_save_checkpoint
from src.damage_cost import estimate, report
from src.damage_cost.detector import Detector, check_checkpoint_classes
from src.damage_cost.features import PART_NAMES, SEVERITIES, build_feature_table
from src.damage_cost.pipeline import DamageCostEstimator
from src.damage_cost.price_models import GroupMeanPriceModel, save_price_model
from src.damage_cost.render import SEVERITY_COLORS, render_estimate, save_rendering
from src.model_utils.config import Config
from src.tools import make_synthetic_car_damage
from tests.conftest import TINY_CONFIG
from tests.damage_cost.conftest import JOINT_CLASSES

HEIGHT, WIDTH = 100, 200


def rect_mask(top: int, bottom: int, left: int, right: int) -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    mask[top:bottom, left:right] = 1
    return mask


def detection(name: str, confidence: float, top: int, bottom: int, left: int, right: int) -> dict:
    return {"box": [float(left), float(top), float(right), float(bottom)], "name": name, "confidence": confidence,
            "mask": rect_mask(top, bottom, left, right)}


# door 40x80 = 3200 px, hood 40x60 = 2400 px; severe 10x20 = 200 px inside the door; minor 10x10 on no part;
# moderate 10x40 = 400 px with 100 px on the door and 100 px on the hood.
PARTS = [detection("door", 0.9, 20, 60, 20, 100), detection("hood", 0.8, 20, 60, 120, 180)]
DAMAGES = [detection("severe", 0.7, 30, 40, 30, 50), detection("minor", 0.5, 80, 90, 10, 20),
           detection("moderate", 0.6, 40, 50, 90, 130)]


class FakeDetector:
    def __init__(self, class_names, detections):
        self.class_names = class_names
        self.detections = detections
        self.calls = 0

    def detect(self, image_bgr):
        assert image_bgr.shape == (HEIGHT, WIDTH, 3)
        self.calls += 1
        return [dict(item) for item in self.detections]


class LookupPriceModel:
    """Price by (main part, severity); 'unknown' parts fall back to a flat price."""
    PRICES = {("door", "severe"): 1234.4, ("hood", "moderate"): 480.5}

    def predict(self, table):
        severities = table[list(SEVERITIES)].idxmax(axis=1)
        keys = list(zip(table["main_part"], severities))
        return pd.DataFrame({"price": [self.PRICES.get(key, 150.6) for key in keys],
                             "fallback": ["" if key in self.PRICES else "flat" for key in keys]}, index=table.index)


def test_estimate_by_hand_with_a_joint_model():
    joint = FakeDetector([*JOINT_CLASSES, "wheel"], PARTS + DAMAGES + [detection("wheel", 0.9, 60, 100, 0, 40)])
    estimator = DamageCostEstimator(joint, joint, LookupPriceModel())
    result = estimator.estimate(np.zeros((HEIGHT, WIDTH, 3), np.uint8), "car.jpg")
    assert estimator.joint and joint.calls == 1
    assert (result["image"], result["height"], result["width"]) == ("car.jpg", HEIGHT, WIDTH)
    assert result["parts"] == [{"name": "door", "box": [20.0, 20.0, 100.0, 60.0], "confidence": 0.9},
                               {"name": "hood", "box": [120.0, 20.0, 180.0, 60.0], "confidence": 0.8}]
    severe, minor, moderate = result["damages"]
    assert (severe["severity"], severe["part"], severe["price"], severe["fallback"]) == ("severe", "door", 1234, "")
    assert severe["dice"] == round(2 * 200 / (200 + 3200), 6) and severe["area_fraction"] == 200 / 20000
    assert severe["dice_by_part"] == {"front_bumper": 0.0, "rear_bumper": 0.0, "headlamp": 0.0,
                                      "door": round(400 / 3400, 6), "hood": 0.0}
    assert (minor["part"], minor["dice"], minor["price"], minor["fallback"]) == ("unknown", 0.0, 151, "flat")
    assert minor["area_fraction"] == 100 / 20000 and minor["confidence"] == 0.5
    # the moderate damage touches both parts; the hood wins by dice (200/2800 > 200/3600); .5 rounds up
    assert (moderate["part"], moderate["dice"], moderate["price"]) == ("hood", round(200 / 2800, 6), 481)
    assert moderate["dice_by_part"]["door"] == round(200 / 3600, 6)
    assert moderate["box"] == [90.0, 40.0, 130.0, 50.0]
    assert result["total"] == 1234 + 151 + 481 == sum(damage["price"] for damage in result["damages"])
    assert result["inspection_needed"] is True
    assert result["masks"]["damages"].shape == (3, HEIGHT, WIDTH) and result["masks"]["parts"].shape == (2, HEIGHT,
                                                                                                        WIDTH)
    assert result["masks"]["damages"][2].sum() == 400


def test_two_models_are_split_by_role_and_checked():
    parts = FakeDetector(["background", *PART_NAMES], PARTS)
    # a damage model's detections of other classes are ignored; without a severe damage no inspection is needed
    damage = FakeDetector(["background", *SEVERITIES, "door"], DAMAGES[1:] + [PARTS[0]])
    estimator = DamageCostEstimator(parts, damage, LookupPriceModel())
    result = estimator.estimate(np.zeros((HEIGHT, WIDTH, 3), np.uint8), "b.png")
    assert not estimator.joint and parts.calls == damage.calls == 1
    assert [item["name"] for item in result["parts"]] == ["door", "hood"]
    assert [item["severity"] for item in result["damages"]] == ["minor", "moderate"]
    assert result["total"] == 151 + 481 and result["inspection_needed"] is False
    damage_only = FakeDetector(["background", *SEVERITIES], [])
    with pytest.raises(ValueError, match=r"parts detector: its classes \['background', 'minor', 'moderate', "
                                         r"'severe'\] include none of \['front_bumper', "):
        DamageCostEstimator(damage_only, parts, LookupPriceModel())  # models swapped
    with pytest.raises(ValueError, match=r"damage detector: its classes .* include none of \['minor', "):
        DamageCostEstimator(parts, None, LookupPriceModel())  # a parts model is no joint model


def test_no_damage_costs_nothing():
    parts = FakeDetector(JOINT_CLASSES, PARTS)
    result = DamageCostEstimator(parts, None, LookupPriceModel()).estimate(np.zeros((HEIGHT, WIDTH, 3), np.uint8), "c")
    assert result["damages"] == [] and result["total"] == 0 and result["inspection_needed"] is False
    assert result["masks"]["damages"].shape == (0, HEIGHT, WIDTH)


def test_prices_are_the_price_models_predictions():
    claim = {**{f"{part}_dice": 0.0 for part in PART_NAMES}, "unknown": 0, "minor": 0, "moderate": 0, "severe": 0,
             "damage_area": 0.01}
    claims = pd.DataFrame([{**claim, "door_dice": 0.2, "severe": 1, "price": 1000},
                           {**claim, "door_dice": 0.3, "severe": 1, "price": 1200},
                           {**claim, "unknown": 1, "minor": 1, "price": 100},
                           {**claim, "unknown": 1, "minor": 1, "price": 161}])
    model = GroupMeanPriceModel().fit(claims)
    joint = FakeDetector(JOINT_CLASSES, PARTS + DAMAGES)
    result = DamageCostEstimator(joint, None, model).estimate(np.zeros((HEIGHT, WIDTH, 3), np.uint8), "d.jpg")
    # group means (door, severe) 1100 and (unknown, minor) 130.5; (hood, moderate) and 'moderate' are unseen: the
    # global mean 615.25
    assert [(damage["part"], damage["price"], damage["fallback"]) for damage in result["damages"]] == [
        ("door", 1100, "part+severity"), ("unknown", 131, "part+severity"), ("hood", 615, "global")]
    masks = result["masks"]
    expected = model.predict(build_feature_table(masks["damages"], [item["name"] for item in DAMAGES],
                                                 masks["parts"], ["door", "hood"]))
    assert expected["price"].tolist() == [1100.0, 130.5, 615.25]
    assert result["total"] == 1100 + 131 + 615
    with pytest.raises(ValueError, match=r"price model: fitted on the parts \['door', 'wing'\]"):
        DamageCostEstimator(joint, None, GroupMeanPriceModel(part_names=["door", "wing"]))


def estimates() -> list:
    """Results of the joint fake estimator for two images, the second without damages."""
    with_damage = DamageCostEstimator(FakeDetector(JOINT_CLASSES, PARTS + DAMAGES), None, LookupPriceModel())
    without = DamageCostEstimator(FakeDetector(JOINT_CLASSES, PARTS), None, LookupPriceModel())
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    return [with_damage.estimate(image, "a.jpg"), without.estimate(image, "b.jpg")]


def test_report_json_and_csv(tmp_path):
    results = estimates()
    models = {"joint": True, "parts": {"checkpoint": "k"}, "damage": {"checkpoint": "k"}, "price_model": {}}
    skipped = [{"path": "x.jpg", "reason": estimate.UNREADABLE}]
    content = report.build_report("in", results, models, skipped)
    json_path, csv_path = report.write_report(tmp_path / "out", content, results)
    written = json.loads(json_path.read_text())
    assert written == json.loads(json.dumps(content)) and "masks" not in written["images"][0]
    assert set(written) == {"input", "models", "images", "images_skipped", "summary"}
    assert written["summary"] == {"images": 2, "images_skipped": 1, "damages": 3, "images_needing_inspection": 1,
                                  "grand_total": 1866}
    rows = pd.read_csv(csv_path, keep_default_na=False)
    assert list(rows.columns) == ["image", "front_bumper_dice", "rear_bumper_dice", "headlamp_dice", "door_dice",
                                  "hood_dice", "unknown", "minor", "moderate", "severe", "damage_area", "part",
                                  "confidence", "price", "fallback"]
    assert rows["image"].tolist() == ["a.jpg"] * 3 and rows["part"].tolist() == ["door", "unknown", "hood"]
    assert rows[["unknown", "minor", "moderate", "severe"]].values.tolist() == [[0, 0, 0, 1], [1, 1, 0, 0],
                                                                               [0, 0, 1, 0]]
    assert rows["door_dice"][0] == round(400 / 3400, 6) and rows["damage_area"].tolist() == [0.01, 0.005, 0.02]
    assert rows["fallback"].tolist() == ["", "flat", ""]
    for record in written["images"]:  # each image's total is exactly the sum of its rows
        assert record["total"] == rows.loc[rows["image"] == record["image"], "price"].sum()
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["report.csv", "report.json"]


def test_report_is_not_half_written(tmp_path, monkeypatch):
    results = estimates()
    content = report.build_report("in", results, {}, [])
    json_path, csv_path = report.write_report(tmp_path, content, results)
    before = json_path.read_text(), csv_path.read_text()

    def interrupted(data, stream, **kwargs):
        stream.write('{"images": [')
        raise KeyboardInterrupt

    monkeypatch.setattr("src.eval_utils.json.dump", interrupted)
    with pytest.raises(KeyboardInterrupt):
        report.write_report(tmp_path, report.build_report("in", results[1:], {}, []), results[1:])
    assert json_path.read_text() == before[0]  # the previous report is intact, not a truncated one
    assert json.loads(json_path.read_text())["summary"]["images"] == 2


def test_models_entry_hashes_files(tmp_path):
    class Described:
        config_path, class_names, score_thr = None, JOINT_CLASSES, 0.3

        def __init__(self, path):
            self.checkpoint_path = str(path)

    (tmp_path / "a.ckpt").write_bytes(b"abc")
    (tmp_path / "price.json").write_text("{}")
    detector = Described(tmp_path / "a.ckpt")
    models = report.describe_models(detector, detector, LookupPriceModel(), tmp_path / "price.json")
    sha_abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert models["joint"] and models["damage"] == models["parts"]
    assert models["parts"]["checkpoint_sha256"] == sha_abc and models["parts"]["classes"] == JOINT_CLASSES
    assert models["price_model"]["kind"] == "LookupPriceModel"
    assert models["price_model"]["path"] == str((tmp_path / "price.json").resolve())


def test_rendering_shows_severities_total_and_inspection(tmp_path):
    result = estimates()[0]
    image = np.full((HEIGHT, WIDTH, 3), 128, np.uint8)
    canvas = render_estimate(image, result)
    factor = 3  # 200 px wide -> enlarged to reach 512
    assert canvas.shape == (HEIGHT * factor, WIDTH * factor, 3)
    assert canvas[0, 0].tolist() != [128, 128, 128]  # the total's panel sits in the top-left corner
    inside_severe = canvas[35 * factor + 1, 45 * factor]  # inside the severe damage, away from its label
    expected = 0.55 * 128 + 0.45 * np.array(SEVERITY_COLORS["severe"])
    assert np.abs(inside_severe.astype(float) - expected).max() <= 2

    def red_in_panel(picture: np.ndarray) -> bool:  # INSPECTION NEEDED on red, under the total
        panel = picture[: picture.shape[0] // 4, : picture.shape[1] // 4]
        return bool(((panel[..., 2] > 150) & (panel[..., 0] < 60) & (panel[..., 1] < 60)).any())

    assert red_in_panel(canvas) and not red_in_panel(render_estimate(image, estimates()[1]))
    path = save_rendering(canvas, tmp_path / "a_cost.png")
    assert cv2.imread(str(path)).shape == canvas.shape


def test_checkpoint_classes_must_match_the_config(tmp_path, tiny_cfg, caplog):
    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    checkpoint = atomic_save_checkpoint(nn.Dense(2, 2), tmp_path / "damage.ckpt", {"epoch": 1},
                                        ["background", *SEVERITIES])
    values = tiny_cfg.to_dict()
    values["checkpoint_path"] = str(checkpoint)
    with pytest.raises(ValueError, match=rf"{checkpoint}: trained with coco_classes \['background', 'minor', "
                                         rf"'moderate', 'severe'\], but the config has \['background', "
                                         rf"'front_bumper', 'rear_bumper', 'headlamp', 'door', 'hood'\]"):
        Detector(Config.from_dict(values))
    older = atomic_save_checkpoint(nn.Dense(2, 2), tmp_path / "older.ckpt", {"epoch": 1})
    logger = logging.getLogger("test_damage_cost")
    with caplog.at_level(logging.WARNING, logger="test_damage_cost"):
        check_checkpoint_classes(older, tiny_cfg.coco_classes, logger)
    assert f"{older} stores no class names" in caplog.text


def test_inputs_skip_corrupt_and_non_image_files(tmp_path):
    cv2.imwrite(str(tmp_path / "car.png"), np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "x.jpg").write_bytes(np.random.default_rng(0).bytes(500))
    (tmp_path / "notes.txt").write_text("not a picture")
    images, skipped = estimate.list_inputs(str(tmp_path))
    assert images == [tmp_path / "car.png"]
    assert skipped == [{"path": str(tmp_path / "notes.txt"), "reason": estimate.NOT_AN_IMAGE},
                       {"path": str(tmp_path / "x.jpg"), "reason": estimate.UNREADABLE}]
    (tmp_path / "car.png").unlink()
    with pytest.raises(ValueError, match=r"no readable image in .*2 file\(s\) skipped: .*notes\.txt.*x\.jpg"):
        estimate.list_inputs(str(tmp_path))


def test_estimate_end_to_end_with_a_tiny_joint_model(tmp_path, capsys, tiny_joint_model):
    data = tmp_path / "synthetic"
    make_synthetic_car_damage.main(["--out", str(data), "--seed", "0", "--num-images", "6", "--size", "128", "128",
                                    "--workers", "1"])
    price_path = tmp_path / "price.json"
    save_price_model(GroupMeanPriceModel().fit(pd.read_csv(data / "claims.csv")), price_path)
    config_path, checkpoint = tiny_joint_model
    images = tmp_path / "images"
    images.mkdir()
    names = sorted(path.name for path in (data / "parts" / "train" / "data").iterdir())[:3]
    for name in names:
        (images / name).write_bytes((data / "parts" / "train" / "data" / name).read_bytes())
    (images / "x.jpg").write_bytes(np.random.default_rng(0).bytes(2000))
    (images / "notes.txt").write_text("claim notes")
    out = tmp_path / "out"
    arguments = ["--parts-config", str(config_path), "--parts-ckpt", str(checkpoint), "--price-model",
                 str(price_path), "--output", str(out), "--score-thr", "0", "--device-target", "CPU"]

    assert estimate.main([*arguments, "--input", str(images)]) == 0
    printed = capsys.readouterr().out
    written = json.loads((out / "report.json").read_text())
    assert [record["image"] for record in written["images"]] == names
    assert written["images_skipped"] == [{"path": str(images / "notes.txt"), "reason": estimate.NOT_AN_IMAGE},
                                         {"path": str(images / "x.jpg"), "reason": estimate.UNREADABLE}]
    rows = pd.read_csv(out / "report.csv", keep_default_na=False)
    assert list(rows.columns) == report.csv_columns()
    assert len(rows) == written["summary"]["damages"] > 0, "score-thr 0 on these random weights keeps damages"
    for record in written["images"]:
        assert record["total"] == sum(damage["price"] for damage in record["damages"])
        assert record["total"] == rows.loc[rows["image"] == record["image"], "price"].sum()
        assert record["inspection_needed"] == any(damage["severity"] == "severe" for damage in record["damages"])
        assert {part["name"] for part in record["parts"]} <= set(PART_NAMES)
        assert cv2.imread(str(out / f"{record['image'][:-4]}_cost.png")).shape == (512, 512, 3)
    assert written["summary"]["grand_total"] == rows["price"].sum()
    models = written["models"]
    assert models["joint"] and models["parts"]["checkpoint"] == str(checkpoint.resolve())
    assert models["parts"]["checkpoint_sha256"] == report.file_sha256(checkpoint)
    assert models["price_model"]["kind"] == "group_mean"
    assert "TOTAL" in printed and str(out / "report.json") in printed

    # the parts-only config does not match the joint checkpoint; a missing price model and a folder without
    # readable images are refused
    assert estimate.main(["--parts-config", str(TINY_CONFIG), *arguments[2:], "--input", str(images)]) == 2
    assert "trained with coco_classes" in capsys.readouterr().err
    missing = [str(tmp_path / "missing.json") if value == str(price_path) else value for value in arguments]
    assert estimate.main([*missing, "--input", str(images)]) == 2
    assert "missing.json" in capsys.readouterr().err
    for name in names:
        (images / name).unlink()
    assert estimate.main([*arguments, "--input", str(images)]) == 2
    assert "no readable image" in capsys.readouterr().err


def test_duplicate_damages_of_two_severities_are_priced_once():
    from src.damage_cost.pipeline import suppress_duplicates

    def damage(name, confidence, rows, cols):
        mask = np.zeros((20, 20), np.uint8)
        mask[rows, cols] = 1
        return {"name": name, "confidence": confidence, "mask": mask}

    dent = damage("moderate", 0.9, slice(0, 10), slice(0, 10))            # 100 px
    same_dent = damage("minor", 0.6, slice(0, 10), slice(1, 11))          # IoU 90 / 110 = 0.82 -> dropped
    touching = damage("minor", 0.95, slice(0, 10), slice(6, 16))          # IoU 40 / 160 = 0.25 with the dent -> kept
    apart = damage("severe", 0.4, slice(12, 20), slice(12, 20))
    kept = suppress_duplicates([dent, same_dent, touching, apart])
    assert [(d["name"], d["confidence"]) for d in kept] == [("moderate", 0.9), ("minor", 0.95), ("severe", 0.4)]
    assert suppress_duplicates([dent]) == [dent] and suppress_duplicates([]) == []

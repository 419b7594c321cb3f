"""Tests of src.tools.diagnose_detector: overlaps and the report by hand, and a run on a random tiny model."""
import mindspore as ms
import numpy as np

from src.network_define import build_detector
from src.tools import diagnose_detector as D
from tests.conftest import TINY_CONFIG


def test_best_overlaps_by_hand():
    gt_boxes = np.array([[0, 0, 10, 10], [20, 20, 30, 40]], np.float32)
    proposals = np.array([[5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 10, 10]], np.float32)
    np.testing.assert_allclose(D.best_overlaps(proposals, gt_boxes), [1.0, 0.5])
    np.testing.assert_allclose(D.best_overlaps(proposals[:1], gt_boxes), [50 / 150, 0.0])
    np.testing.assert_array_equal(D.best_overlaps(np.zeros((0, 4), np.float32), gt_boxes), [0.0, 0.0])


def test_report_by_hand():
    report = D.format_diagnosis(np.array([1, 1, 2]), np.array([0.6, 0.8, 0.4]), np.array([1, 0, 2]),
                                ["background", "scratch", "dent"])
    lines = report.splitlines()
    assert lines[2].split() == ["scratch", "2", "1.000", "0.500", "0.700"]
    assert lines[3].split() == ["dent", "1", "0.000", "0.000", "0.400"]
    assert lines[6].split() == ["scratch", "1", "1", "0", "0.500"]
    assert lines[7].split() == ["dent", "0", "0", "1", "1.000"]


def test_diagnose_counts_every_annotated_instance(tiny_cfg, parts_dataset, tmp_path, capsys):
    data_dir, coco = parts_dataset
    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    model, _ = build_detector(tiny_cfg)
    ms.save_checkpoint(model, str(tmp_path / "model.ckpt"))
    assert D.main(["--config_path", str(TINY_CONFIG), "--img_width", "128", "--img_height", "128", "--val_dataset", str(data_dir),
                   "--checkpoint_path", str(tmp_path / "model.ckpt"), "--device_target", "CPU"]) == 0
    report = capsys.readouterr().out.splitlines()
    names = {category["id"]: category["name"] for category in coco["categories"]}
    expected = {name: 0 for name in names.values()}
    for annotation in coco["annotations"]:
        expected[names[annotation["category_id"]]] += 1
    recall_rows = {line.split()[0]: line.split() for line in report[2:2 + len(names)]}
    confusion_rows = {line.split()[0]: line.split() for line in report[4 + len(names):]}
    for name, count in expected.items():
        assert int(recall_rows[name][1]) == count
        assert sum(int(value) for value in confusion_rows[name][1:-1]) == count

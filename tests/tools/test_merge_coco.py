"""merge_coco: two label files of the same images become one with both category sets, every annotation kept."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from src.data import CocoDataset, DatasetError
from src.tools.merge_coco import merge_datasets

ROOT = Path(__file__).resolve().parents[2]
JOINT_CLASSES = ["background", "front_bumper", "rear_bumper", "headlamp", "door", "hood", "minor", "moderate",
                 "severe"]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synthetic") / "data"
    subprocess.run([sys.executable, "-m", "src.tools.make_synthetic_car_damage", "--out", str(out), "--seed", "3",
                    "--num-images", "8", "--size", "128", "128", "--workers", "1"], cwd=ROOT, check=True,
                   capture_output=True)
    return out


def test_merge_keeps_every_annotation_under_renumbered_ids(synthetic, tmp_path):
    subsets = merge_datasets([synthetic / "parts", synthetic / "damage"], tmp_path / "joint")
    assert subsets == sorted(path.name for path in (synthetic / "parts").iterdir() if path.is_dir())
    for subset in subsets:
        parts = json.loads((synthetic / "parts" / subset / "labels.json").read_text())
        damage = json.loads((synthetic / "damage" / subset / "labels.json").read_text())
        merged = json.loads((tmp_path / "joint" / subset / "labels.json").read_text())
        assert [c["name"] for c in merged["categories"]] == JOINT_CLASSES[1:]
        assert [c["id"] for c in merged["categories"]] == list(range(1, 9))
        assert merged["images"] == parts["images"]
        assert len(merged["annotations"]) == len(parts["annotations"]) + len(damage["annotations"])
        assert [a["id"] for a in merged["annotations"]] == list(range(1, len(merged["annotations"]) + 1))
        # damage category k (1..3) becomes 5 + k; geometry is untouched
        tail = merged["annotations"][len(parts["annotations"]):]
        for original, copied in zip(damage["annotations"], tail):
            assert copied["category_id"] == original["category_id"] + 5
            assert copied["segmentation"] == original["segmentation"] and copied["image_id"] == original["image_id"]
        coco = CocoDataset(tmp_path / "joint" / subset, JOINT_CLASSES)
        assert len(coco) == len(parts["images"])
        assert coco.image_path(parts["images"][0]["id"]).is_file()


def test_inputs_over_other_images_are_refused(synthetic, tmp_path):
    other = tmp_path / "other" / "train"
    other.mkdir(parents=True)
    data = json.loads((synthetic / "damage" / "train" / "labels.json").read_text())
    data["images"][0]["file_name"] = "elsewhere.jpg"
    (other / "labels.json").write_text(json.dumps(data))
    with pytest.raises(DatasetError, match="elsewhere.jpg"):
        merge_datasets([synthetic / "parts", tmp_path / "other"], tmp_path / "joint")

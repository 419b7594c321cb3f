"""Tests of src/data/: layouts, mask decoding, filtering, transforms, sharding, errors, the MindSpore pipeline."""
from __future__ import annotations

import logging
from pathlib import Path

import cv2
import mindspore as ms
import numpy as np
import pytest

from src import data as D
from tests.helpers.coco_fixtures import (PARTS_CLASSES, categories_of, make_random_dataset, polygon_annotation,
                                         rect_polygon, rle_annotation, write_coco_dataset)

ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")


def _one_image(file_name: str = "a.jpg", height: int = 50, width: int = 100, image_id: int = 1) -> list[dict]:
    return [{"id": image_id, "file_name": file_name, "height": height, "width": width}]


def _params(**changes) -> D.TransformParams:
    values = dict(img_height=128, img_width=128, keep_ratio=True, img_mean=(0.0, 0.0, 0.0), img_std=(1.0, 1.0, 1.0),
                  to_rgb=False, mask_divider=2, num_gts=4)
    values.update(changes)
    return D.TransformParams(**values)


# ---------------------------------------------------------------------------------------------------------------
# layouts and reading

def test_zoo_and_coco_layouts_resolve_to_the_same_records(tmp_path):
    images = _one_image()
    annotations = [polygon_annotation(1, 1, 1, [rect_polygon(10, 5, 30, 25)])]
    zoo = write_coco_dataset(tmp_path / "zoo", images, annotations, categories_of(["door"]), layout="zoo")
    coco = write_coco_dataset(tmp_path / "coco", images, annotations, categories_of(["door"]), layout="coco",
                              subset="val2017")
    assert D.resolve_dataset(zoo) == (zoo / "labels.json", zoo / "data")
    assert D.resolve_dataset(coco) == (coco / "annotations" / "instances_val2017.json", coco / "val2017")
    json_path = coco / "annotations" / "instances_val2017.json"
    assert D.resolve_dataset(json_path) == (json_path, coco / "val2017")
    (coco / "val2017").rename(coco / "images")
    assert D.resolve_dataset(coco) == (json_path, coco / "images")
    zoo_record = D.CocoDataset(zoo, PARTS_CLASSES).record(1)
    coco_record = D.CocoDataset(coco, PARTS_CLASSES).record(1)
    assert coco_record.path == coco / "images" / "a.jpg" and coco_record.path.is_file()
    np.testing.assert_array_equal(zoo_record.boxes, [[10, 5, 30, 25]])
    np.testing.assert_array_equal(coco_record.boxes, zoo_record.boxes)
    np.testing.assert_array_equal(coco_record.labels, [PARTS_CLASSES.index("door")])


def test_polygon_and_rle_masks_decode_to_the_drawn_mask():
    expected = np.zeros((20, 16), np.uint8)
    expected[2:6, 2:12] = 1   # an L shape: a 10x4 bar ...
    expected[6:14, 2:6] = 1   # ... and a 4x8 leg
    l_shape = [2, 2, 12, 2, 12, 6, 6, 6, 6, 14, 2, 14]
    np.testing.assert_array_equal(D.segmentation_to_mask([l_shape], 20, 16), expected)
    two_rects = [rect_polygon(2, 2, 12, 6), rect_polygon(2, 6, 6, 14)]
    np.testing.assert_array_equal(D.segmentation_to_mask(two_rects, 20, 16), expected)
    compressed = rle_annotation(1, 1, 1, expected, compressed=True)["segmentation"]
    uncompressed = rle_annotation(1, 1, 1, expected, compressed=False)["segmentation"]
    assert isinstance(compressed["counts"], str) and isinstance(uncompressed["counts"], list)
    np.testing.assert_array_equal(D.segmentation_to_mask(compressed, 20, 16), expected)
    np.testing.assert_array_equal(D.segmentation_to_mask(uncompressed, 20, 16), expected)
    assert D.segmentation_to_mask([[1, 1, 5, 1]], 20, 16).sum() == 0
    with pytest.raises(D.DatasetError, match="unknown format"):
        D.segmentation_to_mask({"points": [1, 2]}, 20, 16)


def test_crowd_degenerate_and_maskless_annotations_are_dropped(tmp_path):
    images = _one_image() + _one_image("b.jpg", image_id=2)
    full = np.zeros((50, 100), np.uint8)
    full[10:20, 40:60] = 1
    annotations = [
        polygon_annotation(1, 1, 1, [rect_polygon(10, 5, 30, 25)]),
        polygon_annotation(2, 1, 1, [rect_polygon(50, 5, 70, 25)], iscrowd=1),
        rle_annotation(3, 1, 2, full, iscrowd=1),
        polygon_annotation(4, 1, 1, [rect_polygon(5, 5, 5.5, 20)]),            # 0.5 px wide
        polygon_annotation(5, 1, 1, [rect_polygon(120, 5, 140, 20)]),          # right of the image
        polygon_annotation(6, 1, 1, [[1, 1, 9, 9]], bbox=[1, 1, 8, 8]),        # 2-point polygon: no mask
        rle_annotation(7, 1, 2, full, compressed=False),
        polygon_annotation(8, 2, 1, [rect_polygon(10, 5, 10.2, 25)]),          # image 2: nothing valid
    ]
    root = write_coco_dataset(tmp_path, images, annotations, categories_of(["front_bumper", "rear_bumper"]))
    coco = D.CocoDataset(root, PARTS_CLASSES)
    record = coco.record(1)
    np.testing.assert_array_equal(record.boxes, [[10, 5, 30, 25], [40, 10, 60, 20]])
    np.testing.assert_array_equal(record.labels, [1, 2])
    assert len(coco.record(2).labels) == 0
    assert [r.image_id for r in D.train_records(coco, num_gts=10)] == [1]
    assert coco.image_ids == [1, 2]


def test_categories_map_by_name_not_by_id(tmp_path):
    categories = [{"id": 7, "name": "hood"}, {"id": 3, "name": "front_bumper"}, {"id": 1, "name": "door"}]
    annotations = [polygon_annotation(1, 1, 7, [rect_polygon(0, 0, 10, 10)]),
                   polygon_annotation(2, 1, 3, [rect_polygon(20, 0, 30, 10)]),
                   polygon_annotation(3, 1, 1, [rect_polygon(40, 0, 50, 10)])]
    root = write_coco_dataset(tmp_path, _one_image(), annotations, categories)
    coco = D.CocoDataset(root, PARTS_CLASSES)
    np.testing.assert_array_equal(coco.record(1).labels, [5, 1, 4])
    assert coco.category_id_of(5) == 7 and coco.category_id_of(1) == 3 and coco.category_id_of(4) == 1
    assert coco.label_of(3) == 1
    with pytest.raises(KeyError, match="headlamp"):
        coco.category_id_of(PARTS_CLASSES.index("headlamp"))


# ---------------------------------------------------------------------------------------------------------------
# transforms

def _striped_image(height: int, width: int) -> np.ndarray:
    image = np.zeros((height, width, 3), np.uint8)
    image[:, :, 0] = np.arange(width, dtype=np.uint8)[None, :] * 2
    image[:, :, 1] = np.arange(height, dtype=np.uint8)[:, None] * 3
    image[:, :, 2] = 200
    return image


@pytest.mark.parametrize("flip", [False, True])
def test_keep_ratio_resize_flip_pad_by_hand(flip):
    image = _striped_image(50, 100)
    mask = np.zeros((1, 50, 100), np.uint8)
    mask[0, 5:25, 10:30] = 1
    boxes = np.array([[10, 5, 30, 25]], np.float32)
    img, meta, gt_bboxes, gt_labels, gt_valids, gt_masks = D.prepare_train_sample(
        image, boxes, np.array([3], np.int32), mask, _params(), flip)
    # scale = min(128/50, 128/100) = 1.28 -> content 64 x 128; flipped x1' = 128 - 38.4, x2' = 128 - 12.8
    np.testing.assert_allclose(meta, [50, 100, 64, 128, 1.28, 1.28], rtol=1e-6)
    expected_box = [89.6, 6.4, 115.2, 32.0] if flip else [12.8, 6.4, 38.4, 32.0]
    np.testing.assert_allclose(gt_bboxes[0], expected_box, rtol=1e-6)
    assert gt_bboxes.shape == (4, 4) and not gt_bboxes[1:].any()
    np.testing.assert_array_equal(gt_labels, [3, 0, 0, 0])
    np.testing.assert_array_equal(gt_valids, [True, False, False, False])
    assert img.shape == (3, 128, 128) and img.dtype == np.float32
    resized = cv2.resize(image, (128, 64), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    content = resized[:, ::-1] if flip else resized
    np.testing.assert_array_equal(img[:, :64, :], content.transpose(2, 0, 1))
    assert not img[:, 64:, :].any()
    assert gt_masks.shape == (4, 64, 64) and gt_masks.dtype == np.uint8 and not gt_masks[1:].any()
    tight = D.mask_tight_box(gt_masks[0]) * 2
    np.testing.assert_allclose(tight, expected_box, atol=2.0)


def test_stretch_when_keep_ratio_is_off():
    image = _striped_image(50, 100)
    mask = np.zeros((1, 50, 100), np.uint8)
    mask[0, 5:25, 10:30] = 1
    _, meta, gt_bboxes, _, _, gt_masks = D.prepare_train_sample(
        image, np.array([[10, 5, 30, 25]], np.float32), np.array([1], np.int32), mask,
        _params(keep_ratio=False, mask_divider=1), flip=False)
    np.testing.assert_allclose(meta, [50, 100, 128, 128, 2.56, 1.28], rtol=1e-6)
    np.testing.assert_allclose(gt_bboxes[0], [12.8, 12.8, 38.4, 64.0], rtol=1e-6)
    np.testing.assert_allclose(D.mask_tight_box(gt_masks[0]), [12.8, 12.8, 38.4, 64.0], atol=1.0)


@pytest.mark.parametrize("orig, expected", [
    ((480, 640), (800, 1066)),  # shorter side 800: scale 5/3, 640 * 5/3 = 1066.67 -> 1066
    ((640, 480), (1066, 800)),
    ((333, 1000), (443, 1333)),  # 800 / 333 would give a 2402-pixel long side: scale 1.333, 333 * 1.333 = 443.9
    ((1000, 333), (1333, 443)),
    ((800, 1333), (800, 1333)),
])
def test_short_long_resize_by_hand(orig, expected):
    assert D.rescale_size(*orig, 1344, 1344, True, "short_long", 800, 1333) == expected


def test_short_long_resize_that_overflows_the_canvas_names_both_sizes():
    with pytest.raises(ValueError, match=r"480x640 resizes to 800x1066, which does not fit the 832x1024 canvas"):
        D.rescale_size(480, 640, 832, 1024, True, "short_long", 800, 1333)


def test_prepare_image_with_the_short_long_rule():
    image = _striped_image(40, 50)
    params = _params(resize_rule="short_long", resize_short_side=64, resize_long_side=100)
    img, meta = D.prepare_image(image, params)
    # scale = min(64 / 40, 100 / 50) = 1.6 -> content 64 x 80 on the 128 x 128 canvas
    np.testing.assert_allclose(meta, [40, 50, 64, 80, 1.6, 1.6], rtol=1e-6)
    resized = cv2.resize(image, (80, 64), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    np.testing.assert_array_equal(img[:, :64, :80], resized.transpose(2, 0, 1))
    assert not img[:, 64:, :].any() and not img[:, :, 80:].any()


def test_normalized_chw_converts_to_rgb_before_mean_and_std_and_pads():
    pixel = np.array([[[10, 20, 30]]], np.uint8)
    rgb = D.normalized_chw(pixel, [1, 2, 3], [2, 2, 2], True, 2, 3)
    assert rgb.shape == (3, 2, 3) and rgb.dtype == np.float32
    np.testing.assert_allclose(rgb[:, 0, 0], [14.5, 9, 3.5])
    assert not rgb[:, 1, :].any() and not rgb[:, :, 1:].any()
    np.testing.assert_allclose(D.normalized_chw(pixel, [1, 2, 3], [2, 2, 2], False, 1, 1)[:, 0, 0], [4.5, 9, 13.5])


def test_downsample_masks_keeps_blocks_at_least_half_full():
    mask = np.array([[1, 1, 1, 0],
                     [0, 0, 0, 0],
                     [1, 1, 0, 0],
                     [1, 0, 0, 1]], np.uint8)[None]
    np.testing.assert_array_equal(D.downsample_masks(mask, 2)[0], [[1, 0], [1, 0]])
    np.testing.assert_array_equal(D.pad_masks(mask, 5, 6)[0, :4, :4], mask[0])
    assert D.pad_masks(mask, 5, 6).shape == (1, 5, 6) and D.pad_masks(mask, 5, 6)[0, 4:].sum() == 0


def test_num_gts_keeps_the_largest_and_warns_once(tmp_path, caplog):
    sides = [4, 12, 6, 10, 8]
    annotations = [polygon_annotation(i + 1, 1, 1, [rect_polygon(2 * i, 0, 2 * i + side, side)])
                   for i, side in enumerate(sides)]
    annotations.append(polygon_annotation(9, 2, 1, [rect_polygon(0, 0, 5, 5)]))
    images = _one_image(height=32, width=32) + _one_image("b.jpg", height=32, width=32, image_id=2)
    root = write_coco_dataset(tmp_path, images, annotations, categories_of(["front_bumper"]))
    coco = D.CocoDataset(root, PARTS_CLASSES)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="src.data"):
        records = D.train_records(coco, num_gts=3)
        source = D.TrainSource(records, _params(num_gts=3, img_height=64, img_width=64, mask_divider=1))
        samples = [source[key] for key in (0, 0, 2)]
    warnings = [r.getMessage() for r in caplog.records if "num_gts" in r.getMessage()]
    assert len(warnings) == 1 and "1 image(s)" in warnings[0] and "num_gts=3" in warnings[0]
    _, meta, gt_bboxes, _, gt_valids, gt_masks = samples[0]
    assert gt_valids.all() and meta[4] == meta[5] == 2.0
    kept = [1, 3, 4]  # sides 12, 10 and 8, in file order
    expected = np.array([[2 * i, 0, 2 * i + sides[i], sides[i]] for i in kept], np.float32) * 2
    np.testing.assert_allclose(gt_bboxes, expected, rtol=1e-6)
    np.testing.assert_array_equal(gt_masks.reshape(3, -1).sum(1), [(2 * sides[i]) ** 2 for i in kept])
    assert samples[2][4].tolist() == [True, False, False]


# ---------------------------------------------------------------------------------------------------------------
# sampling

@pytest.mark.parametrize("num_items", [9, 10])
def test_shards_do_not_overlap_and_cover_everything(num_items):
    shards = [D.ShardSampler(num_items, seed=5, shuffle=True, flip_ratio=0.5, num_shards=3, shard_id=k,
                             num_epochs=2) for k in range(3)]
    per_epoch = -(-num_items // 3)
    epochs = [[sorted((key // 2) % num_items for key in list(shard)[epoch * per_epoch:(epoch + 1) * per_epoch])
               for shard in shards] for epoch in range(2)]
    for per_shard in epochs:
        assert all(len(items) == -(-num_items // 3) for items in per_shard)
        union = set().union(*map(set, per_shard))
        assert union == set(range(num_items))
        assert sum(len(items) for items in per_shard) - num_items == (3 - num_items % 3) % 3
    assert epochs[0] == epochs[1]
    if num_items == 9:
        assert all(not set(a) & set(b) for i, a in enumerate(epochs[0]) for b in epochs[0][i + 1:])


def test_sampler_reshuffles_each_epoch_and_respects_flip_ratio():
    sampler = D.ShardSampler(50, seed=0, shuffle=True, flip_ratio=0.0, num_epochs=2)
    keys = list(sampler)
    assert list(sampler) == keys and len(sampler) == 100  # iterating has no side effect
    first, second = keys[:50], keys[50:]
    assert sorted(first) == [2 * i for i in range(50)] and sorted(second) == [2 * (50 + i) for i in range(50)]
    assert [key - 100 for key in second] != first
    assert all(key % 2 == 1 for key in D.ShardSampler(5, seed=0, shuffle=False, flip_ratio=1.0))
    assert list(D.ShardSampler(5, seed=0, shuffle=False, flip_ratio=0.0, num_shards=2, shard_id=1, pad=False)) == [2, 6]


def test_resumed_sampler_continues_the_stream_and_keeps_whole_batches():
    whole = D.ShardSampler(7, seed=3, shuffle=True, flip_ratio=0.5, num_epochs=3, epoch_length=6)
    keys = list(whole)
    assert len(keys) == 18
    assert [sorted({(key // 2) // 7 for key in keys[i:i + 6]}) for i in (0, 6, 12)] == [[0], [1], [2]]
    resumed = D.ShardSampler(7, seed=3, shuffle=True, flip_ratio=0.5, first_epoch=1, num_epochs=2, skip=4,
                             epoch_length=6)
    assert list(resumed) == keys[10:] and len(resumed) == 8
    with pytest.raises(ValueError, match="skip must be in"):
        D.ShardSampler(7, seed=3, shuffle=True, flip_ratio=0.5, skip=8)


# ---------------------------------------------------------------------------------------------------------------
# errors

def _write_json(root: Path, text: str) -> Path:
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "labels.json").write_text(text, encoding="utf-8")
    return root


def test_missing_paths_are_reported(tmp_path):
    with pytest.raises(D.DatasetError, match="does not exist"):
        D.resolve_dataset(tmp_path / "nope")
    with pytest.raises(D.DatasetError, match="no labels.json"):
        D.resolve_dataset(tmp_path)
    (tmp_path / "labels.json").write_text("{}")
    with pytest.raises(D.DatasetError, match="no image folder 'data/'"):
        D.resolve_dataset(tmp_path)
    other = tmp_path / "coco"
    (other / "annotations").mkdir(parents=True)
    for name in ("train2017", "val2017"):
        (other / "annotations" / f"instances_{name}.json").write_text("{}")
    with pytest.raises(D.DatasetError, match="several annotation files"):
        D.resolve_dataset(other)


def test_malformed_json_names_line_and_column(tmp_path):
    root = _write_json(tmp_path, '{"images": [],\n  "annotations": [,]}')
    with pytest.raises(D.DatasetError, match=r"labels.json: malformed JSON at line 2, column 19"):
        D.CocoDataset(root, PARTS_CLASSES)


def _dataset_with(tmp_path: Path, annotation_changes: dict, categories=None) -> Path:
    annotation = polygon_annotation(1, 1, 1, [rect_polygon(10, 5, 30, 25)])
    annotation.update(annotation_changes)
    return write_coco_dataset(tmp_path, _one_image(), [annotation], categories or categories_of(["door"]))


@pytest.mark.parametrize("changes, message", [
    ({"image_id": 99}, "annotation id 1 points at image_id 99"),
    ({"category_id": 42}, "annotation id 1 points at category_id 42"),
    ({"segmentation": {"points": [1, 2]}}, "annotation id 1: segmentation .* is neither"),
    ({"segmentation": "10 20 30"}, "unknown segmentation format"),
])
def test_bad_annotations_name_the_annotation_and_file(tmp_path, changes, message):
    root = _dataset_with(tmp_path, changes)
    with pytest.raises(D.DatasetError, match=message) as caught:
        D.CocoDataset(root, PARTS_CLASSES)
    assert str(root / "labels.json") in str(caught.value)


def test_unknown_category_names_are_listed(tmp_path):
    root = _dataset_with(tmp_path, {}, categories=[{"id": 1, "name": "fender"}, {"id": 2, "name": "trunk"}])
    with pytest.raises(D.DatasetError, match=r"annotated categories \['fender'\] are not in coco_classes"):
        D.CocoDataset(root, PARTS_CLASSES)


def test_missing_and_corrupt_images_name_the_file(tmp_path, tiny_cfg):
    root = _dataset_with(tmp_path, {})
    (root / "data" / "a.jpg").unlink()
    with pytest.raises(D.DatasetError, match=r"missing image file.*\n.*data/a.jpg"):
        D.CocoDataset(root, PARTS_CLASSES)
    (root / "data" / "a.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    with pytest.raises(D.DatasetError, match=r"cannot read image .*data/a.jpg"):
        D.read_image(root / "data" / "a.jpg")
    with pytest.raises(D.DatasetError, match=r"1 of 1 image file\(s\) are unusable:\n.*data/a.jpg: not a JPEG"):
        D.create_dataset(tiny_cfg, root, mode="eval")


def test_image_size_must_match_the_annotation(tmp_path):
    root = _dataset_with(tmp_path, {})
    cv2.imwrite(str(root / "data" / "a.jpg"), np.zeros((60, 100, 3), np.uint8))
    with pytest.raises(D.DatasetError, match=r"a.jpg is 60x100 .* says 50x100"):
        D.read_image(root / "data" / "a.jpg", 50, 100)


# ---------------------------------------------------------------------------------------------------------------
# the MindSpore pipeline

def test_create_dataset_train_layout(parts_dataset, tiny_cfg):
    root, data = parts_dataset
    dataset = D.create_dataset(tiny_cfg, root, mode="train")
    assert dataset.get_dataset_size() == len(data["images"]) // tiny_cfg.batch_size
    batches = list(dataset.create_tuple_iterator(output_numpy=True, num_epochs=1))
    assert len(batches) == 3
    img, meta, boxes, labels, valids, masks = batches[0]
    batch, num_gts = tiny_cfg.batch_size, tiny_cfg.num_gts
    assert img.shape == (batch, 3, 128, 128) and img.dtype == np.float32
    assert meta.shape == (batch, 6) and meta.dtype == np.float32
    assert boxes.shape == (batch, num_gts, 4) and boxes.dtype == np.float32
    assert labels.shape == (batch, num_gts) and labels.dtype == np.int32
    assert valids.shape == (batch, num_gts) and valids.dtype == np.bool_
    assert masks.shape == (batch, num_gts, 64, 64) and masks.dtype == np.uint8
    instances = sum(int(v.sum()) for _, _, _, _, v, _ in batches)
    assert instances == len(data["annotations"])
    for _, meta, boxes, labels, valids, masks in batches:
        assert ((labels[valids] >= 1) & (labels[valids] < tiny_cfg.num_classes)).all() and not labels[~valids].any()
        for b in range(batch):
            assert (boxes[b][valids[b]][:, 2] <= meta[b, 3]).all() and (boxes[b][valids[b]][:, 3] <= meta[b, 2]).all()
            for box, mask in zip(boxes[b][valids[b]], masks[b][valids[b]]):
                np.testing.assert_allclose(D.mask_tight_box(mask) * 2, box, atol=2.5)
    again = list(D.create_dataset(tiny_cfg, root, mode="train").create_tuple_iterator(output_numpy=True, num_epochs=1))
    for first, second in zip(batches, again):
        for column_a, column_b in zip(first, second):
            np.testing.assert_array_equal(column_a, column_b)


BIG_ID = 2 ** 33 + 7  # COCO-style ids can exceed 32 bits


def test_create_dataset_eval_keeps_empty_images_and_shards(tmp_path, tiny_cfg):
    root = tmp_path / "val"
    data = make_random_dataset(root, num_images=5, seed=3)
    data["images"].append({"id": BIG_ID, "file_name": "empty.jpg", "height": 40, "width": 30})
    write_coco_dataset(root, data["images"], data["annotations"], data["categories"])
    dataset = D.create_dataset(tiny_cfg, root, mode="eval")
    batches = list(dataset.create_tuple_iterator(output_numpy=True, num_epochs=1))
    assert [int(image_id[0]) for _, _, image_id in batches] == [1, 2, 3, 4, 5, BIG_ID]
    img, meta, image_id = batches[-1]
    assert img.shape == (1, 3, 128, 128) and image_id.dtype == np.int64
    np.testing.assert_allclose(meta[0], [40, 30, 128, 96, 3.2, 3.2], rtol=1e-6)
    shard_ids = [[int(ids[0]) for _, _, ids in D.create_dataset(tiny_cfg, root, mode="eval", num_shards=3, shard_id=k)
                  .create_tuple_iterator(output_numpy=True, num_epochs=1)] for k in range(3)]
    assert sorted(sum(shard_ids, [])) == [1, 2, 3, 4, 5, BIG_ID]
    assert all(len(ids) == 2 for ids in shard_ids)
    train = D.create_dataset(tiny_cfg, root, mode="train")
    assert train.get_dataset_size() == 5 // tiny_cfg.batch_size


def test_train_subset_keys(parts_dataset, tiny_cfg):
    root, _ = parts_dataset
    coco = D.CocoDataset(root, PARTS_CLASSES)
    assert [r.image_id for r in D.train_records(coco, 16, dataset_num=4)] == [1, 2, 3, 4]
    assert [r.image_id for r in D.train_records(coco, 16, dataset_divider=2)] == [1, 3, 5]
    assert [r.image_id for r in D.train_records(coco, 16, dataset_num=4, dataset_divider=2)] == [1, 3]
    tiny_cfg.train_dataset_num = 4
    assert D.create_dataset(tiny_cfg, root).get_dataset_size() == 2


def test_json_path_with_sibling_data_folder(parts_dataset):
    root, data = parts_dataset
    coco = D.CocoDataset(root / "labels.json", PARTS_CLASSES)
    assert coco.image_dir == root / "data" and coco.image_ids == [image["id"] for image in data["images"]]


# ---------------------------------------------------------------------------------------------------------------
# random crops at native resolution

def _coordinate_image(height: int, width: int) -> np.ndarray:
    """uint8 image whose channel 0 is the row and channel 1 the column (mod 256): a crop's offset can be read off."""
    rows, cols = np.mgrid[0:height, 0:width]
    return np.stack([rows % 256, cols % 256, np.full_like(rows, 7)], axis=2).astype(np.uint8)


def test_crop_visible_instances_by_hand():
    masks = np.zeros((4, 40, 40), np.uint8)
    masks[0, 0:10, 0:10] = 1        # 100 px, window rows/cols [5, 25): 5 x 5 = 25 inside -> 0.25
    masks[1, 10:20, 10:20] = 1      # fully inside -> 1.0
    masks[2, 20:30, 0:10] = 1       # rows 20..24 inside, cols 5..9 inside: 5 x 5 = 25 -> 0.25
    masks[3, 30:40, 30:40] = 1      # outside
    np.testing.assert_array_equal(D.crop_visible_instances(masks, 5, 5, 20, 20, 0.5), [1])
    np.testing.assert_array_equal(D.crop_visible_instances(masks, 5, 5, 20, 20, 0.25), [0, 1, 2])
    np.testing.assert_array_equal(D.crop_visible_instances(masks, 0, 0, 40, 40, 1.0), [0, 1, 2, 3])
    empty = np.zeros((1, 40, 40), np.uint8)
    assert D.crop_visible_instances(empty, 0, 0, 40, 40, 0.1).size == 0


def test_crop_instances_recomputes_boxes_from_the_visible_mask():
    image = _coordinate_image(40, 60)
    masks = np.zeros((3, 40, 60), np.uint8)
    masks[0, 12:18, 20:30] = 1                        # inside the window
    for step in range(30):                            # a thin diagonal line, 30 px, 20 of them in the window
        masks[1, 5 + step, 5 + step] = 1
    masks[2, 0:4, 50:60] = 1                          # outside
    labels = np.array([1, 2, 3], np.int32)
    cropped, boxes, kept_labels, kept_masks = D.crop_instances(image, labels, masks, 10, 15, 32, 32, 0.5)
    # window rows [10, 40) (only 30 rows exist), columns [15, 47)
    assert cropped.shape == (30, 32, 3)
    assert cropped[0, 0, 0] == 10 and cropped[0, 0, 1] == 15 and cropped[-1, -1, 0] == 39
    np.testing.assert_array_equal(kept_labels, [1, 2])
    # instance 0: rows 2..7, cols 5..14 in the window; the diagonal: pixels (r, c) = (5+s, 5+s) with s in 10..29
    np.testing.assert_array_equal(boxes, [[5, 2, 15, 8], [0, 5, 20, 25]])
    assert kept_masks.shape == (2, 30, 32) and kept_masks[0].sum() == 60 and kept_masks[1].sum() == 20
    _, _, labels_strict, _ = D.crop_instances(image, labels, masks, 10, 15, 32, 32, 0.7)
    np.testing.assert_array_equal(labels_strict, [1])


def test_crop_window_falls_back_to_an_instance_when_random_windows_miss():
    masks = np.zeros((1, 200, 200), np.uint8)
    masks[0, 190:196, 2:8] = 1                        # a 6 x 6 instance in a corner
    for seed in range(20):
        top, left = D.choose_crop_window(masks, 32, 32, 0.5, np.random.default_rng(seed))
        assert 0 <= top <= 168 and 0 <= left <= 168
        assert D.crop_visible_instances(masks, top, left, 32, 32, 0.5).tolist() == [0]
    # a window larger than the content starts at 0
    assert D.choose_crop_window(np.zeros((0, 20, 20), np.uint8), 32, 32, 0.5, np.random.default_rng(0)) == (0, 0)


def test_crop_window_background_fraction_keeps_the_first_window_whatever_it_holds():
    masks = np.zeros((1, 40, 40), np.uint8)
    masks[0, 0, 0] = 1                                # one pixel: only the window at (0, 0) of 21 x 21 holds it
    for seed in range(10):
        rng = np.random.default_rng(seed)
        expected = (int(rng.integers(0, 21)), int(rng.integers(0, 21))) if rng.random() < 0.5 else None
        window = D.choose_crop_window(masks, 20, 20, 0.5, np.random.default_rng(seed), background_fraction=0.5)
        if expected is not None:                     # the coin said 'anywhere': the first uniform draw stands
            assert window == expected
        else:
            assert window == (0, 0)
    # fraction 1: every window is the first uniform draw, so about 1 in 441 holds the pixel; fraction 0 (the
    # default, nothing drawn for it): every window holds it, in the same windows as before the option existed
    holding = [D.choose_crop_window(masks, 20, 20, 0.5, np.random.default_rng(seed), 1.0) == (0, 0)
               for seed in range(200)]
    assert sum(holding) <= 3
    for seed in range(5):
        assert (D.choose_crop_window(masks, 20, 20, 0.5, np.random.default_rng(seed), 0.0)
                == D.choose_crop_window(masks, 20, 20, 0.5, np.random.default_rng(seed)) == (0, 0))


def test_prepare_train_sample_background_crop_without_instances():
    image = _coordinate_image(100, 100)
    masks = np.zeros((1, 100, 100), np.uint8)
    masks[0, 0:4, 0:4] = 1
    params = _params(img_height=100, img_width=100, keep_ratio=False, mask_divider=1, crop_height=32,
                     crop_width=32, crop_min_visible=0.5, crop_background_fraction=1.0)
    seed, top, left = 0, 0, 0
    while max(top, left) <= 2:                       # a seed whose window misses most of the 4 x 4 instance
        seed += 1
        rng = np.random.default_rng(seed)
        rng.random()                                 # the coin, always 'anywhere' at fraction 1
        top, left = int(rng.integers(0, 69)), int(rng.integers(0, 69))
    img, _, gt_bboxes, _, gt_valids, gt_masks = D.prepare_train_sample(
        image, np.array([[0, 0, 4, 4]], np.float32), np.array([1], np.int32), masks, params, False,
        np.random.default_rng(seed))
    assert not gt_valids.any() and not gt_masks.any() and not gt_bboxes.any()
    assert img.shape == (3, 32, 32)
    channels = image[:, :, ::-1] if params.to_rgb else image
    normalised = (channels.astype(np.float32) - np.float32(params.img_mean)) / np.float32(params.img_std)
    np.testing.assert_allclose(img, normalised[top:top + 32, left:left + 32].transpose(2, 0, 1))


@pytest.mark.parametrize("flip", [False, True])
def test_prepare_train_sample_crops_at_native_resolution(flip):
    image = _coordinate_image(100, 100)
    masks = np.zeros((2, 100, 100), np.uint8)
    masks[0, 40:60, 30:50] = 1
    masks[1, 0:4, 0:4] = 1
    boxes = np.array([[30, 40, 50, 60], [0, 0, 4, 4]], np.float32)
    params = _params(img_height=128, img_width=128, keep_ratio=False, mask_divider=1, crop_height=64,
                     crop_width=64, crop_min_visible=0.5)
    img, meta, gt_bboxes, gt_labels, gt_valids, gt_masks = D.prepare_train_sample(
        image, boxes, np.array([1, 2], np.int32), masks, params, flip, np.random.default_rng(3))
    assert img.shape == (3, 64, 64) and gt_masks.shape == (4, 64, 64)
    resized = cv2.resize(image, (128, 128), interpolation=cv2.INTER_LINEAR)
    resized = resized[:, ::-1] if flip else resized
    top = int(np.flatnonzero((resized[:, :, 0] == img[0, 0, 0]).any(axis=1))[0])
    matches = [(top + r, left) for r in range(3) for left in range(65)
               if np.array_equal(resized[top + r:top + r + 64, left:left + 64].transpose(2, 0, 1), img)]
    assert len(matches) >= 1
    np.testing.assert_allclose(meta, [100, 100, 64, 64, 1.28, 1.28], rtol=1e-6)
    for index in np.flatnonzero(gt_valids):
        np.testing.assert_array_equal(gt_bboxes[index], D.mask_tight_box(gt_masks[index]))
    assert gt_valids.sum() >= 1 and set(gt_labels[gt_valids]) <= {1, 2}
    assert not gt_masks[~gt_valids].any()


def test_crop_requires_an_rng():
    params = _params(crop_height=64, crop_width=64)
    with pytest.raises(ValueError, match="rng"):
        D.prepare_train_sample(np.zeros((100, 100, 3), np.uint8), np.zeros((0, 4), np.float32),
                               np.zeros(0, np.int32), np.zeros((0, 100, 100), np.uint8), params, False)


def test_train_source_draws_crops_per_epoch_deterministically(parts_dataset):
    root, _ = parts_dataset
    coco = D.CocoDataset(root, PARTS_CLASSES)
    records = D.train_records(coco, num_gts=8)
    params = _params(img_height=128, img_width=128, crop_height=64, crop_width=64, num_gts=8)
    source = D.TrainSource(records, params, seed=4)
    first, again = source[0], D.TrainSource(records, params, seed=4)[0]
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    next_epoch = source[2 * len(records)]             # the same image and flip in the next epoch
    assert first[0].shape == next_epoch[0].shape == (3, 64, 64)
    different_windows = [not np.array_equal(source[2 * item][0], source[2 * (len(records) + item)][0])
                         for item in range(len(records))]
    assert any(different_windows)


def test_crop_fallback_places_the_instance_anywhere_in_the_window():
    masks = np.zeros((1, 400, 400), np.uint8)
    masks[0, 200:206, 150:156] = 1                    # a 6 x 6 instance; random 32 x 32 windows rarely hold it
    windows = {D.choose_crop_window(masks, 32, 32, 1.0, np.random.default_rng(seed)) for seed in range(40)}
    for top, left in windows:
        assert 174 <= top <= 200 and 124 <= left <= 150     # the whole box is inside the window
    assert len({top for top, _ in windows}) > 5 and len({left for _, left in windows}) > 5


def test_jitter_size_draws_a_log_uniform_factor():
    low, high = 0.8, 1.25
    factors = [D.jitter_size(512, 256, (low, high), np.random.default_rng(seed))[0] / 512 for seed in range(400)]
    assert 0.8 - 1e-3 <= min(factors) and max(factors) <= 1.25 + 1e-3
    # log-uniform on [0.8, 1.25] (symmetric in log): the median factor is 1 and half of them lie below 1
    assert abs(np.median(np.log(factors))) < 0.03
    draw = np.exp(np.random.default_rng(5).uniform(np.log(low), np.log(high)))      # the same draw, by hand
    assert D.jitter_size(512, 256, (low, high), np.random.default_rng(5)) == (round(512 * draw), round(256 * draw))


def test_jitter_size_of_one_draws_nothing():
    rng = np.random.default_rng(1)
    assert D.jitter_size(300, 200, (1.0, 1.0), rng) == (300, 200)
    assert rng.integers(0, 10 ** 9) == np.random.default_rng(1).integers(0, 10 ** 9)


def test_rotate90_by_hand():
    image = np.arange(6, dtype=np.uint8).reshape(2, 3, 1)      # [[0, 1, 2], [3, 4, 5]]
    masks = np.zeros((1, 2, 3), np.uint8)
    masks[0, 0, 2] = 1                                         # top-right pixel
    turned, turned_masks = D.rotate90(image, masks, 1)         # a quarter turn counter-clockwise
    np.testing.assert_array_equal(turned[:, :, 0], [[2, 5], [1, 4], [0, 3]])
    np.testing.assert_array_equal(turned_masks[0], [[1, 0], [0, 0], [0, 0]])     # top-right -> top-left
    np.testing.assert_array_equal(D.tight_boxes(turned_masks), [[0, 0, 1, 1]])
    upside_down, upside_down_masks = D.rotate90(image, masks, 2)
    np.testing.assert_array_equal(upside_down[:, :, 0], [[5, 4, 3], [2, 1, 0]])
    np.testing.assert_array_equal(D.tight_boxes(upside_down_masks), [[0, 1, 1, 2]])  # bottom-left pixel


def test_crop_rotate90_turns_image_and_masks_together():
    image = _coordinate_image(100, 100)
    masks = np.zeros((1, 100, 100), np.uint8)
    masks[0, 40:44, 20:60] = 1                                 # a 40 x 4 horizontal band
    boxes = np.array([[20, 40, 60, 44]], np.float32)
    plain = _params(img_height=128, img_width=128, keep_ratio=False, mask_divider=1, crop_height=64, crop_width=64)
    turned = _params(img_height=128, img_width=128, keep_ratio=False, mask_divider=1, crop_height=64, crop_width=64,
                     crop_rotate90=True)
    shapes = set()
    for seed in range(12):
        img, _, box, _, valid, mask = D.prepare_train_sample(image, boxes, np.array([1], np.int32), masks, turned,
                                                             False, np.random.default_rng(seed))
        unturned = D.prepare_train_sample(image, boxes, np.array([1], np.int32), masks, plain, False,
                                          np.random.default_rng(seed))
        matches = [k for k in range(4) if np.array_equal(np.rot90(unturned[0], k, axes=(1, 2)), img)
                   and np.array_equal(np.rot90(unturned[5], k, axes=(1, 2)), mask)]
        assert len(matches) == 1                               # the plain crop, turned k times (image and mask)
        assert valid[0]
        np.testing.assert_array_equal(box[0], D.mask_tight_box(mask[0]))
        width, height = box[0, 2] - box[0, 0], box[0, 3] - box[0, 1]
        shapes.add("wide" if width > height else "tall")
    assert shapes == {"wide", "tall"}                          # the band is seen lying and standing


def test_crop_scale_jitter_resizes_before_the_crop():
    image = _coordinate_image(100, 100)
    masks = np.zeros((1, 100, 100), np.uint8)
    masks[0, 40:60, 30:50] = 1
    boxes = np.array([[30, 40, 50, 60]], np.float32)
    params = _params(img_height=128, img_width=128, keep_ratio=False, mask_divider=1, crop_height=64, crop_width=64,
                     crop_scale_range=(0.5, 2.0))
    for seed in range(6):
        _, meta, box, _, valid, mask = D.prepare_train_sample(image, boxes, np.array([1], np.int32), masks, params,
                                                              False, np.random.default_rng(seed))
        size = round(128 * np.exp(np.random.default_rng(seed).uniform(np.log(0.5), np.log(2.0))))
        np.testing.assert_allclose(meta[4:], [size / 100, size / 100], rtol=1e-6)   # the jittered resize
        expected = cv2.resize(masks[0], (size, size), interpolation=cv2.INTER_NEAREST).sum()
        assert valid[0] and mask[0].sum() >= 0.5 * expected                         # kept: at least half visible
        np.testing.assert_array_equal(box[0], D.mask_tight_box(mask[0]))

"""Tests of src/eval_utils.py against a hand-made COCO ground truth."""
import numpy as np
import pytest
from pycocotools.coco import COCO

from src.eval_utils import (boxes_to_original, correlations, decode_mask, encode_mask, evaluate_predictions,
                            load_predictions, paste_mask, postprocess_image, save_json_atomic)

CATEGORY_IDS = (3, 7)  # deliberately not 1..K: results must carry the real ids


def rectangle_mask(height, width, x1, y1, x2, y2):
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[y1:y2, x1:x2] = 1
    return mask


def make_gt():
    """Two 60x80 images; image 1: a category-3 box and a category-7 box; image 2: one category-7 box."""
    objects = {1: [(3, (5, 5, 35, 25)), (7, (40, 20, 70, 55))], 2: [(7, (10, 10, 50, 40))]}
    images, annotations = [], []
    for image_id, items in objects.items():
        images.append({"id": image_id, "height": 60, "width": 80, "file_name": f"{image_id}.jpg"})
        for category_id, (x1, y1, x2, y2) in items:
            mask = rectangle_mask(60, 80, x1, y1, x2, y2)
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": category_id,
                                "segmentation": encode_mask(mask), "area": float(mask.sum()),
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "iscrowd": 0})
    coco = COCO()
    coco.dataset = {"images": images, "annotations": annotations,
                    "categories": [{"id": 3, "name": "door"}, {"id": 7, "name": "hood"}]}
    coco.createIndex()
    return coco, objects


def prediction(image_id, category_id, box, mask_box, score, mask_iou):
    x1, y1, x2, y2 = box
    return {"image_id": image_id, "category_id": category_id, "label": CATEGORY_IDS.index(category_id) + 1,
            "bbox": [x1, y1, x2 - x1, y2 - y1], "score": score, "mask_iou": mask_iou,
            "segmentation": encode_mask(rectangle_mask(60, 80, *mask_box))}


def perfect_predictions(objects):
    return [prediction(image_id, category_id, box, box, 0.9, 0.8)
            for image_id, items in objects.items() for category_id, box in items]


def test_perfect_predictions_give_ap_one_and_reload_gives_same_numbers(tmp_path):
    coco, objects = make_gt()
    predictions = perfect_predictions(objects)
    metrics = evaluate_predictions(coco, predictions)
    assert metrics["bbox_mAP"] == pytest.approx(1.0)
    assert metrics["seg_mAP"] == pytest.approx(1.0)
    assert metrics["segm_stats"][1] == pytest.approx(1.0)  # AP50
    assert metrics["segm_stats"][3] == pytest.approx(1.0)  # the 30x20 box is small (area < 32*32)
    assert metrics["segm_stats"][5] == -1.0  # no gt is large (area > 96*96): COCO reports -1
    path = save_json_atomic(predictions, tmp_path / "pred.json")
    reloaded = evaluate_predictions(coco, load_predictions(path))
    assert reloaded["bbox_stats"] == metrics["bbox_stats"]
    assert reloaded["segm_stats"] == metrics["segm_stats"]
    assert list(metrics["per_category"]["category_id"]) == [3, 7]
    assert np.allclose(metrics["per_category"]["segm_AP"], [1.0, 1.0])


def test_rescoring_by_mask_iou_reorders_detections():
    """Category 3 has one gt (image 1). Detection A: higher class score, bad mask (IoU 0.3), low predicted IoU;
    detection B: lower class score, perfect mask, high predicted IoU. Ranked by class score A comes first and is a
    false positive at every IoU threshold >= 0.5, so precision is 1/2 at full recall: AP = 0.5. Ranked by
    score * mask_iou B comes first: AP = 1."""
    coco, _ = make_gt()
    gt_box = (5, 5, 35, 25)
    # A's mask: a 9x20 strip inside the 30x20 gt -> IoU = 180 / 600 = 0.3
    bad = prediction(1, 3, gt_box, (5, 5, 14, 25), score=0.9, mask_iou=0.2)
    good = prediction(1, 3, gt_box, gt_box, score=0.8, mask_iou=0.95)
    metrics = evaluate_predictions(coco, [bad, good])
    per_category = metrics["per_category"].set_index("category_id")
    assert per_category.loc[3, "segm_AP"] == pytest.approx(1.0)
    assert per_category.loc[7, "segm_AP"] == pytest.approx(0.0)
    # category 7 has gt but no detection: AP 0; the means are over both categories
    assert metrics["seg_mAP"] == pytest.approx(0.5)
    assert metrics["seg_mAP_cls_score"] == pytest.approx(0.25)
    # predicted IoUs (0.2, 0.95) vs real IoUs (0.3, 1.0): same order
    assert metrics["mask_iou_pearson"] == pytest.approx(1.0)
    assert metrics["mask_iou_spearman"] == pytest.approx(1.0)


def test_per_category_ap50_ap75_and_recall_at_50_by_hand():
    """Category 3 (one 30x20 gt): a detection with the gt box and a 19x20 mask inside it, mask IoU 380 / 600 = 0.633:
    bbox AP 1 at every threshold; segm a match at IoU thresholds .50, .55, .60 only: AP 3/10, AP50 1, AP75 0, R50 1.
    Category 7 (two gts): a false positive in image 2 ranked above an exact hit in image 1, the gt of image 2 missed:
    R50 1/2; precision 1/2 up to recall 1/2 at each of the 101 recall points r <= 0.5 (51 of them), 0 beyond: AP at
    every threshold 51 * 0.5 / 101."""
    coco, _ = make_gt()
    gt_box = (5, 5, 35, 25)
    detections = [prediction(1, 3, gt_box, (5, 5, 24, 25), score=0.9, mask_iou=0.6),
                  prediction(2, 7, (60, 45, 75, 58), (60, 45, 75, 58), score=0.9, mask_iou=0.5),
                  prediction(1, 7, (40, 20, 70, 55), (40, 20, 70, 55), score=0.5, mask_iou=0.5)]
    table = evaluate_predictions(coco, detections)["per_category"].set_index("category_id")
    assert list(table.columns) == ["name"] + [f"{kind}_{metric}" for kind in ("bbox", "segm")
                                              for metric in ("AP", "AP50", "AP75", "R50")]
    assert table.loc[3, ["bbox_AP", "bbox_AP50", "bbox_AP75", "bbox_R50"]].tolist() == pytest.approx([1, 1, 1, 1])
    assert table.loc[3, ["segm_AP", "segm_AP50", "segm_AP75", "segm_R50"]].tolist() == pytest.approx([0.3, 1, 0, 1])
    half_precision = 51 * 0.5 / 101
    for kind in ("bbox", "segm"):
        assert table.loc[7, [f"{kind}_AP", f"{kind}_AP50", f"{kind}_AP75"]].tolist() == pytest.approx(
            [half_precision] * 3)
        assert table.loc[7, f"{kind}_R50"] == pytest.approx(0.5)


def test_correlations_against_hand_computed_values():
    predicted = np.array([0.1, 0.2, 0.3, 0.4])
    real = np.array([0.4, 0.3, 0.2, 0.1])
    assert correlations(predicted, real)["pearson"] == pytest.approx(-1.0)
    # monotone but non-linear: Spearman 1, Pearson < 1
    result = correlations(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 2.0, 3.0, 100.0]))
    assert result["spearman"] == pytest.approx(1.0)
    assert result["pearson"] < 0.9
    assert np.isnan(correlations(np.array([0.5]), np.array([0.5]))["pearson"])


def test_paste_mask_on_a_known_box():
    probs = np.zeros((28, 28), dtype=np.float32)
    probs[:, :14] = 0.9  # left half of the box
    pasted = paste_mask(probs, (10, 20, 38, 48), img_h=60, img_w=50, threshold=0.5)
    assert pasted.crop.shape == (28, 28) and (pasted.top, pasted.left) == (20, 10)  # only the box is held
    pasted = np.asarray(pasted)
    expected = rectangle_mask(60, 50, 10, 20, 24, 48)
    assert np.array_equal(pasted, expected)
    # a 56x56 box: the resized map doubles, still the left half
    pasted = np.asarray(paste_mask(probs, (0, 0, 56, 56), img_h=60, img_w=80, threshold=0.5))
    assert pasted[:56, :27].all() and not pasted[:, 29:].any() and not pasted[56:].any()
    # a box leaving the image is cut, not wrapped
    pasted = paste_mask(np.ones((28, 28), np.float32), (40, 50, 68, 78), img_h=60, img_w=50, threshold=0.5)
    assert np.array_equal(pasted, rectangle_mask(60, 50, 40, 50, 50, 60)) and pasted.crop.shape == (10, 10)
    outside = paste_mask(np.ones((28, 28), np.float32), (70, 70, 90, 90), img_h=60, img_w=50, threshold=0.5)
    assert outside.sum() == 0 and not np.asarray(outside).any()


def test_paste_mask_the_torchvision_way():
    ones = np.ones((28, 28), np.float32)
    # box (10, 20, 38, 48) widened by 30/28 about its centre (24, 34): (9, 19, 39, 49), both ends included, 31 x 31;
    # the 30 x 30 map with its zero border resized onto it: the outer pixel rows and columns fall below 0.5
    pasted = paste_mask(ones, (10, 20, 38, 48), img_h=60, img_w=50, threshold=0.5, mode="torchvision")
    assert (pasted.top, pasted.left) == (19, 9) and pasted.crop.shape == (31, 31)
    assert np.array_equal(pasted, rectangle_mask(60, 50, 10, 20, 39, 49))
    # (-0.5, 0.3, 20.2, 55.9) widens to (-1.24, -1.69, 20.94, 57.89), truncated towards zero: x -1..20, y -1..57
    # (22 x 59); rows -1 and 0 take 0 and 0.26 of the border, so the mask starts at y = 1; cut to the 50 x 20 image
    pasted = paste_mask(ones, (-0.5, 0.3, 20.2, 55.9), img_h=50, img_w=20, threshold=0.5, mode="torchvision")
    assert np.array_equal(pasted, rectangle_mask(50, 20, 0, 1, 20, 50))
    with pytest.raises(ValueError, match=r"mask_paste: expected one of \('box', 'subpixel', 'torchvision'\), "
                                         r"got 'nearest'"):
        paste_mask(ones, (10, 20, 38, 48), img_h=60, img_w=50, threshold=0.5, mode="nearest")


def test_paste_mask_subpixel_on_whole_and_half_pixel_boxes():
    probs = np.zeros((28, 28), dtype=np.float32)
    probs[:, :14] = 0.9
    # a 28x28 box on whole pixels: pixel p reads cell p - 10 exactly, the same mask as mode 'box'
    pasted = paste_mask(probs, (10, 20, 38, 48), img_h=60, img_w=50, threshold=0.5, mode="subpixel")
    assert np.array_equal(pasted, rectangle_mask(60, 50, 10, 20, 24, 48))
    # shifted right by half a pixel: pixel 10 reads cell -0.5 (half the zero border, half 1) = 0.5, pixel 38 reads
    # cell 27.5 = 0.5 as well: both fall at the threshold, so columns 11..37 stay; at 0.4 they join (10..38)
    ones = np.ones((28, 28), np.float32)
    pasted = paste_mask(ones, (10.5, 20, 38.5, 48), img_h=60, img_w=50, threshold=0.5, mode="subpixel")
    assert np.array_equal(pasted, rectangle_mask(60, 50, 11, 20, 38, 48))
    pasted = paste_mask(ones, (10.5, 20, 38.5, 48), img_h=60, img_w=50, threshold=0.4, mode="subpixel")
    assert np.array_equal(pasted, rectangle_mask(60, 50, 10, 20, 39, 48))
    # a box leaving the image is cut; a box outside it is empty
    pasted = paste_mask(ones, (40, 50, 68, 78), img_h=60, img_w=50, threshold=0.5, mode="subpixel")
    assert np.array_equal(pasted, rectangle_mask(60, 50, 40, 50, 50, 60))
    assert paste_mask(ones, (70, 70, 90, 90), img_h=60, img_w=50, threshold=0.5, mode="subpixel").sum() == 0


def _bilinear_with_zero_border(grid: np.ndarray, row: float, col: float) -> float:
    """One bilinear sample of ``grid`` at (row, col) in cell coordinates, cells outside the grid being zero."""
    top, left = int(np.floor(row)), int(np.floor(col))
    value = 0.0
    for r, wr in ((top, 1 - (row - top)), (top + 1, row - top)):
        for c, wc in ((left, 1 - (col - left)), (left + 1, col - left)):
            if 0 <= r < grid.shape[0] and 0 <= c < grid.shape[1]:
                value += wr * wc * grid[r, c]
    return value


@pytest.mark.parametrize("box", [(3.3, 7.8, 25.1, 19.6), (-4.2, 30.5, 12.7, 47.9), (20.25, 2.75, 48.5, 60.0)])
def test_paste_mask_subpixel_against_pixel_by_pixel_sampling(box):
    rng = np.random.default_rng(3)
    probs = rng.random((28, 28)).astype(np.float32)
    img_h, img_w = 50, 45
    expected = np.zeros((img_h, img_w), np.uint8)
    x1, y1, x2, y2 = box
    for y in range(img_h):
        for x in range(img_w):
            row = (y + 0.5 - y1) * 28 / (y2 - y1) - 0.5
            col = (x + 0.5 - x1) * 28 / (x2 - x1) - 0.5
            expected[y, x] = _bilinear_with_zero_border(probs, row, col) > 0.5
    pasted = paste_mask(probs, box, img_h=img_h, img_w=img_w, threshold=0.5, mode="subpixel")
    assert expected.any() and np.array_equal(np.asarray(pasted), expected)


def test_postprocess_rescales_boxes_clips_and_drops_invalid():
    img_meta = np.array([50, 100, 25, 50, 0.5, 0.5], dtype=np.float32)  # original 50x100 shown at half size
    bboxes = np.array([[5, 5, 19, 12], [40, 10, 60, 30], [0, 0, 1, 1]], dtype=np.float32)
    boxes = boxes_to_original(bboxes[:2], img_meta)
    assert np.allclose(boxes, [[10, 10, 38, 24], [80, 20, 100, 50]])  # second box clipped at x=100, y=50
    probs = np.ones((3, 28, 28), dtype=np.float32)
    detections = postprocess_image(bboxes, np.array([1, 2, 1]), np.array([0.3, 0.9, 0.99]), probs,
                                   np.array([0.5, 0.6, 0.7]), np.array([True, True, False]), img_meta, 0.5)
    assert [d["label"] for d in detections] == [2, 1]  # sorted by class score, the invalid row dropped
    assert detections[1]["mask"].shape == (50, 100)
    assert detections[1]["mask"].sum() == 28 * 14
    assert np.array_equal(decode_mask(encode_mask(detections[0]["mask"])), detections[0]["mask"])


def test_postprocess_clips_the_predicted_mask_iou_to_the_unit_interval():
    img_meta = np.array([32, 32, 32, 32, 1, 1], dtype=np.float32)
    bboxes = np.array([[0, 0, 8, 8], [8, 8, 16, 16], [16, 16, 24, 24]], dtype=np.float32)
    detections = postprocess_image(bboxes, np.array([1, 1, 1]), np.array([0.9, 0.8, 0.7]),
                                   np.ones((3, 28, 28), np.float32), np.array([1.7, -0.2, 0.4]),
                                   np.ones(3, bool), img_meta, 0.5)
    assert [d["mask_iou"] for d in detections] == [1.0, 0.0, pytest.approx(0.4)]


def test_load_predictions_rejects_wrong_content(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('[{"image_id": 1}]')
    with pytest.raises(ValueError, match="bad.json"):
        load_predictions(path)


class _Array:
    """The ``asnumpy()`` of a MindSpore tensor, for a stand-in dataset and network."""

    def __init__(self, value):
        self.value = np.asarray(value)

    def asnumpy(self):
        return self.value


class _Dataset:
    def __init__(self, image_ids):
        self.image_ids = image_ids

    def get_dataset_size(self):
        return len(self.image_ids)

    def create_tuple_iterator(self, num_epochs):
        for image_id in self.image_ids:
            yield _Array(np.zeros((1, 3, 8, 8))), _Array([[8, 8, 8, 8, 1, 1]]), _Array([image_id])


def _one_detection_net(img, img_meta):
    """One valid 4x4 detection (label 1, score 0.9, full 28x28 mask, predicted IoU 0.7) per image."""
    return (_Array([[[0, 0, 4, 4]]]), _Array([[1]]), _Array([[0.9]]), _Array(np.ones((1, 1, 28, 28))),
            _Array([[0.7]]), _Array([[True]]))


def test_run_inference_keeps_64_bit_ids_and_names_unknown_ones(caplog):
    from src.eval_utils import run_inference

    big = 2 ** 40 + 3
    with caplog.at_level("WARNING", logger="src.eval_utils"):
        predictions = run_inference(_one_detection_net, _Dataset([big, 5, big]), lambda label: 10 + label, 0.5,
                                    known_image_ids=[big], progress=False)
    assert [(p["image_id"], p["category_id"]) for p in predictions] == [(big, 11)]
    assert predictions[0]["bbox"] == [0.0, 0.0, 4.0, 4.0] and predictions[0]["mask_iou"] == pytest.approx(0.7)
    assert "1 image id(s) of the dataset are not in its annotation file" in caplog.text and "[5]" in caplog.text

"""multiclass_nms against a NumPy greedy per-class NMS, in GRAPH and PYNATIVE modes."""
import numpy as np
import pytest
import mindspore as ms
from mindspore import Tensor, nn

from src.blocks.nms import SortedNms
from src.blocks.utils import masked_mean, multiclass_nms


class NMSCell(nn.Cell):
    def __init__(self, score_thr, iou_threshold, max_per_img, max_candidates, min_bbox_size=0.0):
        super().__init__()
        self.nms = SortedNms(iou_threshold)
        self.settings = (score_thr, max_per_img, max_candidates, min_bbox_size)

    def construct(self, cls_scores, bboxes, roi_valids):
        score_thr, max_per_img, max_candidates, min_bbox_size = self.settings
        return multiclass_nms(cls_scores, bboxes, score_thr, self.nms, max_per_img, max_candidates, roi_valids,
                              min_bbox_size)


def iou(box, boxes):
    inter_w = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    inter_h = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = inter_w * inter_h
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / (area + areas - inter)


def reference_nms(cls_scores, bboxes, score_thr, iou_threshold, max_per_img, roi_valids):
    """Greedy NMS per class on the (box, class) pairs above score_thr; detections sorted by score."""
    detections = []
    for label in range(1, cls_scores.shape[1]):
        scores = cls_scores[:, label] * roi_valids
        boxes = bboxes[:, label - 1] if bboxes.ndim == 3 else bboxes
        order = [index for index in np.argsort(-scores) if scores[index] > score_thr]
        while order:
            best = order.pop(0)
            detections.append((scores[best], label, boxes[best]))
            order = [index for index in order if iou(boxes[best], boxes[[index]])[0] <= iou_threshold]
    detections.sort(key=lambda detection: -detection[0])
    return detections[:max_per_img]


def make_inputs():
    # rois 0-2 overlap heavily, roi 3 overlaps roi 0 by IoU 1/3, roi 4 is apart, roi 5 is padding
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [0, 1, 10, 11], [5, 0, 15, 10], [50, 50, 70, 60],
                      [0, 0, 10, 10]], np.float32)
    class_boxes = np.stack((boxes, boxes + np.array([0, 0, 2, 0], np.float32)), axis=1)
    cls_scores = np.array([[0.05, 0.90, 0.05], [0.10, 0.80, 0.10], [0.02, 0.28, 0.70], [0.32, 0.60, 0.08],
                           [0.49, 0.03, 0.48], [0.00, 0.99, 0.01]], np.float32)
    roi_valids = np.array([1, 1, 1, 1, 1, 0], bool)
    return cls_scores, class_boxes, roi_valids


def check_against_reference(outputs, reference, max_per_img):
    out_boxes, out_scores, out_labels, out_valids = (output.asnumpy() for output in outputs)
    assert out_boxes.shape == (max_per_img, 4) and out_labels.dtype == np.int32 and out_valids.dtype == np.bool_
    num_valid = len(reference)
    assert out_valids.tolist() == [True] * num_valid + [False] * (max_per_img - num_valid)
    np.testing.assert_allclose(out_scores[:num_valid], [detection[0] for detection in reference], rtol=1e-6)
    assert out_labels[:num_valid].tolist() == [detection[1] for detection in reference]
    np.testing.assert_allclose(out_boxes[:num_valid], np.stack([detection[2] for detection in reference]))
    assert np.all(out_scores[num_valid:] == 0) and np.all(out_boxes[num_valid:] == 0)


@pytest.mark.parametrize("mode", [ms.GRAPH_MODE, ms.PYNATIVE_MODE], ids=["graph", "pynative"])
# 0.35 separates the width conventions: rois 0 and 3 have IoU 50/150 with x2 - x1, 66/176 = 0.375 with x2 - x1 + 1
@pytest.mark.parametrize("iou_threshold", [0.3, 0.35, 0.5])
def test_matches_numpy_reference(mode, iou_threshold):
    ms.set_context(mode=mode, device_target="CPU")
    cls_scores, class_boxes, roi_valids = make_inputs()
    max_per_img = 8
    outputs = NMSCell(0.05, iou_threshold, max_per_img, 12)(Tensor(cls_scores), Tensor(class_boxes),
                                                            Tensor(roi_valids))
    reference = reference_nms(cls_scores, class_boxes, 0.05, iou_threshold, max_per_img, roi_valids)
    # hand check at 0.5: class 1 keeps roi 0 (0.9) and roi 3 (0.6, IoU 1/3 with roi 0); class 2 keeps roi 2 (0.7),
    # roi 4 (0.48) and roi 3 (0.08, IoU 63/177 with roi 2's 12-wide class-2 box); roi 1 (0.10) has IoU 99/141 with it
    if iou_threshold == 0.35:
        assert (0.6, 1) in [(round(float(d[0]), 2), d[1]) for d in reference]
    if iou_threshold == 0.5:
        assert [(round(float(d[0]), 2), d[1]) for d in reference] == [(0.9, 1), (0.7, 2), (0.6, 1), (0.48, 2),
                                                                        (0.08, 2)]
    check_against_reference(outputs, reference, max_per_img)


def test_class_agnostic_boxes_and_truncation():
    ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")
    cls_scores, class_boxes, roi_valids = make_inputs()
    shared_boxes = class_boxes[:, 0]
    outputs = NMSCell(0.05, 0.5, 3, 10)(Tensor(cls_scores), Tensor(shared_boxes), Tensor(roi_valids))
    check_against_reference(outputs, reference_nms(cls_scores, shared_boxes, 0.05, 0.5, 3, roi_valids), 3)


@pytest.mark.parametrize("mode", [ms.GRAPH_MODE, ms.PYNATIVE_MODE], ids=["graph", "pynative"])
def test_small_boxes_are_dropped_before_nms(mode):
    ms.set_context(mode=mode, device_target="CPU")
    cls_scores, class_boxes, roi_valids = make_inputs()
    # roi 0's class-1 box becomes 0.005 wide: dropped, so it no longer suppresses rois 1 and 2 in class 1
    class_boxes[0, 0] = [0, 0, 0.005, 10]
    outputs = NMSCell(0.05, 0.5, 8, 12, min_bbox_size=0.01)(Tensor(cls_scores), Tensor(class_boxes),
                                                            Tensor(roi_valids))
    kept = cls_scores.copy()
    kept[0, 1] = 0.0
    reference = reference_nms(kept, class_boxes, 0.05, 0.5, 8, roi_valids)
    assert (0.8, 1) in [(round(float(d[0]), 2), d[1]) for d in reference]
    check_against_reference(outputs, reference, 8)


def test_too_few_candidates_rejected():
    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    cls_scores, class_boxes, roi_valids = make_inputs()
    with pytest.raises(ValueError, match="max_per_img"):
        multiclass_nms(Tensor(cls_scores), Tensor(class_boxes), 0.05, SortedNms(0.5), 20, 100, Tensor(roi_valids))


def test_masked_mean_ignores_zero_weights_and_handles_none():
    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    values = Tensor(np.array([1.0, 3.0, np.nan, 10.0], np.float32))
    assert float(masked_mean(values, Tensor(np.array([1, 1, 0, 0], np.float32)))) == pytest.approx(2.0)
    assert float(masked_mean(values, Tensor(np.zeros(4, np.float32)))) == 0.0


def test_tied_scores_keep_the_right_boxes():
    ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")
    cls_scores, class_boxes, roi_valids = make_inputs()
    # roi 3's class-2 score ties with roi 1's (0.10): roi 1 is suppressed by roi 2, roi 3 is kept
    cls_scores[3] = [0.30, 0.60, 0.10]
    outputs = NMSCell(0.05, 0.5, 8, 12)(Tensor(cls_scores), Tensor(class_boxes), Tensor(roi_valids))
    out_boxes, out_scores, out_labels, out_valids = (output.asnumpy() for output in outputs)
    found = sorted((round(float(score), 4), int(label), tuple(box.tolist()))
                   for box, score, label in zip(out_boxes[out_valids], out_scores[out_valids], out_labels[out_valids]))
    expected = sorted((round(float(score), 4), int(label), tuple(box.tolist()))
                      for score, label, box in reference_nms(cls_scores, class_boxes, 0.05, 0.5, 8, roi_valids))
    assert found == expected
    assert (0.1, 2, (5.0, 0.0, 17.0, 10.0)) in found

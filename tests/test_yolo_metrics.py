"""IoU, NMS and VOC mAP on cases whose answers are known."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from yolo.metrics import (Detections, GroundTruth, average_precision, batched_nms, box_iou, mean_average_precision,
                          nms, voc_ap)


def random_truths(rng, images=12, classes=5):
    truths = []
    for _ in range(images):
        n = int(rng.integers(1, 6))
        xy = rng.uniform(0, 300, (n, 2))
        wh = rng.uniform(20, 100, (n, 2))
        truths.append(GroundTruth(np.hstack([xy, xy + wh]), rng.integers(0, classes, n), np.zeros(n, bool)))
    return truths


def test_iou_of_known_boxes():
    a = np.array([[0, 0, 10, 10]], float)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], float)
    assert box_iou(a, b)[0] == pytest.approx([1.0, 50 / 150, 0.0])


def test_nms_keeps_the_best_of_overlapping_boxes_per_class():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [0, 0, 10, 10]], float)
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    assert nms(boxes, scores, 0.5).tolist() == [0, 2]
    # the last box overlaps box 0 fully but belongs to another class
    assert batched_nms(boxes, scores, np.array([0, 0, 0, 1]), 0.5).tolist() == [0, 2, 3]


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_nms_output_has_no_pair_above_the_threshold(seed):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 50, (30, 2))
    boxes = np.hstack([xy, xy + rng.uniform(5, 30, (30, 2))])
    kept = nms(boxes, rng.uniform(size=30), 0.4)
    overlaps = box_iou(boxes[kept], boxes[kept])
    assert np.all(overlaps[~np.eye(len(kept), dtype=bool)] <= 0.4)


def test_ap_of_a_known_precision_recall_curve():
    # two positives; detections ranked TP, FP, TP: recall .5, .5, 1; precision 1, .5, .667
    recall, precision = np.array([0.5, 0.5, 1.0]), np.array([1.0, 0.5, 2 / 3])
    assert voc_ap(recall, precision) == pytest.approx(0.5 * 1.0 + 0.5 * 2 / 3)
    assert voc_ap(recall, precision, eleven_point=True) == pytest.approx((6 * 1.0 + 5 * 2 / 3) / 11)


def test_perfect_predictions_give_map_1():
    truths = random_truths(np.random.default_rng(0))
    detections = [Detections(t.boxes, np.linspace(1, 0.5, len(t.boxes)), t.classes) for t in truths]
    for eleven in (False, True):
        assert mean_average_precision(detections, truths, 5, eleven_point=eleven).map == pytest.approx(1.0)


def test_shuffled_boxes_give_map_near_0():
    rng = np.random.default_rng(1)
    truths = random_truths(rng, images=40)
    detections = []
    for t in truths:
        moved = t.boxes + rng.uniform(150, 250, (len(t.boxes), 1)) * rng.choice([-1, 1], (len(t.boxes), 1))
        detections.append(Detections(moved, rng.uniform(size=len(t.boxes)), rng.permutation(t.classes)))
    assert mean_average_precision(detections, truths, 5).map < 0.1


def test_difficult_objects_are_neither_true_nor_false_positives():
    box = np.array([[0, 0, 10, 10]], float)
    truth = [GroundTruth(np.vstack([box, box + 100]), np.array([0, 0]), np.array([False, True]))]
    found_both = [Detections(np.vstack([box, box + 100]), np.array([0.9, 0.95]), np.array([0, 0]))]
    assert average_precision(found_both, truth, 0) == pytest.approx(1.0)  # the difficult hit is ignored
    only_difficult = [GroundTruth(box, np.array([0]), np.array([True]))]
    assert average_precision(found_both, only_difficult, 0) is None  # no non-difficult object: no AP


def test_duplicate_detections_are_false_positives():
    box = np.array([[0, 0, 10, 10]], float)
    truth = [GroundTruth(box, np.array([0]), np.array([False]))]
    twice = [Detections(np.vstack([box, box]), np.array([0.9, 0.8]), np.array([0, 0]))]
    assert average_precision(twice, truth, 0) == pytest.approx(1.0)  # recall reached before the duplicate
    twice_first_wrong = [Detections(np.vstack([box + 50, box]), np.array([0.9, 0.8]), np.array([0, 0]))]
    assert average_precision(twice_first_wrong, truth, 0) == pytest.approx(0.5)

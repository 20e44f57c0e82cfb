"""Box overlap, non-maximum suppression and PASCAL VOC mean average precision, in numpy.

Boxes are (x1, y1, x2, y2) in pixels. VOC conventions: a detection matches the unmatched
ground truth of its class with the highest IoU >= 0.5 in its image, in descending score order;
a detection whose best match is a "difficult" object counts neither as true nor as false
positive, and difficult objects do not count towards recall. AP is the area under the
interpolated precision-recall curve: every recall point (VOC2010 and later, the default) or
the 11 recall levels 0, 0.1, ..., 1 (VOC2007).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def box_area(boxes: np.ndarray) -> np.ndarray:
    return np.clip(boxes[..., 2] - boxes[..., 0], 0, None) * np.clip(boxes[..., 3] - boxes[..., 1], 0, None)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in `a` (N, 4) with every box in `b` (M, 4): an (N, M) array."""
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=-1)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression: indices of the kept boxes, highest score first."""
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(best)
        order = rest[box_iou(boxes[best:best + 1], boxes[rest])[0] <= iou_threshold]
    return np.array(keep, dtype=np.int64)


def batched_nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou_threshold: float) -> np.ndarray:
    """NMS within each class separately; indices of the kept boxes, highest score first."""
    keep = np.concatenate([np.flatnonzero(classes == c)[nms(boxes[classes == c], scores[classes == c], iou_threshold)]
                           for c in np.unique(classes)] or [np.zeros(0, np.int64)])
    return keep[np.argsort(-scores[keep], kind="stable")]


def voc_ap(recall: np.ndarray, precision: np.ndarray, eleven_point: bool = False) -> float:
    """Area under the interpolated precision-recall curve (recall ascending)."""
    if eleven_point:
        return float(np.mean([precision[recall >= t].max() if np.any(recall >= t) else 0.0
                              for t in np.linspace(0, 1, 11)]))
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[0.0], precision, [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]  # precision envelope
    steps = np.flatnonzero(r[1:] != r[:-1])
    return float(np.sum((r[steps + 1] - r[steps]) * p[steps + 1]))


@dataclass(frozen=True)
class Detections:
    """What a detector says about one image."""

    boxes: np.ndarray  # (N, 4)
    scores: np.ndarray  # (N,)
    classes: np.ndarray  # (N,) int


@dataclass(frozen=True)
class GroundTruth:
    """The annotated objects of one image."""

    boxes: np.ndarray  # (M, 4)
    classes: np.ndarray  # (M,) int
    difficult: np.ndarray  # (M,) bool


@dataclass(frozen=True)
class MapResult:
    ap: dict[int, float]  # per class that has at least one non-difficult object
    map: float


def average_precision(detections: list[Detections], truths: list[GroundTruth], cls: int, iou_threshold: float = 0.5,
                      eleven_point: bool = False) -> float | None:
    """AP of one class over a set of images; None when the class has no non-difficult object."""
    positives = sum(int(np.sum((t.classes == cls) & ~t.difficult)) for t in truths)
    if positives == 0:
        return None
    records = [(score, image, box) for image, d in enumerate(detections)
               for box, score in zip(d.boxes[d.classes == cls], d.scores[d.classes == cls])]
    records.sort(key=lambda r: -r[0])
    matched = [np.zeros(int(np.sum(t.classes == cls)), bool) for t in truths]
    tp, fp = [], []
    for _, image, box in records:
        truth = truths[image]
        gt_boxes, difficult = truth.boxes[truth.classes == cls], truth.difficult[truth.classes == cls]
        overlaps = box_iou(box[None], gt_boxes)[0] if len(gt_boxes) else np.zeros(0)
        best = int(np.argmax(overlaps)) if overlaps.size else -1
        if best < 0 or overlaps[best] < iou_threshold:
            tp.append(0), fp.append(1)
        elif difficult[best]:
            continue  # neither true nor false positive
        elif not matched[image][best]:
            matched[image][best] = True
            tp.append(1), fp.append(0)
        else:
            tp.append(0), fp.append(1)  # a duplicate detection of a matched object
    if not tp:
        return 0.0
    tp_sum, fp_sum = np.cumsum(tp), np.cumsum(fp)
    recall = tp_sum / positives
    precision = tp_sum / np.maximum(tp_sum + fp_sum, 1e-12)
    return voc_ap(recall, precision, eleven_point)


def mean_average_precision(detections: list[Detections], truths: list[GroundTruth], num_classes: int,
                           iou_threshold: float = 0.5, eleven_point: bool = False) -> MapResult:
    """VOC mAP@iou_threshold over the classes that have objects in `truths`."""
    if len(detections) != len(truths):
        raise ValueError(f"{len(detections)} detection sets for {len(truths)} images")
    ap = {}
    for cls in range(num_classes):
        value = average_precision(detections, truths, cls, iou_threshold, eleven_point)
        if value is not None:
            ap[cls] = value
    return MapResult(ap, float(np.mean(list(ap.values()))) if ap else 0.0)

"""The YOLOv4-tiny training loss of the reference recipe.

Every ground-truth box goes to the one of the 6 anchors whose shape fits it best (IoU of
widths and heights); a level takes the box only if that anchor is in its mask, at the cell of
the box centre. Per level:
  box    (1 - CIoU) x (2 - w h / S^2), on positives (small boxes weigh more);
  object BCE: positives -> 1, other predictions -> 0 unless their box already overlaps a
         ground truth by more than `ignore_threshold` IoU (those are left out);
  class  BCE against one-hot targets smoothed to y (1 - eps) + eps / C, on positives.
The sum over levels is divided by the number of positives (at least 1).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .detect import decode_boxes, split_head
from .model import ANCHORS, MASKS, STRIDES


def pairwise_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    top_left = torch.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(-1)
    area = lambda x: (x[:, 2] - x[:, 0]).clamp(min=0) * (x[:, 3] - x[:, 1]).clamp(min=0)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter).clamp(min=1e-9)


def ciou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Complete IoU of matching rows of a and b (N, 4): IoU - centre distance^2 / enclosing
    diagonal^2 - alpha v, v measuring the aspect-ratio mismatch."""
    wa, ha = (a[:, 2] - a[:, 0]).clamp(min=1e-9), (a[:, 3] - a[:, 1]).clamp(min=1e-9)
    wb, hb = (b[:, 2] - b[:, 0]).clamp(min=1e-9), (b[:, 3] - b[:, 1]).clamp(min=1e-9)
    inter = ((torch.minimum(a[:, 2], b[:, 2]) - torch.maximum(a[:, 0], b[:, 0])).clamp(min=0)
             * (torch.minimum(a[:, 3], b[:, 3]) - torch.maximum(a[:, 1], b[:, 1])).clamp(min=0))
    iou = inter / (wa * ha + wb * hb - inter).clamp(min=1e-9)
    centre = ((a[:, 0] + a[:, 2] - b[:, 0] - b[:, 2]) ** 2 + (a[:, 1] + a[:, 3] - b[:, 1] - b[:, 3]) ** 2) / 4
    enclosing = ((torch.maximum(a[:, 2], b[:, 2]) - torch.minimum(a[:, 0], b[:, 0])) ** 2
                 + (torch.maximum(a[:, 3], b[:, 3]) - torch.minimum(a[:, 1], b[:, 1])) ** 2).clamp(min=1e-9)
    v = (4 / math.pi ** 2) * (torch.atan(wb / hb) - torch.atan(wa / ha)) ** 2
    with torch.no_grad():
        alpha = v / (1 - iou + v).clamp(min=1e-9)
    return iou - centre / enclosing - alpha * v


def best_anchors(wh: torch.Tensor) -> torch.Tensor:
    """Index (0-5) of the anchor whose shape overlaps each (w, h) most when centred together."""
    anchors = torch.tensor(ANCHORS, dtype=wh.dtype)
    inter = torch.minimum(wh[:, None, 0], anchors[None, :, 0]) * torch.minimum(wh[:, None, 1], anchors[None, :, 1])
    union = wh[:, None].prod(-1) + anchors[None].prod(-1) - inter
    return (inter / union).argmax(1)


def yolo_loss(outputs, targets: list[tuple[torch.Tensor, torch.Tensor]], num_classes: int,
              label_smoothing: float = 0.01, ignore_threshold: float = 0.5) -> tuple[torch.Tensor, dict[str, float]]:
    """`targets`: per image (boxes (n, 4) in input pixels, classes (n,)). Returns the loss and
    its box / object / class parts (already divided by the positives)."""
    box_loss = obj_loss = cls_loss = outputs[0].new_zeros(())
    positives = 0
    for level, output in enumerate(outputs):
        raw = split_head(output, num_classes)
        batch, _, h, w, _ = raw.shape
        stride, size = STRIDES[level], h * STRIDES[level]
        predicted = decode_boxes(raw, level)
        object_target = torch.zeros(raw.shape[:4])
        counted = torch.ones(raw.shape[:4], dtype=torch.bool)  # predictions that enter the object loss
        index, matched_boxes, matched_classes = [], [], []
        for b, (boxes, classes) in enumerate(targets):
            if len(boxes) == 0:
                continue
            with torch.no_grad():
                overlap = pairwise_iou(predicted[b].reshape(-1, 4), boxes).max(1).values.view(raw.shape[1:4])
            counted[b] &= overlap <= ignore_threshold
            anchors = best_anchors(boxes[:, 2:] - boxes[:, :2])
            for j, anchor in enumerate(anchors.tolist()):
                if anchor not in MASKS[level]:
                    continue
                cx, cy = (boxes[j, 0] + boxes[j, 2]) / 2, (boxes[j, 1] + boxes[j, 3]) / 2
                gx, gy = min(int(cx / stride), w - 1), min(int(cy / stride), h - 1)
                index.append((b, MASKS[level].index(anchor), gy, gx))
                matched_boxes.append(boxes[j])
                matched_classes.append(int(classes[j]))
        if index:
            b, a, gy, gx = (torch.tensor(v) for v in zip(*index))
            object_target[b, a, gy, gx] = 1.0
            counted[b, a, gy, gx] = True
            truth = torch.stack(matched_boxes)
            area = (truth[:, 2] - truth[:, 0]) * (truth[:, 3] - truth[:, 1]) / size ** 2
            box_loss = box_loss + ((1 - ciou(predicted[b, a, gy, gx], truth)) * (2 - area)).sum()
            smoothed = torch.full((len(index), num_classes), label_smoothing / num_classes)
            smoothed[torch.arange(len(index)), torch.tensor(matched_classes)] += 1 - label_smoothing
            cls_loss = cls_loss + F.binary_cross_entropy_with_logits(raw[b, a, gy, gx, 5:], smoothed, reduction="sum")
            positives += len(index)
        obj_loss = obj_loss + F.binary_cross_entropy_with_logits(raw[..., 4][counted], object_target[counted],
                                                                 reduction="sum")
    scale = max(positives, 1)
    parts = {name: float(value.detach()) / scale for name, value in (("box", box_loss), ("object", obj_loss),
                                                                    ("class", cls_loss))}
    return (box_loss + obj_loss + cls_loss) / scale, parts

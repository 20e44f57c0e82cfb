"""The YOLOX training loss: SimOTA label assignment, then box, objectness and class losses.

SimOTA picks the positive predictions of each image (no gradients flow through it):
  candidates  the centre prior: a prediction is a candidate for a ground truth when its cell
              centre lies inside the box or within CENTRE_RADIUS strides of the box centre; only
              those in both regions are proper, the others cost OUTSIDE_COST more;
  cost        class cost + 3 x IoU cost: the BCE of sqrt(class probability x objectness) against
              the one-hot class, and -log IoU of the predicted box with the ground truth;
  dynamic k   a ground truth takes its k cheapest candidates, k = max(1, int(sum of its
              TOP_IOUS largest IoUs)): well-predicted objects get more positives;
  conflicts   a prediction taken by several ground truths goes to the cheapest of them.
The losses, summed over the batch and divided by the number of positives (at least 1):
  box     BOX_WEIGHT x (1 - IoU^2) of each positive's box with its ground truth;
  object  BCE of every prediction's objectness: positives -> 1, all others -> 0;
  class   BCE of positives against the one-hot class scaled by the IoU of the prediction with its
          ground truth (YOLOX's IoU-aware target), smoothed as YOLOv4-tiny's to y (1 - eps) + eps / C.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .detect import decode_anchor_free_boxes, flatten_levels
from .loss import pairwise_iou

CENTRE_RADIUS = 2.5  # strides
IOU_COST_WEIGHT = 3.0
OUTSIDE_COST = 1e5  # added for a candidate outside the box or outside the centre region
TOP_IOUS = 10
BOX_WEIGHT = 5.0


@dataclass(frozen=True)
class Assignment:
    """The positives of one image: which predictions, matched to which ground truths."""

    predictions: torch.Tensor  # (P,) indices of the positive predictions
    truths: torch.Tensor  # (P,) index of the ground truth each is matched to
    ious: torch.Tensor  # (P,) IoU of its predicted box with that ground truth


def centre_prior(truth_boxes: torch.Tensor, centres: torch.Tensor,
                 strides: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(in box, in centre region), each (G, N): where each cell centre lies for each ground truth."""
    in_box = ((centres[None] > truth_boxes[:, None, :2]) & (centres[None] < truth_boxes[:, None, 2:])).all(-1)
    truth_centres = (truth_boxes[:, :2] + truth_boxes[:, 2:]) / 2
    offset = (centres[None] - truth_centres[:, None]).abs()
    in_centre = (offset < CENTRE_RADIUS * strides[None, :, None]).all(-1)
    return in_box, in_centre


def assignment_cost(cls_logits: torch.Tensor, obj_logits: torch.Tensor, ious: torch.Tensor,
                    truth_classes: torch.Tensor, proper: torch.Tensor) -> torch.Tensor:
    """Cost (G, M) of matching each ground truth to each of M candidates."""
    probability = (torch.sigmoid(cls_logits) * torch.sigmoid(obj_logits)[:, None]).sqrt()  # (M, C)
    one_hot = F.one_hot(truth_classes.long(), cls_logits.shape[1]).to(probability)  # (G, C)
    pairs = (len(one_hot), *probability.shape)
    class_cost = F.binary_cross_entropy(probability[None].expand(pairs), one_hot[:, None].expand(pairs),
                                        reduction="none").sum(-1)
    iou_cost = -torch.log(ious + 1e-8)
    return class_cost + IOU_COST_WEIGHT * iou_cost + OUTSIDE_COST * (~proper).to(ious)


def dynamic_k(ious: torch.Tensor) -> torch.Tensor:
    """How many predictions each ground truth takes: the integer part of the sum of its largest
    TOP_IOUS IoUs, at least 1."""
    top = ious.topk(min(TOP_IOUS, ious.shape[1]), dim=1).values
    return top.sum(1).int().clamp(min=1)


def match_cheapest(cost: torch.Tensor, ks: torch.Tensor) -> torch.Tensor:
    """Matching (G, M) bool: each ground truth its k cheapest candidates, then every candidate
    taken more than once kept only by its cheapest ground truth."""
    matching = torch.zeros_like(cost, dtype=torch.bool)
    for truth, k in enumerate(ks.tolist()):
        matching[truth, cost[truth].topk(k, largest=False).indices] = True
    contested = (matching.sum(0) > 1).nonzero().squeeze(1)
    if len(contested):
        cheapest = cost[:, contested].argmin(0)
        matching[:, contested] = False
        matching[cheapest, contested] = True
    return matching


@torch.no_grad()
def simota(boxes: torch.Tensor, obj_logits: torch.Tensor, cls_logits: torch.Tensor, centres: torch.Tensor,
           strides: torch.Tensor, truth_boxes: torch.Tensor, truth_classes: torch.Tensor) -> Assignment:
    """SimOTA for one image: N predictions (boxes (N, 4) in input pixels, objectness logits (N,),
    class logits (N, C)) at cell centres (N, 2) with strides (N,), G ground truths (boxes (G, 4),
    classes (G,))."""
    in_box, in_centre = centre_prior(truth_boxes, centres, strides)
    candidates = (in_box | in_centre).any(0).nonzero().squeeze(1)
    if len(candidates) == 0:
        empty = torch.zeros(0, dtype=torch.long)
        return Assignment(empty, empty, boxes.new_zeros(0))
    ious = pairwise_iou(truth_boxes, boxes[candidates])
    proper = (in_box & in_centre)[:, candidates]
    cost = assignment_cost(cls_logits[candidates], obj_logits[candidates], ious, truth_classes, proper)
    matching = match_cheapest(cost, dynamic_k(ious))
    positive = matching.any(0)
    truths = matching[:, positive].int().argmax(0)
    return Assignment(candidates[positive], truths, ious[truths, positive.nonzero().squeeze(1)])


def matched_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of matching rows of two (P, 4) box sets."""
    top_left = torch.maximum(a[:, :2], b[:, :2])
    bottom_right = torch.minimum(a[:, 2:], b[:, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(-1)
    union = (a[:, 2:] - a[:, :2]).prod(-1) + (b[:, 2:] - b[:, :2]).prod(-1) - inter
    return inter / union.clamp(min=1e-9)


def iou_loss(predicted: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """YOLOX's box loss of matching rows: 1 - IoU^2."""
    return 1 - matched_iou(predicted, truth) ** 2


def smooth_labels(target: torch.Tensor, label_smoothing: float) -> torch.Tensor:
    """Class targets (P, C) pulled towards 1 / C: y (1 - eps) + eps / C."""
    return target * (1 - label_smoothing) + label_smoothing / target.shape[-1]


def yolox_loss(outputs, targets: list[tuple[torch.Tensor, torch.Tensor]], num_classes: int,
               label_smoothing: float = 0.01) -> tuple[torch.Tensor, dict[str, float]]:
    """`outputs`: YOLOX's three raw maps; `targets`: per image (boxes (n, 4) in input pixels,
    classes (n,)). Returns the loss and its box / object / class parts (already divided by the
    positives), as :func:`yolo.loss.yolo_loss` does."""
    raw, cells, strides = flatten_levels(outputs)
    boxes = decode_anchor_free_boxes(raw, cells, strides)
    centres = (cells + 0.5) * strides[:, None]
    object_target = torch.zeros_like(raw[..., 4])
    box_loss = cls_loss = raw.new_zeros(())
    positives = 0
    for b, (truth_boxes, truth_classes) in enumerate(targets):
        if len(truth_boxes) == 0:
            continue
        truth_boxes = truth_boxes.to(raw)
        match = simota(boxes[b], raw[b, :, 4], raw[b, :, 5:], centres, strides, truth_boxes, truth_classes)
        object_target[b, match.predictions] = 1.0
        box_loss = box_loss + BOX_WEIGHT * iou_loss(boxes[b, match.predictions], truth_boxes[match.truths]).sum()
        one_hot = F.one_hot(truth_classes[match.truths].long(), num_classes).to(raw)
        class_target = smooth_labels(one_hot * match.ious[:, None], label_smoothing)
        cls_loss = cls_loss + F.binary_cross_entropy_with_logits(raw[b, match.predictions, 5:], class_target,
                                                                 reduction="sum")
        positives += len(match.predictions)
    obj_loss = F.binary_cross_entropy_with_logits(raw[..., 4], object_target, reduction="sum")
    scale = max(positives, 1)
    parts = {name: float(value.detach()) / scale for name, value in (("box", box_loss), ("object", obj_loss),
                                                                    ("class", cls_loss))}
    return (box_loss + obj_loss + cls_loss) / scale, parts

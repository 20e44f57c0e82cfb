"""From raw head outputs to detections: decoding with the cfg's anchors, masks and scale_x_y,
then score filtering and per-class NMS (ours, in yolo.metrics)."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from .data import letterbox, unletterbox
from .metrics import Detections, batched_nms
from .model import ANCHORS, ANCHORS_PER_SCALE, MASKS, SCALE_X_Y, STRIDES


Forward = Callable[[np.ndarray], list[np.ndarray]]  # (1, 3, S, S) float32 in [0, 1] -> raw head outputs


def split_head(output: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(B, 3 * (5 + C), H, W) -> (B, 3, H, W, 5 + C)."""
    b, _, h, w = output.shape
    return output.view(b, ANCHORS_PER_SCALE, 5 + num_classes, h, w).permute(0, 1, 3, 4, 2)


def decode_boxes(raw: torch.Tensor, level: int) -> torch.Tensor:
    """Box channels (B, 3, H, W, >= 4) of one level -> (x1, y1, x2, y2) in input pixels."""
    _, _, h, w, _ = raw.shape
    stride = STRIDES[level]
    anchors = torch.tensor([ANCHORS[i] for i in MASKS[level]], dtype=raw.dtype, device=raw.device)
    grid_y, grid_x = torch.meshgrid(torch.arange(h, device=raw.device), torch.arange(w, device=raw.device),
                                    indexing="ij")
    offset = (SCALE_X_Y - 1) / 2
    cx = (SCALE_X_Y * torch.sigmoid(raw[..., 0]) - offset + grid_x) * stride
    cy = (SCALE_X_Y * torch.sigmoid(raw[..., 1]) - offset + grid_y) * stride
    bw = torch.exp(raw[..., 2].clamp(max=8)) * anchors[:, 0].view(1, -1, 1, 1)
    bh = torch.exp(raw[..., 3].clamp(max=8)) * anchors[:, 1].view(1, -1, 1, 1)
    return torch.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], dim=-1)


def decode(outputs, num_classes: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Both heads -> boxes (B, N, 4), objectness (B, N) and class probabilities (B, N, C)."""
    boxes, objectness, classes = [], [], []
    for level, output in enumerate(outputs):
        raw = split_head(torch.as_tensor(output), num_classes)
        b = raw.shape[0]
        boxes.append(decode_boxes(raw, level).reshape(b, -1, 4))
        objectness.append(torch.sigmoid(raw[..., 4]).reshape(b, -1))
        classes.append(torch.sigmoid(raw[..., 5:]).reshape(b, -1, num_classes))
    return torch.cat(boxes, 1), torch.cat(objectness, 1), torch.cat(classes, 1)


def postprocess(outputs, num_classes: int, conf_threshold: float = 0.5, nms_iou: float = 0.3,
                max_detections: int = 300) -> list[Detections]:
    """Detections per image: score = objectness x best class probability, kept above
    `conf_threshold`, then NMS per class. Boxes stay in network-input pixels."""
    boxes, objectness, class_probs = decode(outputs, num_classes)
    best_prob, best_class = class_probs.max(-1)
    scores = (objectness * best_prob).detach().numpy()
    boxes, best_class = boxes.detach().numpy(), best_class.numpy()
    out = []
    for i in range(scores.shape[0]):
        keep = np.flatnonzero(scores[i] >= conf_threshold)
        kept = keep[batched_nms(boxes[i, keep], scores[i, keep], best_class[i, keep], nms_iou)][:max_detections]
        out.append(Detections(boxes[i, kept], scores[i, kept], best_class[i, kept]))
    return out


def to_input(image: np.ndarray) -> np.ndarray:
    """RGB uint8 (S, S, 3) -> float32 (1, 3, S, S) in [0, 1]."""
    return np.ascontiguousarray(image.transpose(2, 0, 1)[None], dtype=np.float32) / 255.0


def detect_image(forward: Forward, image: np.ndarray, input_size: int, num_classes: int, conf_threshold: float,
                 nms_iou: float) -> Detections:
    """Detections of one RGB image, letterboxed to the network input and mapped back to its pixels."""
    boxed, _, transform = letterbox(image, np.zeros((0, 4), np.float32), input_size)
    outputs = [torch.from_numpy(o) for o in forward(to_input(boxed))]
    found = postprocess(outputs, num_classes, conf_threshold, nms_iou)[0]
    height, width = image.shape[:2]
    return Detections(unletterbox(found.boxes, transform, width, height), found.scores, found.classes)

"""From raw head outputs to detections: decoding, then score filtering and per-class NMS (ours, in
yolo.metrics).

Two head layouts decode here. YOLOv4-tiny: two maps of 3 anchors x (5 + C) channels, decoded with
the cfg's anchors, masks and scale_x_y. YOLOX: three maps of 5 + C channels, one prediction per
cell (anchor-free), a box centre ``(t_x + c_x) * stride`` and size ``exp(t_w) * stride``. The
channel count tells them apart, so an exported model's outputs decode without knowing the model.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from .data import letterbox, unletterbox
from .metrics import Detections, batched_nms
from .model import ANCHORS, ANCHORS_PER_SCALE, MASKS, SCALE_X_Y, STRIDES
from .yolox import STRIDES as ANCHOR_FREE_STRIDES


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


def is_anchor_free(outputs, num_classes: int) -> bool:
    """True for YOLOX's head layout (5 + C channels a map), False for YOLOv4-tiny's (3 x (5 + C))."""
    channels = outputs[0].shape[1]
    if channels not in (5 + num_classes, ANCHORS_PER_SCALE * (5 + num_classes)):
        raise ValueError(f"a head output has {channels} channels: neither YOLOX's {5 + num_classes} nor "
                         f"YOLOv4-tiny's {ANCHORS_PER_SCALE * (5 + num_classes)} for {num_classes} classes")
    return channels == 5 + num_classes


def flatten_levels(outputs) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """YOLOX's maps (B, 5 + C, H, W) at strides 8, 16, 32 -> predictions (B, N, 5 + C), one a cell,
    level after level in row-major order, with the cell of each (N, 2: x, y) and its stride (N,)."""
    raws, cells, strides = [], [], []
    for output, stride in zip(outputs, ANCHOR_FREE_STRIDES):
        b, channels, h, w = output.shape
        raws.append(output.permute(0, 2, 3, 1).reshape(b, h * w, channels))
        grid_y, grid_x = torch.meshgrid(torch.arange(h, device=output.device), torch.arange(w, device=output.device),
                                        indexing="ij")
        cells.append(torch.stack([grid_x, grid_y], dim=-1).reshape(-1, 2).to(output.dtype))
        strides.append(torch.full((h * w,), float(stride), dtype=output.dtype, device=output.device))
    return torch.cat(raws, 1), torch.cat(cells), torch.cat(strides)


def decode_anchor_free_boxes(raw: torch.Tensor, cells: torch.Tensor, strides: torch.Tensor) -> torch.Tensor:
    """Box channels (..., N, >= 4) of YOLOX predictions -> (x1, y1, x2, y2) in input pixels."""
    centre = (raw[..., :2] + cells) * strides[:, None]
    size = torch.exp(raw[..., 2:4].clamp(max=8)) * strides[:, None]
    return torch.cat([centre - size / 2, centre + size / 2], dim=-1)


def encode_anchor_free_boxes(boxes: torch.Tensor, cells: torch.Tensor, strides: torch.Tensor) -> torch.Tensor:
    """The inverse: (x1, y1, x2, y2) boxes (..., N, 4) -> the box channels that decode to them at
    those cells."""
    centre = (boxes[..., :2] + boxes[..., 2:]) / 2
    size = boxes[..., 2:] - boxes[..., :2]
    return torch.cat([centre / strides[:, None] - cells, torch.log(size / strides[:, None])], dim=-1)


def decode_anchor_free(outputs) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """YOLOX's three maps -> boxes (B, N, 4), objectness (B, N) and class probabilities (B, N, C)."""
    raw, cells, strides = flatten_levels(outputs)
    return decode_anchor_free_boxes(raw, cells, strides), torch.sigmoid(raw[..., 4]), torch.sigmoid(raw[..., 5:])


def decode(outputs, num_classes: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All heads (YOLOv4-tiny's or YOLOX's) -> boxes (B, N, 4), objectness (B, N) and class
    probabilities (B, N, C)."""
    outputs = [torch.as_tensor(output) for output in outputs]
    if is_anchor_free(outputs, num_classes):
        return decode_anchor_free(outputs)
    boxes, objectness, classes = [], [], []
    for level, output in enumerate(outputs):
        raw = split_head(output, num_classes)
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

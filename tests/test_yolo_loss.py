"""Decoding, post-processing and the training loss."""

import numpy as np
import pytest
import torch

from yolo.detect import decode, postprocess
from yolo.loss import best_anchors, ciou, yolo_loss
from yolo.model import ANCHORS, MASKS, YoloV4Tiny

C = 20


def zero_outputs(size=416, batch=1):
    return [torch.zeros(batch, 3 * (5 + C), size // s, size // s) for s in (32, 16)]


def test_zero_logits_decode_to_anchor_boxes_at_cell_centres():
    boxes, objectness, probs = decode(zero_outputs(), C)
    assert boxes.shape == (1, 3 * 13 * 13 + 3 * 26 * 26, 4) and torch.allclose(objectness, torch.tensor(0.5))
    first = boxes[0, 0]  # level 0, anchor MASKS[0][0], cell (0, 0): centre (16, 16) at stride 32
    w, h = ANCHORS[MASKS[0][0]]
    assert first.tolist() == pytest.approx([16 - w / 2, 16 - h / 2, 16 + w / 2, 16 + h / 2], abs=1e-4)


def test_postprocess_finds_one_confident_box_of_the_right_class():
    outputs = zero_outputs()
    head = outputs[0].view(1, 3, 5 + C, 13, 13)
    head[:, :, 4] = -10.0  # no object anywhere ...
    head[0, 1, 4, 6, 7] = 10.0  # ... but one, anchor 1 of level 0, at cell (y=6, x=7)
    head[0, 1, 5 + 3, 6, 7] = 10.0  # class 3
    outputs[1][:, 4::5 + C] = -10.0
    detections = postprocess(outputs, C, conf_threshold=0.5)
    assert len(detections[0].boxes) == 1 and detections[0].classes.tolist() == [3]
    centre = (detections[0].boxes[0, :2] + detections[0].boxes[0, 2:]) / 2
    assert centre == pytest.approx([7.5 * 32, 6.5 * 32], abs=1e-3)


def test_ciou_and_anchor_assignment():
    a = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 10]])
    b = torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 40]])
    values = ciou(a, b)
    assert values[0] == pytest.approx(1.0) and values[1] < 0
    assert best_anchors(torch.tensor([[10.0, 14], [340, 320], [80, 80]])).tolist() == [0, 5, 3]


def test_loss_decreases_when_training_on_two_images():
    torch.manual_seed(0)
    model = YoloV4Tiny(C)
    images = torch.rand(2, 3, 128, 128)
    targets = [(torch.tensor([[10.0, 20, 60, 70]]), torch.tensor([4])),
               (torch.tensor([[30.0, 30, 120, 100], [5, 5, 25, 30]]), torch.tensor([1, 7]))]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(8):
        loss, parts = yolo_loss(model(images), targets, C)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert np.isfinite(losses).all() and losses[-1] < 0.5 * losses[0]
    assert set(parts) == {"box", "object", "class"}


def test_an_image_without_objects_only_has_object_loss():
    torch.manual_seed(0)
    outputs = [o.normal_() for o in zero_outputs(128)]
    loss, parts = yolo_loss(outputs, [(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))], C)
    assert parts["box"] == 0 and parts["class"] == 0 and parts["object"] > 0 and float(loss) == pytest.approx(
        parts["object"])

"""YOLOv4-tiny as networks minansor tunes, registered as its built-in models `yolov4-tiny` and
`yolov4-tiny-int8` (the `minansor.models` entry points in pyproject.toml).

The weights are seeded random ones, BatchNorm statistics included: latency does not depend on
the values, and the accuracy pipeline (training, mAP) is the rest of this package.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np
import torch

from minansor.network.models import from_onnx, from_torch, randomize_batchnorm
from minansor.network.graph import Network

from .model import YoloV4Tiny
from .quantize import export_onnx, output_names, quantize_int8


def _random_yolov4_tiny(seed: int):
    """YOLOv4-tiny for 20 classes with seeded random weights and BatchNorm statistics."""
    torch.manual_seed(seed)
    model = YoloV4Tiny(num_classes=20)
    randomize_batchnorm(model, seed)
    return model


def yolov4_tiny(seed: int = 0) -> Network:
    """YOLOv4-tiny at 416x416 with seeded random weights."""
    return from_torch(_random_yolov4_tiny(seed), [np.zeros((1, 3, 416, 416), np.float32)], "yolov4-tiny")


def yolov4_tiny_int8(seed: int = 0) -> Network:
    """The same network quantized to int8 (PT2E, calibrated on seeded random images) and imported
    from its QDQ ONNX export, checked against onnxruntime."""
    rng = np.random.default_rng(seed)
    model = _random_yolov4_tiny(seed)
    quantized = quantize_int8(model, [rng.random((1, 3, 416, 416), dtype=np.float32) for _ in range(4)])
    with tempfile.TemporaryDirectory() as scratch:
        path = os.path.join(scratch, "yolov4-tiny-int8.onnx")
        export_onnx(quantized, path, 416, output_names(model))
        return from_onnx(path)

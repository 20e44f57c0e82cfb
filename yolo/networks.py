"""The study's networks as networks minansor tunes, registered as its built-in models
`yolov4-tiny`, `yolov4-tiny-int8`, `yolox-s` and `yolox-s-int8` (the `minansor.models` entry
points in pyproject.toml): 416x416, 20 classes (VOC).

The weights are seeded random ones, BatchNorm statistics included: latency does not depend on
the values, and the accuracy pipeline (training, mAP) is the rest of this package. The int8
variants are quantized as `python -m yolo.quantize` does a trained checkpoint (PT2E, calibrated
here on seeded random images) and imported from their QDQ ONNX export, so their reference is
onnxruntime.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np
import torch

from minansor.network.graph import Network
from minansor.network.models import from_onnx, from_torch, randomize_batchnorm

from .model import YoloV4Tiny, build_model
from .quantize import export_onnx, output_names, quantize_int8
from .yolox import YoloX

INPUT_SIZE = 416
NUM_CLASSES = 20
CALIBRATION_IMAGES = 4


def random_model(architecture: str, seed: int) -> YoloV4Tiny | YoloX:
    """A network of yolo.model.ARCHITECTURES for 20 classes with seeded random weights and
    BatchNorm statistics, in eval mode."""
    torch.manual_seed(seed)
    model = build_model(architecture, NUM_CLASSES)
    randomize_batchnorm(model, seed)
    return model.eval()


def fp32_network(architecture: str, seed: int, input_size: int = INPUT_SIZE) -> Network:
    """The network imported from PyTorch (torch.export), PyTorch its reference."""
    return from_torch(random_model(architecture, seed), [np.zeros((1, 3, input_size, input_size), np.float32)],
                      architecture)


def int8_network(architecture: str, seed: int, input_size: int = INPUT_SIZE) -> Network:
    """The network quantized to int8 (PT2E, calibrated on seeded random images) and imported from
    its QDQ ONNX export, onnxruntime its reference."""
    model = random_model(architecture, seed)
    rng = np.random.default_rng(seed)
    quantized = quantize_int8(model, [rng.random((1, 3, input_size, input_size), dtype=np.float32)
                                      for _ in range(CALIBRATION_IMAGES)])
    with tempfile.TemporaryDirectory() as scratch:
        path = os.path.join(scratch, f"{architecture}-int8.onnx")
        export_onnx(quantized, path, input_size, output_names(model))
        return from_onnx(path)


def yolov4_tiny(seed: int = 0) -> Network:
    """YOLOv4-tiny at 416x416 with seeded random weights."""
    return fp32_network("yolov4-tiny", seed)


def yolov4_tiny_int8(seed: int = 0) -> Network:
    """The same network quantized to int8, checked against onnxruntime."""
    return int8_network("yolov4-tiny", seed)


def yolox_s(seed: int = 0) -> Network:
    """YOLOX-s at 416x416 with seeded random weights."""
    return fp32_network("yolox-s", seed)


def yolox_s_int8(seed: int = 0) -> Network:
    """The same network quantized to int8, checked against onnxruntime."""
    return int8_network("yolox-s", seed)

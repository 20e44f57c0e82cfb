"""Darknet interoperability for :class:`yolo.model.YoloV4Tiny`: ``.cfg`` text and ``.weights`` files.

A ``.weights`` file is a flat list of float32 values with no names or shapes, so it can only be read
against an architecture that is known to match. The cfg functions exist to make that match
checkable: the model is compared section by section with a parsed cfg, and the weight size is
computed from the model before anything is read.

``.weights`` layout (little-endian): int32 ``major``, ``minor``, ``revision``; ``seen`` (images seen
in training) as uint64 when ``major * 10 + minor >= 2``, else int32; then, for each conv in cfg
order, either ``beta, gamma, running_mean, running_var`` (batch-normalised convs) or ``bias``,
followed by the conv weights in OIHW order.
"""

from __future__ import annotations

import dataclasses
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from yolo.model import ANCHORS, MASKS, SCALE_X_Y, ConvBlock, YoloV4Tiny

Section = dict[str, str]
"""One cfg section: its ``type`` (the bracketed name, e.g. ``convolutional``) and its options."""

Shape = tuple[int, int, int]
"""Feature map shape as (channels, height, width)."""


# ---------------------------------------------------------------------------------------------
# cfg text
# ---------------------------------------------------------------------------------------------


def cfg_sections(num_classes: int, input_size: int = 416) -> list[Section]:
    """The sections of darknet's ``yolov4-tiny.cfg`` adapted to ``num_classes``.

    Only the class count, the two head widths and the schedule length change with the class count.
    The schedule follows darknet's advice for custom data: ``max_batches = max(6000, 2000 *
    classes)`` with learning-rate steps at 80 % and 90 % of it.
    """
    max_batches = max(6000, 2000 * num_classes)
    sections: list[Section] = [
        {
            "type": "net",
            "batch": "64",
            "subdivisions": "1",
            "width": str(input_size),
            "height": str(input_size),
            "channels": "3",
            "momentum": "0.9",
            "decay": "0.0005",
            "angle": "0",
            "saturation": "1.5",
            "exposure": "1.5",
            "hue": ".1",
            "learning_rate": "0.00261",
            "burn_in": "1000",
            "max_batches": str(max_batches),
            "policy": "steps",
            "steps": f"{max_batches * 8 // 10},{max_batches * 9 // 10}",
            "scales": ".1,.1",
        }
    ]
    head_filters = 3 * (5 + num_classes)

    def conv(filters: int, size: int, stride: int = 1, head: bool = False) -> None:
        section: Section = {"type": "convolutional"}
        if not head:
            section["batch_normalize"] = "1"
        section |= {
            "filters": str(filters),
            "size": str(size),
            "stride": str(stride),
            "pad": "1",
            "activation": "linear" if head else "leaky",
        }
        sections.append(section)

    def route(layers: str, **options: str) -> None:
        sections.append({"type": "route", "layers": layers, **options})

    def yolo(mask: tuple[int, ...]) -> None:
        sections.append(
            {
                "type": "yolo",
                "mask": ",".join(map(str, mask)),
                "anchors": ", ".join(f"{w},{h}" for w, h in ANCHORS),
                "classes": str(num_classes),
                "num": str(len(ANCHORS)),
                "jitter": ".3",
                "scale_x_y": str(SCALE_X_Y),
                "cls_normalizer": "1.0",
                "iou_normalizer": "0.07",
                "iou_loss": "ciou",
                "ignore_thresh": ".7",
                "truth_thresh": "1",
                "random": "0",
                "resize": "1.5",
                "nms_kind": "greedynms",
                "beta_nms": "0.6",
            }
        )

    conv(32, 3, 2)  # 0
    conv(64, 3, 2)  # 1
    for channels in (64, 128, 256):  # 2-9, 10-17, 18-25
        conv(channels, 3)
        route("-1", groups="2", group_id="1")
        conv(channels // 2, 3)
        conv(channels // 2, 3)
        route("-1,-2")
        conv(channels, 1)
        route("-6,-1")
        sections.append({"type": "maxpool", "size": "2", "stride": "2"})
    conv(512, 3)  # 26
    conv(256, 1)  # 27
    conv(512, 3)  # 28
    conv(head_filters, 1, head=True)  # 29
    yolo(MASKS[0])  # 30
    route("-4")  # 31
    conv(128, 1)  # 32
    sections.append({"type": "upsample", "stride": "2"})  # 33
    route("-1, 23")  # 34
    conv(256, 3)  # 35
    conv(head_filters, 1, head=True)  # 36
    yolo(MASKS[1])  # 37
    return sections


def format_cfg(sections: list[Section]) -> str:
    """Render sections as darknet cfg text."""
    blocks = []
    for section in sections:
        lines = [f"[{section['type']}]"]
        lines += [f"{key}={value}" for key, value in section.items() if key != "type"]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def write_cfg(path: str | Path, num_classes: int, input_size: int = 416) -> None:
    """Write a yolov4-tiny cfg for ``num_classes``, so that darknet tools can use our weights."""
    Path(path).write_text(format_cfg(cfg_sections(num_classes, input_size)))


def parse_cfg_text(text: str) -> list[Section]:
    """Parse darknet cfg text; ``#`` and ``;`` start comments, keys and values are stripped."""
    sections: list[Section] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            if not line.endswith("]"):
                raise ValueError(f"cfg line {number}: unterminated section header {raw!r}")
            sections.append({"type": line[1:-1].strip()})
        elif "=" in line:
            if not sections:
                raise ValueError(f"cfg line {number}: option before the first section: {raw!r}")
            key, value = line.split("=", 1)
            sections[-1][key.strip()] = value.strip()
        else:
            raise ValueError(f"cfg line {number}: expected 'key=value' or '[section]', got {raw!r}")
    return sections


def parse_cfg(path: str | Path) -> list[Section]:
    """Parse a darknet cfg file into its sections, ``[net]`` first."""
    return parse_cfg_text(Path(path).read_text())


# ---------------------------------------------------------------------------------------------
# Shapes through a cfg, and the check against the model
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerInfo:
    """One darknet layer with the shapes it sees, as darknet prints them when loading a cfg."""

    index: int
    kind: str
    detail: str
    input_shape: Shape | None
    output_shape: Shape
    flops: int


def _int(section: Section, key: str, default: int | None = None) -> int:
    if key in section:
        return int(section[key])
    if default is None:
        raise ValueError(f"[{section['type']}] section without '{key}'")
    return default


def _route_sources(section: Section, index: int) -> list[int]:
    """Absolute layer indices of a route: negative entries are relative to the route itself."""
    sources = []
    for item in section["layers"].split(","):
        value = int(item)
        source = index + value if value < 0 else value
        if not 0 <= source < index:
            raise ValueError(f"layer {index}: route to layer {source} which does not precede it")
        sources.append(source)
    return sources


def describe_layers(sections: list[Section], input_size: int | None = None) -> list[LayerInfo]:
    """Propagate feature-map shapes through the cfg's layers (``[net]`` excluded).

    FLOPs are 2 x multiply-adds of the convolutions, the convention of :func:`yolo.model.conv_flops`.
    """
    if not sections or sections[0]["type"] not in ("net", "network"):
        raise ValueError("a cfg must start with a [net] section")
    net = sections[0]
    height = input_size or _int(net, "height")
    width = input_size or _int(net, "width")
    shape: Shape = (_int(net, "channels", 3), height, width)
    layers: list[LayerInfo] = []
    for index, section in enumerate(sections[1:]):
        kind = section["type"]
        channels, height, width = shape
        flops = 0
        input_shape: Shape | None = shape
        if kind == "convolutional":
            filters, size, stride = _int(section, "filters"), _int(section, "size"), _int(section, "stride", 1)
            groups = _int(section, "groups", 1)
            pad = size // 2 if _int(section, "pad", 0) else _int(section, "padding", 0)
            out = (filters, (height + 2 * pad - size) // stride + 1, (width + 2 * pad - size) // stride + 1)
            flops = 2 * filters * out[1] * out[2] * (channels // groups) * size * size
            detail = f"{filters} {size}x{size}/{stride} {section.get('activation', 'logistic')}"
        elif kind == "maxpool":
            size, stride = _int(section, "size", 1), _int(section, "stride", 1)
            padding = _int(section, "padding", size - 1)
            out = (channels, (height + padding - size) // stride + 1, (width + padding - size) // stride + 1)
            detail = f"{size}x{size}/{stride}"
        elif kind == "upsample":
            stride = _int(section, "stride", 2)
            out = (channels, height * stride, width * stride)
            detail = f"x{stride}"
        elif kind == "route":
            sources = _route_sources(section, index)
            groups, group_id = _int(section, "groups", 1), _int(section, "group_id", 0)
            source_shapes = [layers[s].output_shape for s in sources]
            if len({s[1:] for s in source_shapes}) != 1:
                raise ValueError(f"layer {index}: route sources {sources} differ in spatial size")
            out = (sum(s[0] // groups for s in source_shapes), *source_shapes[0][1:])
            detail = " ".join(map(str, sources))
            if groups > 1:
                detail += f" (group {group_id + 1}/{groups})"
            input_shape = None
        elif kind == "yolo":
            out = shape
            detail = f"mask {section.get('mask', '')}"
        else:
            raise ValueError(f"layer {index}: unsupported section type [{kind}]")
        layers.append(LayerInfo(index, kind, detail, input_shape, out, flops))
        shape = out
    return layers


class CfgMismatchError(ValueError):
    """A cfg does not describe the same network as the PyTorch model."""


def check_cfg(model: YoloV4Tiny, sections: list[Section]) -> None:
    """Raise :class:`CfgMismatchError` unless ``sections`` describe ``model`` conv for conv.

    Weights files carry no shapes, so loading one written for a different cfg would silently
    scramble the network; this check is what makes a cfg a usable contract for a ``.weights`` file.
    """
    layers = describe_layers(sections)
    conv_sections = [(layer, sections[layer.index + 1]) for layer in layers if layer.kind == "convolutional"]
    blocks = model.conv_layers()
    if len(conv_sections) != len(blocks):
        raise CfgMismatchError(
            f"cfg has {len(conv_sections)} [convolutional] sections, the model has {len(blocks)} convs"
        )
    for (layer, section), block in zip(conv_sections, blocks):
        conv = block.conv
        expected = {
            "filters": conv.out_channels,
            "size": conv.kernel_size[0],
            "stride": conv.stride[0],
            "input channels": conv.in_channels,
            "batch_normalize": int(block.bn is not None),
            "activation": "leaky" if block.leaky else "linear",
        }
        found = {
            "filters": _int(section, "filters"),
            "size": _int(section, "size"),
            "stride": _int(section, "stride", 1),
            "input channels": layer.input_shape[0] if layer.input_shape else -1,
            "batch_normalize": _int(section, "batch_normalize", 0),
            "activation": section.get("activation", "logistic"),
        }
        for key, value in expected.items():
            if found[key] != value:
                raise CfgMismatchError(
                    f"cfg layer {layer.index} [convolutional]: {key} is {found[key]}, the model has {value}"
                )
    for section in sections:
        if section["type"] == "yolo" and _int(section, "classes") != model.num_classes:
            raise CfgMismatchError(
                f"cfg [yolo] has classes={section['classes']}, the model has {model.num_classes}"
            )


# ---------------------------------------------------------------------------------------------
# .weights files
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WeightsHeader:
    """The header of a ``.weights`` file; ``seen`` is the number of training images seen."""

    major: int = 0
    minor: int = 2
    revision: int = 5
    seen: int = 0

    @property
    def seen_format(self) -> str:
        """``seen`` became 64-bit in format version 0.2; older files store it as int32."""
        return "<Q" if self.major * 10 + self.minor >= 2 else "<i"

    @property
    def size(self) -> int:
        return 12 + struct.calcsize(self.seen_format)


def _darknet_tensors(block: ConvBlock) -> list[torch.Tensor]:
    """The tensors of one conv block in the order darknet stores them."""
    if block.bn is not None:
        bn = block.bn
        return [bn.bias, bn.weight, bn.running_mean, bn.running_var, block.conv.weight]
    if block.conv.bias is None:
        raise ValueError("a conv without batch norm must have a bias to be stored in darknet format")
    return [block.conv.bias, block.conv.weight]


def weights_float_count(model: YoloV4Tiny) -> int:
    """Number of float32 values the model occupies in a ``.weights`` file."""
    return sum(t.numel() for block in model.conv_layers() for t in _darknet_tensors(block))


def expected_weights_size(model: YoloV4Tiny, header: WeightsHeader = WeightsHeader()) -> int:
    """Size in bytes of a ``.weights`` file for ``model`` with a header like ``header``."""
    return header.size + 4 * weights_float_count(model)


def load_weights(model: YoloV4Tiny, path: str | Path) -> WeightsHeader:
    """Load a darknet ``.weights`` file into ``model`` in place and return the file's header.

    The file size is checked against the model before any value is copied, because a file for
    another class count or cfg would otherwise load without error into the wrong places.
    """
    data = Path(path).read_bytes()
    if len(data) < 16:
        raise ValueError(f"{path}: {len(data)} bytes is too short for a darknet weights header")
    version = WeightsHeader(*struct.unpack_from("<3i", data))
    (seen,) = struct.unpack_from(version.seen_format, data, 12)
    header = dataclasses.replace(version, seen=seen)
    expected = expected_weights_size(model, header)
    if len(data) != expected:
        raise ValueError(
            f"{path}: expected {expected:,} bytes for YOLOv4-tiny with {model.num_classes} classes, "
            f"got {len(data):,}"
        )
    values = np.frombuffer(data, dtype="<f4", offset=header.size)
    offset = 0
    with torch.no_grad():
        for block in model.conv_layers():
            for tensor in _darknet_tensors(block):
                count = tensor.numel()
                chunk = values[offset : offset + count].astype(np.float32).reshape(tensor.shape)
                tensor.copy_(torch.from_numpy(chunk))
                offset += count
    return header


def save_weights(model: YoloV4Tiny, path: str | Path, header: WeightsHeader = WeightsHeader()) -> None:
    """Write ``model`` as a darknet ``.weights`` file readable by darknet and :func:`load_weights`."""
    with open(path, "wb") as file:
        file.write(struct.pack("<3i", header.major, header.minor, header.revision))
        file.write(struct.pack(header.seen_format, header.seen))
        for block in model.conv_layers():
            for tensor in _darknet_tensors(block):
                file.write(tensor.detach().cpu().numpy().astype("<f4").tobytes())

"""YOLOX (Megvii's official architecture) in PyTorch, sized as YOLOX-s by default.

Focus stem, CSPDarknet with SiLU and an SPP bottleneck, a CSP-PAFPN neck, and a decoupled
anchor-free head (separate class and box branches, objectness on the box branch) at strides
8, 16 and 32. Module and attribute names are those of the official code base
(``backbone.backbone.dark3``, ``backbone.C3_p4``, ``head.cls_preds``, ...), so its state dict keys
are the official ones and a released 80-class YOLOX-s checkpoint loads with ``load_state_dict``.

Unlike the official model, ``forward`` returns the raw head outputs in training and in eval mode
alike, one ``[N, 5 + num_classes, H / s, W / s]`` map per stride ``s`` in (8, 16, 32); the channels
are ``tx, ty, tw, th, objectness logit, class logits`` (the official order: reg, obj, cls).
Decoding is :func:`yolo.detect.decode_anchor_free_boxes`, as YOLOv4-tiny's is in ``yolo.detect``:
exporters and compilers then see only the network.
"""

from __future__ import annotations

import math

import torch
from torch import nn

#: Downsampling factor of each output, in ``forward`` order.
STRIDES: tuple[int, ...] = (8, 16, 32)

#: (depth multiplier, width multiplier) of the YOLOX sizes this module builds.
SIZES: dict[str, tuple[float, float]] = {"yolox-s": (0.33, 0.50)}

#: Prior probability of an object (and of each class) at initialization: the biases of the
#: objectness and class convs start at -log((1 - p) / p), as in the official ``initialize_biases``.
PRIOR_PROBABILITY: float = 0.01

#: Batch norm settings of the official training (``Exp.get_model`` sets them on every BN).
BN_EPS: float = 1e-3
BN_MOMENTUM: float = 0.03


class BaseConv(nn.Module):
    """Conv (no bias), batch norm, SiLU: every conv of YOLOX except the three 1x1 predictions.

    ``bn`` is None once :func:`yolo.model.fuse_batchnorm` has folded it into the conv."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding=(kernel_size - 1) // 2,
                              bias=False)
        self.bn: nn.BatchNorm2d | None = nn.BatchNorm2d(out_channels, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return self.act(x)


class Focus(nn.Module):
    """Space-to-depth then a conv: each 2x2 pixel block becomes 4x the channels at half the size.

    The four slices are concatenated in the official order (top-left, bottom-left, top-right,
    bottom-right pixels of each block), which pretrained weights depend on.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1) -> None:
        super().__init__()
        self.conv = BaseConv(in_channels * 4, out_channels, kernel_size, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top_left = x[..., ::2, ::2]
        bottom_left = x[..., 1::2, ::2]
        top_right = x[..., ::2, 1::2]
        bottom_right = x[..., 1::2, 1::2]
        return self.conv(torch.cat([top_left, bottom_left, top_right, bottom_right], dim=1))


class Bottleneck(nn.Module):
    """1x1 conv to ``expansion`` x the output channels, 3x3 conv back; a residual add when
    ``shortcut`` and the channel counts allow it."""

    def __init__(self, in_channels: int, out_channels: int, shortcut: bool = True, expansion: float = 0.5) -> None:
        super().__init__()
        hidden = int(out_channels * expansion)
        self.conv1 = BaseConv(in_channels, hidden, 1)
        self.conv2 = BaseConv(hidden, out_channels, 3)
        self.use_add = shortcut and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.conv1(x))
        return y + x if self.use_add else y


class CSPLayer(nn.Module):
    """Cross stage partial layer (the C3 of YOLOv5): two 1x1 branches of half the output channels,
    ``n`` bottlenecks on the first, concatenated and mixed by a last 1x1 conv."""

    def __init__(self, in_channels: int, out_channels: int, n: int = 1, shortcut: bool = True,
                 expansion: float = 0.5) -> None:
        super().__init__()
        hidden = int(out_channels * expansion)
        self.conv1 = BaseConv(in_channels, hidden, 1)
        self.conv2 = BaseConv(in_channels, hidden, 1)
        self.conv3 = BaseConv(2 * hidden, out_channels, 1)
        self.m = nn.Sequential(*(Bottleneck(hidden, hidden, shortcut, 1.0) for _ in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(torch.cat([self.m(self.conv1(x)), self.conv2(x)], dim=1))


class SPPBottleneck(nn.Module):
    """Spatial pyramid pooling: halve the channels, concatenate stride-1 max pools of 5, 9 and 13
    with the unpooled tensor, mix with a 1x1 conv."""

    def __init__(self, in_channels: int, out_channels: int, kernel_sizes: tuple[int, ...] = (5, 9, 13)) -> None:
        super().__init__()
        hidden = in_channels // 2
        self.conv1 = BaseConv(in_channels, hidden, 1)
        self.m = nn.ModuleList(nn.MaxPool2d(k, stride=1, padding=k // 2) for k in kernel_sizes)
        self.conv2 = BaseConv(hidden * (len(kernel_sizes) + 1), out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        return self.conv2(torch.cat([x] + [pool(x) for pool in self.m], dim=1))


class CSPDarknet(nn.Module):
    """The backbone: Focus stem (stride 2), then four stages, each a stride-2 3x3 conv and CSP layers.

    Returns the outputs of ``dark3``, ``dark4``, ``dark5`` (strides 8, 16, 32). For YOLOX-s the
    channels are 128, 256, 512 and the stages hold 1, 3, 3, 1 bottlenecks.
    """

    def __init__(self, depth: float, width: float) -> None:
        super().__init__()
        base_channels = int(width * 64)
        base_depth = max(round(depth * 3), 1)
        c = base_channels
        self.stem = Focus(3, c, kernel_size=3)
        self.dark2 = nn.Sequential(BaseConv(c, 2 * c, 3, 2), CSPLayer(2 * c, 2 * c, n=base_depth))
        self.dark3 = nn.Sequential(BaseConv(2 * c, 4 * c, 3, 2), CSPLayer(4 * c, 4 * c, n=3 * base_depth))
        self.dark4 = nn.Sequential(BaseConv(4 * c, 8 * c, 3, 2), CSPLayer(8 * c, 8 * c, n=3 * base_depth))
        self.dark5 = nn.Sequential(BaseConv(8 * c, 16 * c, 3, 2), SPPBottleneck(16 * c, 16 * c),
                                   CSPLayer(16 * c, 16 * c, n=base_depth, shortcut=False))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        dark3 = self.dark3(self.dark2(self.stem(x)))
        dark4 = self.dark4(dark3)
        return dark3, dark4, self.dark5(dark4)


class YOLOPAFPN(nn.Module):
    """CSPDarknet plus the PAFPN neck: a top-down path (stride 32 -> 16 -> 8) then a bottom-up
    path (8 -> 16 -> 32), each merge a concatenation followed by a CSP layer without shortcuts.

    The official class holds the backbone, so ``YoloX.backbone`` is this whole module.
    """

    def __init__(self, depth: float, width: float) -> None:
        super().__init__()
        c3, c4, c5 = (int(channels * width) for channels in (256, 512, 1024))
        n = round(3 * depth)
        self.backbone = CSPDarknet(depth, width)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.lateral_conv0 = BaseConv(c5, c4, 1)
        self.C3_p4 = CSPLayer(2 * c4, c4, n, shortcut=False)
        self.reduce_conv1 = BaseConv(c4, c3, 1)
        self.C3_p3 = CSPLayer(2 * c3, c3, n, shortcut=False)
        self.bu_conv2 = BaseConv(c3, c3, 3, 2)
        self.C3_n3 = CSPLayer(2 * c3, c4, n, shortcut=False)
        self.bu_conv1 = BaseConv(c4, c4, 3, 2)
        self.C3_n4 = CSPLayer(2 * c4, c5, n, shortcut=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        dark3, dark4, dark5 = self.backbone(x)
        # top-down
        lateral5 = self.lateral_conv0(dark5)
        merged4 = self.C3_p4(torch.cat([self.upsample(lateral5), dark4], dim=1))
        lateral4 = self.reduce_conv1(merged4)
        out8 = self.C3_p3(torch.cat([self.upsample(lateral4), dark3], dim=1))
        # bottom-up
        out16 = self.C3_n3(torch.cat([self.bu_conv2(out8), lateral4], dim=1))
        out32 = self.C3_n4(torch.cat([self.bu_conv1(out16), lateral5], dim=1))
        return out8, out16, out32


class YOLOXHead(nn.Module):
    """The decoupled head, one per stride: a 1x1 stem to ``256 x width`` channels, then a class
    branch (two 3x3 convs, a 1x1 to ``num_classes``) and a box branch (two 3x3 convs, a 1x1 to 4
    box channels and a 1x1 to 1 objectness channel)."""

    def __init__(self, num_classes: int, width: float) -> None:
        super().__init__()
        hidden = int(256 * width)
        in_channels = [int(channels * width) for channels in (256, 512, 1024)]
        self.stems = nn.ModuleList(BaseConv(c, hidden, 1) for c in in_channels)
        self.cls_convs = nn.ModuleList(nn.Sequential(BaseConv(hidden, hidden, 3), BaseConv(hidden, hidden, 3))
                                       for _ in in_channels)
        self.reg_convs = nn.ModuleList(nn.Sequential(BaseConv(hidden, hidden, 3), BaseConv(hidden, hidden, 3))
                                       for _ in in_channels)
        self.cls_preds = nn.ModuleList(nn.Conv2d(hidden, num_classes, 1) for _ in in_channels)
        self.reg_preds = nn.ModuleList(nn.Conv2d(hidden, 4, 1) for _ in in_channels)
        self.obj_preds = nn.ModuleList(nn.Conv2d(hidden, 1, 1) for _ in in_channels)
        prior_bias = -math.log((1 - PRIOR_PROBABILITY) / PRIOR_PROBABILITY)
        for conv in (*self.cls_preds, *self.obj_preds):
            nn.init.constant_(conv.bias, prior_bias)

    def forward(self, features: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        outputs = []
        for level, x in enumerate(features):
            x = self.stems[level](x)
            cls_feature = self.cls_convs[level](x)
            reg_feature = self.reg_convs[level](x)
            outputs.append(torch.cat([self.reg_preds[level](reg_feature), self.obj_preds[level](reg_feature),
                                      self.cls_preds[level](cls_feature)], dim=1))
        return tuple(outputs)


class YoloX(nn.Module):
    """YOLOX with raw head outputs: ``[N, 5 + num_classes, H / s, W / s]`` for s = 8, 16, 32."""

    strides = STRIDES  # of the outputs, in forward order

    def __init__(self, num_classes: int = 20, architecture: str = "yolox-s") -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        if architecture not in SIZES:
            raise ValueError(f"unknown YOLOX size {architecture!r}; known: {', '.join(SIZES)}")
        depth, width = SIZES[architecture]
        self.num_classes = num_classes
        self.architecture = architecture
        self.backbone = YOLOPAFPN(depth, width)
        self.head = YOLOXHead(num_classes, width)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.head(self.backbone(x))

    def frozen_parts(self) -> list[nn.Module]:
        """What the frozen phase of the recipe freezes: backbone and neck (the official ``backbone``
        attribute, as the reference yolox-pytorch training freezes it); the decoupled head trains."""
        return [self.backbone]

"""YOLOv4-tiny (darknet ``yolov4-tiny.cfg``) in PyTorch.

The module tree follows the darknet layer order exactly, so that the 21 convolutions returned by
:meth:`YoloV4Tiny.conv_layers` line up one to one with the ``[convolutional]`` sections of the cfg
and with the records of a darknet ``.weights`` file (see :mod:`yolo.darknet`). Darknet layer numbers
are given in the comments as ``L<n>``.

The module also serves both networks of the study (YOLOX-s is in :mod:`yolo.yolox`): it names them
(:data:`ARCHITECTURES`), builds them (:func:`build_model`), loads checkpoints of either
(:func:`load_checkpoint`) and counts the parameters and FLOPs of any model (:func:`complexity`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from .yolox import SIZES as YOLOX_SIZES
from .yolox import YoloX

#: Anchor boxes (width, height) in pixels of the 416x416 network input, as in the darknet cfg.
ANCHORS: tuple[tuple[int, int], ...] = ((10, 14), (23, 27), (37, 58), (81, 82), (135, 169), (344, 319))

#: Indices into ANCHORS used by each output, in the order ``forward`` returns them: the stride-32
#: head (13x13 at 416) uses anchors 3, 4, 5 and the stride-16 head (26x26) uses 1, 2, 3. Anchor 0 is
#: never used and anchor 3 is shared; this is how the official cfg is written and pretrained darknet
#: weights were trained with it, so it is kept rather than "fixed".
MASKS: tuple[tuple[int, ...], ...] = ((3, 4, 5), (1, 2, 3))

#: Downsampling factor of each output, in ``forward`` order.
STRIDES: tuple[int, ...] = (32, 16)

#: Darknet's ``scale_x_y`` for both heads. Box centres decode as
#: ``x = (SCALE_X_Y * sigmoid(t_x) - (SCALE_X_Y - 1) / 2 + c_x) * stride``, which lets a centre reach
#: the cell borders without saturating the sigmoid.
SCALE_X_Y: float = 1.05

#: Negative slope of darknet's ``activation=leaky``.
LEAKY_SLOPE: float = 0.1

#: Input resolution the cfg and the reference complexity figures are defined for.
INPUT_SIZE: int = 416

ANCHORS_PER_SCALE: int = 3


class ConvBlock(nn.Module):
    """One darknet ``[convolutional]`` section: conv, optional batch norm, optional leaky ReLU.

    The conv carries a bias only when there is no batch norm, because darknet stores either BN
    parameters or a bias for a conv, never both.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        batch_norm: bool = True,
        leaky: bool = True,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2, bias=not batch_norm
        )
        self.bn: nn.BatchNorm2d | None = nn.BatchNorm2d(out_channels) if batch_norm else None
        self.act: nn.Module = nn.LeakyReLU(LEAKY_SLOPE) if leaky else nn.Identity()
        self.leaky = leaky

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return self.act(x)


class CSPBlock(nn.Module):
    """The CSP stage repeated three times in the CSPDarknet53-tiny backbone (darknet layers 2-9).

    The route with ``groups=2 group_id=1`` feeds only the second half of the first conv's channels
    into the inner branch, while the full tensor is concatenated back before the max pool: that
    partial path is what makes the block "cross stage partial".
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        half = channels // 2
        self.conv1 = ConvBlock(channels, channels, 3)  # L2
        self.conv2 = ConvBlock(half, half, 3)  # L4 (after the grouped route, L3)
        self.conv3 = ConvBlock(half, half, 3)  # L5
        self.conv4 = ConvBlock(channels, channels, 1)  # L7 (after route -1,-2, L6)
        self.pool = nn.MaxPool2d(2, 2)  # L9 (after route -6,-1, L8)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the pooled block output and the pre-pool 1x1 conv feature (the FPN tap of stage 3)."""
        route = self.conv1(x)
        second_half = torch.chunk(route, 2, dim=1)[1]  # darknet groups=2 group_id=1
        a = self.conv2(second_half)
        b = self.conv3(a)
        feature = self.conv4(torch.cat([b, a], dim=1))
        return self.pool(torch.cat([route, feature], dim=1)), feature


class YoloV4Tiny(nn.Module):
    """YOLOv4-tiny with two detection heads; ``forward`` returns raw (undecoded) head outputs.

    Outputs are ``[N, 3 * (5 + num_classes), H / 32, W / 32]`` then ``[..., H / 16, W / 16]``; each
    anchor's channels are ``tx, ty, tw, th, objectness, class scores`` as in darknet.
    """

    architecture = "yolov4-tiny"
    strides = STRIDES  # of the outputs, in forward order

    def __init__(self, num_classes: int = 20) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        self.num_classes = num_classes
        head_channels = ANCHORS_PER_SCALE * (5 + num_classes)

        # Backbone: CSPDarknet53-tiny.
        self.stem1 = ConvBlock(3, 32, 3, stride=2)  # L0
        self.stem2 = ConvBlock(32, 64, 3, stride=2)  # L1
        self.csp1 = CSPBlock(64)  # L2-L9
        self.csp2 = CSPBlock(128)  # L10-L17
        self.csp3 = CSPBlock(256)  # L18-L25; its 1x1 conv (L23) is the stride-16 feature
        self.conv26 = ConvBlock(512, 512, 3)  # L26

        # Stride-32 head.
        self.conv27 = ConvBlock(512, 256, 1)  # L27, shared with the stride-16 branch
        self.conv28 = ConvBlock(256, 512, 3)  # L28
        self.head32 = ConvBlock(512, head_channels, 1, batch_norm=False, leaky=False)  # L29, yolo L30

        # Stride-16 head.
        self.conv32 = ConvBlock(256, 128, 1)  # L32 (after route -4, L31)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")  # L33
        self.conv35 = ConvBlock(384, 256, 3)  # L35 (after route -1,23, L34)
        self.head16 = ConvBlock(256, head_channels, 1, batch_norm=False, leaky=False)  # L36, yolo L37

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.stem2(self.stem1(x))
        x, _ = self.csp1(x)
        x, _ = self.csp2(x)
        x, feature16 = self.csp3(x)
        p5 = self.conv27(self.conv26(x))
        out32 = self.head32(self.conv28(p5))
        up = self.upsample(self.conv32(p5))
        out16 = self.head16(self.conv35(torch.cat([up, feature16], dim=1)))
        return out32, out16

    def conv_layers(self) -> list[ConvBlock]:
        """The 21 conv blocks in darknet cfg order, i.e. the order of records in a .weights file."""
        blocks: list[ConvBlock] = [self.stem1, self.stem2]
        for csp in (self.csp1, self.csp2, self.csp3):
            blocks += [csp.conv1, csp.conv2, csp.conv3, csp.conv4]
        blocks += [self.conv26, self.conv27, self.conv28, self.head32, self.conv32, self.conv35, self.head16]
        return blocks

    def frozen_parts(self) -> list[nn.Module]:
        """What the frozen phase of the recipe freezes: the CSPDarknet53-tiny backbone."""
        return [self.stem1, self.stem2, self.csp1, self.csp2, self.csp3]


#: The networks of the study, by the name checkpoints and command lines use.
ARCHITECTURES: tuple[str, ...] = ("yolov4-tiny", *YOLOX_SIZES)

#: How summaries, reports and plots name each network.
DISPLAY_NAMES: dict[str, str] = {"yolov4-tiny": "YOLOv4-tiny", "yolox-s": "YOLOX-s"}


def build_model(architecture: str, num_classes: int) -> YoloV4Tiny | YoloX:
    """A freshly initialized network of one of ARCHITECTURES."""
    if architecture == YoloV4Tiny.architecture:
        return YoloV4Tiny(num_classes)
    if architecture in YOLOX_SIZES:
        return YoloX(num_classes, architecture)
    raise ValueError(f"unknown model {architecture!r}; known: {', '.join(ARCHITECTURES)}")


def load_checkpoint(path: str) -> tuple[YoloV4Tiny | YoloX, int, tuple[str, ...]]:
    """The model of a checkpoint (in eval mode), its input size and its class names."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    # Checkpoints written before YOLOX joined do not name their model: they all hold YOLOv4-tiny.
    model = build_model(state.get("architecture", YoloV4Tiny.architecture), state["num_classes"])
    model.load_state_dict(state["model"])
    return model.eval(), state["config"]["input_size"], tuple(state["classes"])


def fuse_batchnorm(model: nn.Module) -> nn.Module:
    """Return a copy with every batch norm folded into the conv before it (its weight and bias).

    Both networks put a conv and the batch norm after it in one block, as its ``conv`` and ``bn``
    (YOLOv4-tiny's :class:`ConvBlock`, YOLOX's :class:`yolo.yolox.BaseConv`); the folded block keeps
    the conv, now with a bias, and ``bn`` becomes None. Exporters and compilers then see conv+bias
    (+activation) ops instead of conv, BN, activation chains, so the activation fuses with the conv.
    Only valid for inference: the copy uses the running statistics. A batch norm anywhere else is
    an error rather than left in place.
    """
    fused = copy.deepcopy(model).eval()
    for block in fused.modules():
        bn, conv = getattr(block, "bn", None), getattr(block, "conv", None)
        if not isinstance(bn, nn.BatchNorm2d) or not isinstance(conv, nn.Conv2d):
            continue
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        bias = bn.bias - bn.running_mean * scale
        if conv.bias is not None:
            bias = bias + conv.bias * scale
        new_conv = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                             conv.dilation, conv.groups, bias=True)
        with torch.no_grad():
            new_conv.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
            new_conv.bias.copy_(bias)
        block.conv = new_conv
        block.bn = None
    left = [name for name, m in fused.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if left:
        raise ValueError(f"batch norms not after a block's conv, not folded: {', '.join(left)}")
    return fused


@dataclass(frozen=True)
class Complexity:
    """Size of a model: learnable parameters and floating-point operations for one image."""

    params: int
    flops: int
    input_size: int

    @property
    def gflops(self) -> float:
        return self.flops / 1e9


def conv_flops(conv: nn.Conv2d, out_height: int, out_width: int) -> int:
    """FLOPs of one conv counted as darknet's BFLOPS: 2 x multiply-adds, bias not counted.

    This is the convention behind the usual yolov4-tiny figures at 416x416 (6.81 GFLOPs for 20
    classes, 6.91 for 80; exactly 6.814 / 6.908): adding one operation per output element for the
    bias or folded batch norm gives 6.821 / 6.914, and two (bias and activation) 6.827 / 6.921.
    """
    kh, kw = conv.kernel_size
    macs = conv.out_channels * out_height * out_width * (conv.in_channels // conv.groups) * kh * kw
    return 2 * macs


def count_ops(model: nn.Module, input_size: int, ops: Callable[[nn.Module, torch.Tensor], int]) -> int:
    """Sum of ``ops(module, output)`` over every module a forward pass of one zero
    ``input_size`` x ``input_size`` RGB image runs, in eval mode."""
    total = 0

    def count(module: nn.Module, _inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        total += ops(module, output)

    hooks = [m.register_forward_hook(count) for m in model.modules()]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, 3, input_size, input_size))
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return total


def complexity(model: nn.Module, input_size: int = INPUT_SIZE) -> Complexity:
    """Count parameters and conv FLOPs for one ``input_size`` x ``input_size`` RGB image.

    Parameters are the learnable tensors only (BN running statistics are buffers). FLOPs are summed
    over every ``nn.Conv2d`` by :func:`conv_flops`; pooling, upsampling, concatenation, BN and
    activations are left out.
    """

    def ops(module: nn.Module, output: torch.Tensor) -> int:
        return conv_flops(module, output.shape[-2], output.shape[-1]) if isinstance(module, nn.Conv2d) else 0

    params = sum(p.numel() for p in model.parameters())
    return Complexity(params=params, flops=count_ops(model, input_size, ops), input_size=input_size)


def thop_flops(model: nn.Module, input_size: int) -> int:
    """FLOPs as YOLOX reports them (26.8 G for YOLOX-s at 640): 2 x what thop counts as MACs.

    thop counts a conv's multiply-adds plus one per output element for its bias, two per element
    of a batch norm in eval mode, and nothing for SiLU, pooling, upsampling or concatenation. So
    this is :func:`complexity`'s FLOPs plus 2 per conv-bias output element plus 4 per batch norm
    output element.
    """

    def ops(module: nn.Module, output: torch.Tensor) -> int:
        if isinstance(module, nn.Conv2d):
            bias = output.numel() if module.bias is not None else 0
            return conv_flops(module, output.shape[-2], output.shape[-1]) + 2 * bias
        if isinstance(module, nn.BatchNorm2d):
            return 2 * 2 * output.numel()
        return 0

    return count_ops(model, input_size, ops)

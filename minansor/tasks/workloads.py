"""The workload catalogue: named operator tasks, and a parser for parameterized names.

Every distinct conv layer of YOLOv4-tiny at 416x416 (BN folded, as after graph optimization)
appears as conv2d NCHW + bias + leaky ReLU(0.1); the two detection heads are conv + bias.
Names follow `yolo-conv-{H}x{W}-{Cin}-{Cout}-{k}x{k}[s{stride}]` with H x W the *input* size.
The same families accept any shape (`conv-...`, `gemm-MxNxK`, ...), which tests use to get
small tasks.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from tvm import te, topi

from ..errors import UserError
from ..tir.layout_rewrite import mark_layout_free
from .task import Task


def conv2d_bias_act(h: int, w: int, cin: int, cout: int, k: int, stride: int = 1, leaky: bool = True,
                    layout: str = "NCHW") -> list[te.Tensor]:
    """NCHW data with an OIHW weight, or NHWC data with an HWIO weight (channels innermost)."""
    if layout == "NHWC":
        data = te.placeholder((1, h, w, cin), name="data")
        weight = te.placeholder((k, k, cin, cout), name="weight")
        bias = te.placeholder((1, 1, 1, cout), name="bias")
        conv = topi.nn.conv2d_nhwc(data, weight, stride, k // 2, 1)
    else:
        data = te.placeholder((1, cin, h, w), name="data")
        weight = te.placeholder((cout, cin, k, k), name="weight")
        bias = te.placeholder((1, cout, 1, 1), name="bias")
        conv = topi.nn.conv2d_nchw(data, weight, stride, k // 2, 1)
    out = topi.add(conv, bias)
    if leaky:
        out = topi.nn.leaky_relu(out, 0.1)
    return [data, weight, bias, out]


def quantized_conv2d(h: int, w: int, cin: int, cout: int, k: int, stride: int = 1) -> list[te.Tensor]:
    """A conv layer as the int8 network runs it (network/int8.py), NHWC: uint8 activations times int8
    HWIO weights, accumulated in int32, then back to float with a scale per output channel, a
    bias (which here also stands for the zero-point correction) and leaky ReLU."""
    data = te.placeholder((1, h, w, cin), "uint8", name="data")
    weight = te.placeholder((k, k, cin, cout), "int8", name="weight")
    scale = te.placeholder((cout,), name="scale")
    bias = te.placeholder((cout,), name="bias")
    acc = topi.nn.conv2d_nhwc(data, weight, stride, k // 2, 1, out_dtype="int32")
    out = te.compute(acc.shape, lambda n, y, x, c: acc[n, y, x, c].astype("float32") * scale[c] + bias[c],
                     name="requantize")
    return [data, weight, scale, bias, topi.nn.leaky_relu(out, 0.1)]


def conv2d_nhwc_prepadded(data: te.Tensor, weight: te.Tensor, stride: int, out_dtype: str) -> te.Tensor:
    """An NHWC conv (HWIO weight) of data already padded: no padding stage inside. A bf16 input
    must be so: TVM's bf16 legalization turns every bf16 buffer a kernel allocates (TOPI's
    padding stage, even an identity one) into fp32, under a tile load that reads bf16 pairs."""
    _, h, w, _ = (int(d) for d in data.shape)
    kh, kw, cin, cout = (int(d) for d in weight.shape)
    ry, rx, rc = te.reduce_axis((0, kh), "ry"), te.reduce_axis((0, kw), "rx"), te.reduce_axis((0, cin), "rc")
    return te.compute((int(data.shape[0]), (h - kh) // stride + 1, (w - kw) // stride + 1, cout),
                      lambda n, y, x, f: te.sum(data[n, y * stride + ry, x * stride + rx, rc].astype(out_dtype)
                                                * weight[ry, rx, rc, f].astype(out_dtype), axis=[ry, rx, rc]),
                      name="conv2d_nhwc")


def bf16_conv2d(h: int, w: int, cin: int, cout: int, k: int, stride: int = 1) -> list[te.Tensor]:
    """A conv layer as the bf16 network runs it (network/bf16.py): bf16 activations, padded by
    the layer before, times a bf16 HWIO weight, accumulated in fp32, + bias + leaky ReLU."""
    pad = k // 2
    data = te.placeholder((1, h + 2 * pad, w + 2 * pad, cin), "bfloat16", name="data")
    weight = te.placeholder((k, k, cin, cout), "bfloat16", name="weight")
    bias = te.placeholder((cout,), name="bias")
    acc = conv2d_nhwc_prepadded(data, weight, stride, "float32")
    out = te.compute(acc.shape, lambda n, y, x, c: acc[n, y, x, c] + bias[c], name="add_bias")
    return [data, weight, bias, topi.nn.leaky_relu(out, 0.1)]


def gemm(m: int, n: int, k: int) -> list[te.Tensor]:
    a = te.placeholder((m, k), name="A")
    b = te.placeholder((k, n), name="B")
    r = te.reduce_axis((0, k), name="k")
    c = te.compute((m, n), lambda i, j: te.sum(a[i, r] * b[r, j], axis=r), name="C")
    return [a, b, c]


def maxpool2x2(h: int, w: int, c: int) -> list[te.Tensor]:
    data = te.placeholder((1, c, h, w), name="data")
    out = topi.nn.pool2d(data, (2, 2), (2, 2), (1, 1), (0, 0, 0, 0), "max", layout="NCHW")
    return [data, out]


def row_sum(rows: int, cols: int) -> list[te.Tensor]:
    x = te.placeholder((rows, cols), name="X")
    r = te.reduce_axis((0, cols), name="r")
    return [x, te.compute((rows,), lambda i: te.sum(x[i, r], axis=r), name="S")]


def elementwise_add(n: int, m: int) -> list[te.Tensor]:
    a = te.placeholder((n, m), name="A")
    b = te.placeholder((n, m), name="B")
    return [a, b, te.compute((n, m), lambda i, j: a[i, j] + b[i, j], name="C")]


# ---------------------------------------------------------------- memory-bound operators (NHWC)


def max_pool_nhwc(h: int, w: int, c: int, k: int) -> list[te.Tensor]:
    """k x k max pool, stride 1, padded to keep the size: YOLO's SPP block (5, 9, 13)."""
    data = te.placeholder((1, h, w, c), name="data")
    return [data, topi.nn.pool2d(data, (k, k), (1, 1), (1, 1), (k // 2,) * 4, "max", layout="NHWC")]


def transpose(h: int, w: int, c: int, to_nhwc: bool) -> list[te.Tensor]:
    data = te.placeholder((1, c, h, w) if to_nhwc else (1, h, w, c), name="data")
    return [data, topi.transpose(data, (0, 2, 3, 1) if to_nhwc else (0, 3, 1, 2))]


def quantize(h: int, w: int, c: int, scale: float = 0.05, zero: int = 128) -> list[te.Tensor]:
    """float32 to uint8 as the int8 graph writes it: clip(round(x / s) + zp, 0, 255)."""
    data = te.placeholder((1, h, w, c), name="data")

    def q(*i):
        shifted = te.round(data(*i) / scale) + float(zero)
        return te.min(te.max(shifted, 0.0), 255.0).astype("uint8")

    return [data, te.compute(data.shape, q, name="quantize")]


def concat(h: int, w: int, c: int) -> list[te.Tensor]:
    """Two NHWC tensors of c channels joined along the channels."""
    a, b = te.placeholder((1, h, w, c), name="a"), te.placeholder((1, h, w, c), name="b")
    return [a, b, topi.concatenate([a, b], axis=3)]


def upsample(h: int, w: int, c: int) -> list[te.Tensor]:
    """Nearest-neighbour resize x2, NHWC."""
    data = te.placeholder((1, h, w, c), name="data")
    return [data, te.compute((1, 2 * h, 2 * w, c), lambda n, y, x, k: data[n, y // 2, x // 2, k], name="resize")]


def softmax(rows: int, cols: int, fast: bool = False) -> list[te.Tensor]:
    """Softmax of each row; `fast`: exp as TVM's vectorizable fast_exp, as a network's softmax
    is legalized with SearchConfig.fast_math (network/fast_math.py)."""
    x = te.placeholder((rows, cols), name="X")
    return [x, (topi.nn.fast_softmax if fast else topi.nn.softmax)(x, axis=1)]


def global_avg_pool(h: int, w: int, c: int) -> list[te.Tensor]:
    data = te.placeholder((1, h, w, c), name="data")
    return [data, topi.nn.global_pool(data, "avg", layout="NHWC")]


def depthwise_conv2d(h: int, w: int, c: int, k: int) -> list[te.Tensor]:
    """Depthwise k x k conv, stride 1, same padding, NHWC (weight HWC1, a constant)."""
    data, weight = te.placeholder((1, h, w, c), name="data"), te.placeholder((k, k, c, 1), name="weight")
    return [data, weight, topi.nn.depthwise_conv2d_nhwc(data, weight, 1, k // 2, 1)]


@dataclass(frozen=True)
class Family:
    pattern: str  # a regex over the workload name
    build: Callable[..., list[te.Tensor]]
    describe: str
    constants: tuple[int, ...] = ()  # the arguments a network holds as constants: layout-free


_D = r"(\d+)"
FAMILIES = {
    "conv": Family(rf"(?:yolo-)?conv-{_D}x{_D}-{_D}-{_D}-{_D}x\5(?:s{_D})?(-nhwc)?",
                   lambda h, w, ci, co, k, s, nhwc: conv2d_bias_act(h, w, ci, co, k, s or 1,
                                                                   layout="NHWC" if nhwc else "NCHW"),
                   "conv2d NCHW (or -nhwc: NHWC, HWIO weight) + bias + leaky ReLU", constants=(1, 2)),
    "head": Family(rf"(?:yolo-)?head-{_D}x{_D}-{_D}-{_D}-{_D}x\5(?:s{_D})?(-nhwc)?",
                   lambda h, w, ci, co, k, s, nhwc: conv2d_bias_act(h, w, ci, co, k, s or 1, leaky=False,
                                                                   layout="NHWC" if nhwc else "NCHW"),
                   "conv2d NCHW (or -nhwc) + bias (linear detection head)", constants=(1, 2)),
    "qconv": Family(rf"(?:yolo-)?qconv-{_D}x{_D}-{_D}-{_D}-{_D}x\5(?:s{_D})?",
                    lambda h, w, ci, co, k, s: quantized_conv2d(h, w, ci, co, k, s or 1),
                    "int8 conv2d NHWC (uint8 x int8 -> int32) + requantize to float + leaky ReLU", constants=(1, 2, 3)),
    "bconv": Family(rf"(?:yolo-)?bconv-{_D}x{_D}-{_D}-{_D}-{_D}x\5(?:s{_D})?",
                    lambda h, w, ci, co, k, s: bf16_conv2d(h, w, ci, co, k, s or 1),
                    "bf16 conv2d NHWC, input padded before (bf16 x bf16 -> fp32) + bias + leaky ReLU", constants=(1, 2)),
    "gemm": Family(rf"gemm-{_D}x{_D}x{_D}", lambda m, n, k: gemm(m, n, k), "C[M,N] = A[M,K] B[K,N]"),
    "maxpool": Family(rf"(?:yolo-)?maxpool-{_D}x{_D}-{_D}", lambda h, w, c: maxpool2x2(h, w, c),
                      "max pool 2x2, stride 2, NCHW"),
    "rowsum": Family(rf"rowsum-{_D}x{_D}", lambda r, c: row_sum(r, c), "S[i] = sum_k X[i, k]"),
    "add": Family(rf"add-{_D}x{_D}", lambda n, m: elementwise_add(n, m), "C = A + B (nothing to tile)"),
    "pool": Family(rf"maxpool-{_D}x{_D}-{_D}-{_D}x\4", lambda h, w, c, k: max_pool_nhwc(h, w, c, k),
                   "max pool k x k, stride 1, same size, NHWC (SPP)"),
    "transpose": Family(rf"(nchw-to-nhwc|nhwc-to-nchw)-{_D}x{_D}-{_D}",
                        lambda way, h, w, c: transpose(h, w, c, way == "nchw-to-nhwc"), "layout transpose"),
    "quantize": Family(rf"quantize-{_D}x{_D}-{_D}", lambda h, w, c: quantize(h, w, c), "float32 -> uint8, NHWC"),
    "concat": Family(rf"concat-{_D}x{_D}-{_D}", lambda h, w, c: concat(h, w, c), "two NHWC tensors, channels"),
    "upsample": Family(rf"upsample-{_D}x{_D}-{_D}", lambda h, w, c: upsample(h, w, c), "nearest resize x2, NHWC"),
    "softmax": Family(rf"softmax-{_D}x{_D}", lambda r, c: softmax(r, c), "softmax of each row (libm exp)"),
    "fastsoftmax": Family(rf"fastsoftmax-{_D}x{_D}", lambda r, c: softmax(r, c, fast=True),
                          "softmax of each row, exp as fast_exp (as networks get it)"),
    "avgpool": Family(rf"avgpool-{_D}x{_D}-{_D}", lambda h, w, c: global_avg_pool(h, w, c),
                      "global average pool, NHWC"),
    "dwconv": Family(rf"dwconv-{_D}x{_D}-{_D}-{_D}x\4", lambda h, w, c, k: depthwise_conv2d(h, w, c, k),
                     "depthwise conv k x k, stride 1, NHWC", constants=(1,)),
}

# Memory-bound operators at the sizes YOLO and MobileNet-style networks give them: what
# experiments/compare_metaschedule.py --suite memory tables in GB/s.
MEMORY_BOUND = ("maxpool-26x26-256-3x3", "maxpool-13x13-256-5x5", "maxpool-13x13-256-9x9", "maxpool-13x13-256-13x13",
                "nchw-to-nhwc-104x104-64", "nhwc-to-nchw-104x104-64", "quantize-104x104-64", "concat-52x52-128",
                "upsample-26x26-128", "softmax-1024x1000", "fastsoftmax-1024x1000", "avgpool-13x13-512",
                "dwconv-56x56-128-3x3")

# Distinct conv shapes of YOLOv4-tiny 416x416, 20 classes, with how many layers use each.
YOLO_LAYERS = {
    "yolo-conv-416x416-3-32-3x3s2": 1,
    "yolo-conv-208x208-32-64-3x3s2": 1,
    "yolo-conv-104x104-64-64-3x3": 1,
    "yolo-conv-104x104-32-32-3x3": 2,
    "yolo-conv-104x104-64-64-1x1": 1,
    "yolo-conv-52x52-128-128-3x3": 1,
    "yolo-conv-52x52-64-64-3x3": 2,
    "yolo-conv-52x52-128-128-1x1": 1,
    "yolo-conv-26x26-256-256-3x3": 1,
    "yolo-conv-26x26-128-128-3x3": 2,
    "yolo-conv-26x26-256-256-1x1": 1,
    "yolo-conv-13x13-512-512-3x3": 1,
    "yolo-conv-13x13-512-256-1x1": 1,
    "yolo-conv-13x13-256-512-3x3": 1,
    "yolo-conv-13x13-256-128-1x1": 1,
    "yolo-conv-26x26-384-256-3x3": 1,
    "yolo-head-13x13-512-75-1x1": 1,
    "yolo-head-26x26-256-75-1x1": 1,
    "yolo-maxpool-104x104-128": 1,
    "yolo-maxpool-52x52-256": 1,
    "yolo-maxpool-26x26-512": 1,
}
CATALOGUE = ("gemm-512x512x512", "gemm-1024x1024x1024", *YOLO_LAYERS, "rowsum-64x16384")
DEFAULT_WORKLOAD = "yolo-conv-104x104-64-64-3x3"


def parse(name: str) -> tuple[str, list[te.Tensor]]:
    """Family name and TE tensors of a workload name; a one-line UserError otherwise."""
    for family_name, family in FAMILIES.items():
        match = re.fullmatch(family.pattern, name)
        if match:
            numbers = [int(g) if g is not None and g.isdigit() else g for g in match.groups()]
            if any(isinstance(n, int) and n < 1 for n in numbers):
                raise UserError(f"workload {name!r}: every size must be >= 1")
            return family_name, family.build(*numbers)
    if re.search(r"[A-Za-z_]\w*x|x[A-Za-z_]", name.split("-", 1)[-1]):
        raise UserError(f"workload {name!r}: symbolic (dynamic) shapes are not supported; give every size a number")
    raise UserError(f"unknown workload {name!r}; `minansor workloads` lists the catalogue "
                    f"and the name patterns ({', '.join(FAMILIES)})")


def make_task(name: str, target="cpu") -> Task:
    """The task of a workload name, its constant arguments (conv weights and biases) marked
    layout-free, as a network's are (layout_rewrite.py)."""
    family, tensors = parse(name)
    func = mark_layout_free(te.create_prim_func(tensors), FAMILIES[family].constants)
    return Task.from_prim_func(name, func, target, weight=YOLO_LAYERS.get(name, 1))

"""The activations' layout in a network: NCHW as imported, or NHWC (channels innermost).

With channels innermost a conv's output tile is a run of output channels: the innermost loop,
the one random annotation vectorizes, walks the channels of the output and of the packed weight
with stride 1, and each input value is broadcast across the vector. In NCHW it walks the width,
and the weight is read one scalar at a time. Measured on the YOLOv4-tiny layers and the whole
network (README, "Data layout"): NHWC wins once the weights are packed, so it is the default
(`SearchConfig.data_layout`).

Relax's `ConvertLayout` rewrites the convolutions and carries the layout through every operator
that can infer one, inserting a transpose wherever an operator cannot. Leaky ReLU cannot in this
TVM, which would put two transposes around every activation; `leaky_relu_as_maximum` first
rewrites it as `maximum(x, alpha * x)`, the same values (alpha < 1) from two operators that can.
"""

from __future__ import annotations

import tvm
from tvm import relax
from tvm.relax.dpl import is_op, wildcard

from .relax_rewrite import map_functions, rewrite_calls

# data layout -> the layouts ConvertLayout gives a conv2d (data, weight); None: as imported.
DATA_LAYOUTS: dict[str, list[str] | None] = {"NCHW": None, "NHWC": ["NHWC", "HWIO"]}


def _as_maximum(func: relax.Function) -> relax.Function:
    x = wildcard()

    def rewrite(call: relax.Call, matches: dict) -> relax.Expr | None:
        alpha = float(call.attrs.alpha)
        if not 0.0 <= alpha <= 1.0:
            return None  # max(x, alpha x) is leaky ReLU only for a slope below one
        value = matches[x]
        return relax.op.maximum(value, relax.op.multiply(value, relax.const(alpha, value.ty.dtype)))

    return rewrite_calls(is_op("relax.nn.leakyrelu")(x), rewrite, func)


@tvm.transform.module_pass(opt_level=0, name="LeakyReluAsMaximum")
def leaky_relu_as_maximum(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
    """Every leaky ReLU (slope in [0, 1]) of every Relax function as maximum(x, alpha * x)."""
    return map_functions(mod, _as_maximum)


def _pad_inside(func: relax.Function) -> relax.Function:
    x = wildcard()
    inner = is_op("relax.permute_dims")(x)
    padded = is_op("relax.nn.pad")(inner)
    pattern = is_op("relax.permute_dims")(padded)

    def rewrite(call: relax.Call, matches: dict) -> relax.Expr | None:
        first, pad = [int(a) for a in matches[inner].attrs.axes], matches[padded]
        if [first[int(a)] for a in call.attrs.axes] != list(range(len(first))):
            return None  # the two transposes do not undo each other
        widths = [int(w) for w in pad.attrs.pad_width]
        # axis d of x is axis first.index(d) of the padded tensor
        moved = [w for d in range(len(first)) for w in widths[2 * first.index(d): 2 * first.index(d) + 2]]
        return relax.op.nn.pad(matches[x], moved, pad.attrs.pad_mode, float(pad.attrs.pad_value))

    return rewrite_calls(pattern, rewrite, func)


@tvm.transform.module_pass(opt_level=0, name="PadInsideTransposes")
def pad_inside_transposes(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
    """A pad between a transpose and its inverse (ConvertLayout leaves one around every pad, an
    operator it has no layout rule for, as the zero-point pad of an integer conv) as one pad of
    the untransposed tensor, along the same axes."""
    return map_functions(mod, _pad_inside)


def convert_data_layout(layout: str) -> tvm.transform.Pass:
    """The passes that put the network's convolutions, and what lies between them, in `layout`."""
    return tvm.transform.Sequential([leaky_relu_as_maximum,
                                     relax.transform.ConvertLayout({"relax.nn.conv2d": DATA_LAYOUTS[layout]}),
                                     pad_inside_transposes])

"""A bf16 precision for networks imported in fp32: convolutions on bf16 operands, fp32 accumulation.

bf16 keeps fp32's 8-bit exponent and rounds the mantissa to 8 bits: a product of two bf16
values is exact in fp32, so a convolution that multiplies bf16 operands and accumulates in fp32
differs from fp32 only by the rounding of its inputs. That is what the CPU's bf16 instructions
compute (AMX `tdpbf16ps`, AVX-512 `vdpbf16ps`) at 2x (vector) to 16x (tiles) fp32's rate, and
what OpenVINO runs an fp32 model in by default on such a CPU.

The pass rewrites every NHWC convolution of fp32 data into

    x --pad--> conv2d(x_bf16, W_bf16, padding 0, out fp32) --> epilogue (fp32) --round--> bf16

- the weight is a constant: rounded once, at compile time (FoldConstant), then packed like any
  weight; its output channels padded with zero columns to whole AMX tiles where the search will
  use them (16: a YOLO head's 75 become 80, sliced off the result);
- the activations are rounded where they are produced: each rounding starts at a convolution's
  input and moves up through the operators that commute with it (pad with zeros, max-pool,
  concat, split, slices, nearest resize: they move or select values), to the epilogue of the
  convolution that computed them, which then stores bf16. So bf16 flows between the layers
  (half the bytes of fp32 through every pool, concat and pad) and the result is bit for bit the
  one of rounding at each convolution's input. Only what leaves the network (the heads) stays
  fp32;
- the convolution reads its bf16 input as a *parameter*, padded by a separate stage (FuseOps does
  not fuse a pad into the convolution after it). It must: TVM's bf16 legalization turns every
  bf16 buffer a kernel allocates into fp32 (workloads.conv2d_nhwc_prepadded, which the
  convolution is legalized with, has no padding stage for that reason);
- a convolution whose input channels are odd (an RGB image's 3) stays fp32: a bf16 pair of the
  dot product instructions needs an even reduction.
"""

from __future__ import annotations

import functools
import operator

import tvm
from tvm import relax
from tvm.relax.dpl import is_op, is_tuple_get_item, rewrite_call, wildcard

from ..tasks.workloads import conv2d_nhwc_prepadded
from .int8 import relax_calls

PRECISIONS = ("as imported", "bf16")

# The bf16 build against the fp32 source framework: inputs of every convolution rounded to 8
# mantissa bits (relative error 2^-9 each), through YOLOv4-tiny's 21 layers.
BF16_ATOL = 0.03  # relative to each output's magnitude, as in verify.compare_outputs


def _rewrite(func: relax.Function, out_multiple: int) -> relax.Function:
    data, weight = wildcard(), wildcard()

    def rewriter(conv: relax.Call, matches: dict) -> relax.Expr:
        attrs = conv.attrs
        x = matches[data]
        if (attrs.data_layout != "NHWC" or attrs.kernel_layout != "HWIO" or attrs.out_layout != "NHWC"
                or attrs.groups != 1 or x.ty.dtype != "float32" or any(int(d) != 1 for d in attrs.dilation)
                or int(x.ty.shape[3]) % 2):
            return conv
        top, left, bottom, right = (int(p) for p in attrs.padding)
        padded = relax.op.nn.pad(x, [0, 0, top, bottom, left, right, 0, 0], pad_value=0.0)
        w = relax.op.astype(matches[weight], "bfloat16")
        out_channels = int(conv.ty.shape[3])
        extra = -out_channels % out_multiple
        if extra:  # zero columns, folded into the constant, sliced off the result
            w = relax.op.nn.pad(w, [0, 0, 0, 0, 0, 0, 0, extra], pad_value=0.0)
        out = relax.op.nn.conv2d(relax.op.astype(padded, "bfloat16"), w, strides=attrs.strides, padding=0,
                                 data_layout="NHWC", kernel_layout="HWIO", out_dtype="float32")
        return relax.op.strided_slice(out, axes=[3], begin=[0], end=[out_channels]) if extra else out

    return rewrite_call(is_op("relax.nn.conv2d")(data, weight), rewriter, func)


# Operators that commute with rounding to bf16: they move values (concatenation, split, slices,
# transposes, reshapes, nearest-neighbour resizing), pad with zeros, or select one of their inputs
# (max pooling: rounding is monotone). Rounding their output equals applying them to rounded
# inputs, bit for bit, on half the bytes.
_MOVES_VALUES = ("relax.concat", "relax.strided_slice", "relax.permute_dims", "relax.reshape",
                 "relax.nn.max_pool2d")


def _commutes_with_rounding(call: relax.Call) -> bool:
    name = call.op.name
    if name == "relax.nn.pad":
        return call.attrs.pad_mode == "constant" and float(call.attrs.pad_value) == 0.0
    if name == "relax.image.resize2d":
        return call.attrs.method == "nearest_neighbor" and call.attrs.out_dtype is None
    return name in _MOVES_VALUES


def _rounded(expr: relax.Expr) -> relax.Expr:
    if isinstance(expr, relax.Tuple):
        return relax.Tuple([_rounded(field) for field in expr.fields])
    return relax.op.astype(expr, "bfloat16")


def _round_where_produced(func: relax.Function) -> relax.Function:
    """Every rounding to bf16 moved up through the operators that commute with it, to where the
    value is computed (a convolution's epilogue, which then stores bf16): bf16 flows between
    layers wherever only convolutions read it."""
    producer = functools.reduce(operator.or_, (is_op(name)(varg_default_wildcard=True) for name in
                                               (*_MOVES_VALUES, "relax.nn.pad", "relax.image.resize2d")))
    split = is_op("relax.split")(wildcard())
    part = is_tuple_get_item(split)
    pattern = is_op("relax.astype")(producer | part)

    moved = 0

    def rewriter(cast: relax.Call, matches: dict) -> relax.Expr:
        nonlocal moved
        if cast.attrs.dtype != "bfloat16" or (producer in matches and not _commutes_with_rounding(matches[producer])):
            return cast
        moved += 1
        if split in matches:  # one part of a split: that part of the split rounded value
            call = matches[split]
            return relax.TupleGetItem(relax.Call(call.op, [_rounded(call.args[0])], call.attrs),
                                      matches[part].index)
        call = matches[producer]
        return relax.Call(call.op, [_rounded(call.args[0]), *call.args[1:]], call.attrs)

    while True:  # one operator up per pass
        moved, func = 0, rewrite_call(pattern, rewriter, func)
        if not moved:
            return func


def bf16_conv2d(out_multiple: int = 1) -> tvm.transform.Pass:
    """Every NHWC fp32 convolution of the Relax functions of a module on bf16 operands, fp32 out,
    its output channels rounded up to `out_multiple` (zero weight columns sliced off the result:
    an AMX tile holds 16 output columns); then the roundings moved to where their values are
    produced, so bf16 flows between the layers."""

    def rewrite(func: relax.Function) -> relax.Function:
        return _round_where_produced(_rewrite(func, out_multiple))

    @tvm.transform.module_pass(opt_level=0, name="BF16Conv2D")
    def transform(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        functions = {gv: rewrite(func) if isinstance(func, relax.Function) else func
                     for gv, func in mod.functions_items()}
        mod = tvm.IRModule(functions, attrs=mod.attrs, global_infos=mod.global_infos)
        # a value rounded for two readers is rounded once; the fp32 values nobody reads go
        return relax.transform.DeadCodeElimination()(relax.transform.EliminateCommonSubexpr()(mod))

    return transform


def _legalize_conv2d(bb: relax.BlockBuilder, call: relax.Call) -> relax.Expr:
    """A bf16 convolution (padded before) without a padding stage; any other as TVM legalizes it."""
    data, weight = call.args
    if data.ty.dtype != "bfloat16":
        return tvm.ir.Op.get("relax.nn.conv2d").get_attr("FLegalize")(bb, call)
    return bb.call_te(conv2d_nhwc_prepadded, data, weight, int(call.attrs.strides[0]), "float32",
                      primfunc_name_hint="conv2d_bf16")


# Relax's LegalizeOps with these: bf16 convolutions legalized without a padding stage.
BF16_LEGALIZATIONS = {"relax.nn.conv2d": _legalize_conv2d}


def count_bf16_conv2d(mod: tvm.IRModule) -> tuple[int, int]:
    """(bf16, other) conv2d calls in the Relax functions of `mod`, before legalization."""
    convs = relax_calls(mod, "relax.nn.conv2d")
    bf16 = sum(conv.args[0].ty.dtype == "bfloat16" for conv in convs)
    return bf16, len(convs) - bf16

"""Real integer arithmetic for quantized (QDQ) convolutions.

A QDQ model, as exported by PyTorch's PT2E quantization or onnxruntime, imports into Relax as
`conv2d(dequantize(x_q), dequantize(w_q))`: every convolution still runs in float on values that
merely round-trip through int8 ("fake quant"). This pass rewrites each such convolution into the
integer form a quantized runtime executes:

    x_q (uint8/int8) --pad with the zero point--> conv2d(x_q, w_q, out_dtype=int32)
        - zp_x * sum(w_q)            (int32, per output channel; folded to a constant)
        -> float32 * (s_x * s_w)     (requantize back to the float the graph expects)

which equals the fake-quant result exactly up to float rounding, because
s_x (x_q - zp_x) * s_w w_q summed over the window is s_x s_w (sum x_q w_q - zp_x sum w_q), and the
padded border holds zp_x, i.e. the real value 0, as in the float model. The float epilogue (bias,
leaky ReLU, the next layer's quantize) is left to FuseOps, which fuses it into the convolution's
PrimFunc; the heavy loop nest then multiplies 8-bit integers into an int32 accumulator.

Asked to (`channel_multiples`, for VNNI: 16 output x 4 input channels per dot product, see
vnni.py), the pass also rounds the channel counts of a uint8 x int8 conv up to whole tiles: the
weight gains zero rows and columns (a constant, so the padding is folded at compile time and
packed with the weight), the activations gain zero-point channels in the pad they already go
through, and the surplus output channels are sliced off. The zero weights make the extra
products vanish, so the result is unchanged. TensorIR's own padding (`pad_einsum`) needs every
access to be a plain iterator, which a convolution's `h * stride + kh` is not: the graph is
where the padding can go.
"""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax
from tvm.relax.dpl import is_const, is_op, wildcard

from ..relax_rewrite import map_functions, rewrite_calls


def _constant(expr: relax.Expr) -> np.ndarray:
    return expr.value.numpy()


def _integer_conv2d(conv: relax.Call, x_q: relax.Expr, x_scale: np.ndarray, x_zero: np.ndarray,
                    w_q: np.ndarray, w_scale: np.ndarray, w_zero: np.ndarray,
                    channel_multiples: tuple[int, int]) -> relax.Expr | None:
    """The integer form of `conv`, or None where the pass does not apply (then `conv` stays)."""
    attrs = conv.attrs
    if (attrs.data_layout != "NCHW" or attrs.kernel_layout != "OIHW" or attrs.out_layout != "NCHW"
            or x_scale.size != 1 or x_zero.size != 1 or np.any(w_zero != 0) or w_q.dtype != np.int8
            or x_q.ty.dtype not in ("uint8", "int8")):
        return None
    out_channels, in_channels = w_q.shape[:2]
    per_channel = (1, out_channels, 1, 1)
    zero = int(x_zero.reshape(()))
    extra_out, extra_in = ((-out_channels % channel_multiples[0], -in_channels % channel_multiples[1])
                           if x_q.ty.dtype == "uint8" and attrs.groups == 1 else (0, 0))
    top, left, bottom, right = (int(p) for p in attrs.padding)
    data = x_q
    if top or left or bottom or right or extra_in:
        data = relax.op.nn.pad(x_q, [0, 0, 0, extra_in, top, bottom, left, right], pad_value=float(zero))
    weight = np.pad(w_q, [(0, extra_out), (0, extra_in), (0, 0), (0, 0)])
    acc = relax.op.nn.conv2d(data, relax.const(weight), strides=attrs.strides, padding=0, dilation=attrs.dilation,
                             groups=attrs.groups, out_dtype="int32")
    if extra_out:
        acc = relax.op.strided_slice(acc, axes=[1], begin=[0], end=[out_channels])
    if zero:
        correction = zero * w_q.astype(np.int64).sum(axis=(1, 2, 3))
        acc = relax.op.subtract(acc, relax.const(correction.astype(np.int32).reshape(per_channel)))
    scale = (x_scale.astype(np.float64).reshape(()) * np.broadcast_to(w_scale.astype(np.float64).reshape(-1),
                                                                        (out_channels,)))
    return relax.op.multiply(relax.op.astype(acc, "float32"),
                             relax.const(scale.astype(np.float32).reshape(per_channel)))


def _rewrite_function(func: relax.Function, channel_multiples: tuple[int, int]) -> relax.Function:
    x_q, x_scale, x_zero = wildcard(), is_const(), is_const()
    w_q, w_scale, w_zero = is_const(), is_const(), is_const()
    pattern = is_op("relax.nn.conv2d")(is_op("relax.dequantize")(x_q, x_scale, x_zero),
                                       is_op("relax.dequantize")(w_q, w_scale, w_zero))

    def rewrite(conv: relax.Call, matches: dict) -> relax.Expr | None:
        return _integer_conv2d(conv, matches[x_q], _constant(matches[x_scale]), _constant(matches[x_zero]),
                               _constant(matches[w_q]), _constant(matches[w_scale]), _constant(matches[w_zero]),
                               channel_multiples)

    return rewrite_calls(pattern, rewrite, func)


def integer_conv2d(channel_multiples: tuple[int, int] = (1, 1)) -> tvm.transform.Pass:
    """The pass that rewrites every fake-quant conv2d of every Relax function into int8 x int8 ->
    int32 + requantize, the channels of uint8 x int8 convs rounded up to `channel_multiples`
    (output, input)."""

    @tvm.transform.module_pass(opt_level=0, name="IntegerConv2d")
    def rewrite(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        return map_functions(mod, lambda func: _rewrite_function(func, channel_multiples))

    return rewrite


def _per_tensor_dequantize(expr: relax.Expr, bindings: dict) -> tuple[relax.Expr, np.ndarray, np.ndarray] | None:
    """(q, scale, zero point) where `expr` is (a variable bound to) a per-tensor dequantize to float32."""
    call = bindings.get(expr, expr)
    if not (isinstance(call, relax.Call) and isinstance(call.op, tvm.ir.Op) and call.op.name == "relax.dequantize"
            and call.attrs.out_dtype == "float32" and all(isinstance(a, tvm.ir.expr.Constant) for a in call.args[1:])):
        return None
    scale, zero = _constant(call.args[1]), _constant(call.args[2])
    return (call.args[0], scale, zero) if scale.size == 1 and zero.size == 1 and scale.reshape(()) > 0 else None


def _commutes(call: relax.Call) -> bool:
    """Whether `call` gives the same values on quantized integers as on their dequantized floats:
    copies and monotone selections. Max-pool pads with the integer type's minimum, at or below
    every value, as -inf is in float; nearest-neighbour resize copies."""
    name = call.op.name
    return (name in ("relax.nn.max_pool2d", "relax.concat")
            or name == "relax.image.resize2d" and call.attrs.method == "nearest_neighbor")


def _commute_function(func: relax.Function) -> relax.Function:
    bindings = relax.analysis.get_var2val(func)
    pattern = (is_op("relax.nn.max_pool2d")(wildcard()) | is_op("relax.concat")(wildcard())
               | is_op("relax.image.resize2d")(wildcard(), wildcard()))

    def rewrite(call: relax.Call, _matches: dict) -> relax.Expr | None:
        if not _commutes(call):
            return None
        inputs = list(call.args[0].fields) if call.op.name == "relax.concat" else [call.args[0]]
        found = [_per_tensor_dequantize(x, bindings) for x in inputs]
        if any(f is None for f in found):
            return None
        (_, scale, zero), integers = found[0], [q for q, _, _ in found]
        if any(not (np.array_equal(s, scale) and np.array_equal(z, zero) and q.ty.dtype == integers[0].ty.dtype)
               for q, s, z in found):
            return None  # different quantizations: a requantize is needed anyway
        operand = relax.Tuple(integers) if call.op.name == "relax.concat" else integers[0]
        on_integers = relax.Call(call.op, [operand, *call.args[1:]], call.attrs)
        return relax.op.dequantize(on_integers, relax.const(scale.reshape(())), relax.const(zero.reshape(())))

    return rewrite_calls(pattern, rewrite, func)


def _cancel_function(func: relax.Function) -> relax.Function:
    q, scale, zero = wildcard(), is_const(), is_const()
    pattern = is_op("relax.quantize")(is_op("relax.dequantize")(q, scale, zero), is_const(), is_const())

    def rewrite(call: relax.Call, matches: dict) -> relax.Expr | None:
        same = (np.array_equal(_constant(call.args[1]), _constant(matches[scale]))
                and np.array_equal(_constant(call.args[2]), _constant(matches[zero]))
                and call.attrs.out_dtype == matches[q].ty.dtype and _constant(matches[scale]).size == 1)
        return matches[q] if same else None

    return rewrite_calls(pattern, rewrite, func)


@tvm.transform.module_pass(opt_level=0, name="IntegerGlue")
def integer_glue(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
    """Max-pools, concatenations and nearest resizes of dequantized values run on the integers
    (`op(dequantize(q)) = dequantize(op(q))`, exactly), and a quantize that undoes a dequantize
    with the same scale and zero point disappears: a quantized value then flows from the
    convolution that wrote it to the next one in one byte per element, with no float round trip."""
    return map_functions(mod, lambda func: _cancel_function(_commute_function(func)))


def _arithmetic(call: relax.Call, x: relax.Expr, scale: np.ndarray, zero: np.ndarray) -> relax.Expr:
    """A per-tensor quantize or dequantize as the arithmetic TVM legalizes it into."""
    # Scale and zero point as one-element tensors of x's rank, not scalars: legalization writes a
    # scalar into the PrimFunc as a literal, so convolutions that differ only in the quantization
    # of their output would be distinct tasks, each tuned on its own share of the trials (and the
    # layout conversion transposes a tensor of the same rank, not one of another).
    ones = (1,) * x.ty.ndim
    s = relax.const(scale.reshape(ones).astype(np.float32))
    if call.op.name == "relax.quantize":
        bounds = np.iinfo(call.attrs.out_dtype)
        shifted = relax.op.add(relax.op.round(relax.op.divide(x, s)), relax.const(zero.reshape(ones).astype(np.float32)))
        # clip as minimum and maximum: the layout conversion has a rule for those, none for clip
        clipped = relax.op.minimum(relax.op.maximum(shifted, relax.const(np.float32(bounds.min))),
                                   relax.const(np.float32(bounds.max)))
        return relax.op.astype(clipped, call.attrs.out_dtype)
    centred = relax.op.subtract(relax.op.astype(x, "int32"), relax.const(zero.reshape(ones).astype(np.int32)))
    return relax.op.multiply(relax.op.astype(centred, "float32"), s)


def _decompose_function(func: relax.Function) -> relax.Function:
    data, scale, zero = wildcard(), is_const(), is_const()
    pattern = is_op("relax.quantize")(data, scale, zero) | is_op("relax.dequantize")(data, scale, zero)

    def rewrite(call: relax.Call, matches: dict) -> relax.Expr | None:
        s, z = _constant(matches[scale]), _constant(matches[zero])
        if s.size != 1 or z.size != 1 or (call.op.name == "relax.dequantize" and call.attrs.out_dtype != "float32"):
            return None  # per channel (a weight's): left to TVM
        return _arithmetic(call, matches[data], s, z)

    return rewrite_calls(pattern, rewrite, func)


@tvm.transform.module_pass(opt_level=0, name="DecomposeQDQ")
def decompose_qdq(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
    """Every per-tensor quantize and dequantize of the Relax functions of `mod` as the elementwise
    arithmetic it stands for (x / s, round, + zp, clip, cast; (q - zp) * s), exactly as TVM
    legalizes it. The layout conversion then sees through it (it inserts a transpose on each side
    of an operator it has no layout rule for, as it has none for quantize), and FuseOps fuses it
    like any elementwise stage: into the epilogue of the convolution that produced the value, which
    then stores uint8 for the next one."""
    return map_functions(mod, _decompose_function)


# A QDQ model quantizes every activation; an input landing within float rounding of a step boundary
# can round the other way in another runtime and move the outputs downstream by a step or two.
# Measured on the trained YOLOv4-tiny: 0.4 % of the output range against onnxruntime.
QUANTIZED_ATOL = 0.02  # relative to each output's magnitude, as in verify.compare_outputs


def relax_calls(mod: tvm.IRModule, op_name: str) -> list[relax.Call]:
    """Every call of the operator `op_name` in the Relax functions of `mod`."""
    found = []

    def visit(expr: relax.Expr) -> None:
        if isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op) and expr.op.name == op_name:
            found.append(expr)

    for _, func in mod.functions_items():
        if isinstance(func, relax.Function):
            relax.analysis.post_order_visit(func, visit)
    return found


def is_quantized(mod: tvm.IRModule) -> bool:
    """Whether a Relax function of `mod` quantizes anything (a QDQ model)."""
    return bool(relax_calls(mod, "relax.quantize"))


def count_integer_conv2d(mod: tvm.IRModule) -> tuple[int, int]:
    """(integer, float) conv2d calls in the Relax functions of `mod`, before legalization."""
    convs = relax_calls(mod, "relax.nn.conv2d")
    integer = sum(conv.ty.dtype == "int32" for conv in convs)
    return integer, len(convs) - integer

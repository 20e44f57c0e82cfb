"""A bf16 precision for networks imported in fp32: convolutions on bf16 operands, fp32 accumulation.

bf16 keeps fp32's 8-bit exponent and rounds the mantissa to 8 bits: a product of two bf16
values is exact in fp32, so a convolution that multiplies bf16 operands and accumulates in fp32
differs from fp32 only by the rounding of its inputs. That is what the CPU's bf16 instructions
compute (AMX `tdpbf16ps`, AVX-512 `vdpbf16ps`) at 2x (vector) to 16x (tiles) fp32's rate, and
what OpenVINO runs an fp32 model in by default on such a CPU.

The pass rewrites every NHWC convolution of fp32 data into

    x (fp32) --pad, round to bf16--> conv2d(x_bf16, W_bf16, padding 0, out fp32) --> epilogue (fp32)

- the weight is a constant: rounded once, at compile time (FoldConstant), then packed like any
  weight;
- the activations are rounded where they enter a convolution, in the stage that pads them (a
  separate PrimFunc: FuseOps does not fuse a pad into the convolution after it), so the
  convolution reads a bf16 *parameter*. It must: TVM's bf16 legalization turns every bf16 buffer
  a kernel allocates into fp32 (workloads.conv2d_nhwc_prepadded, which the convolution is
  legalized with, has no padding stage for that reason);
- fp32 flows between layers: the epilogues, pools, concatenations and resizes stay in fp32, so
  nothing but the convolutions' inputs is rounded (the alternative, bf16 between layers, halves
  the activations' traffic but rounds every intermediate value; not measured yet);
- a convolution whose input channels are odd (an RGB image's 3) stays fp32: a bf16 pair of the
  dot product instructions needs an even reduction.
"""

from __future__ import annotations

import tvm
from tvm import relax
from tvm.relax.dpl import is_op, rewrite_call, wildcard

from ..tasks.workloads import conv2d_nhwc_prepadded
from .int8 import relax_calls

PRECISIONS = ("as imported", "bf16")

# The bf16 build against the fp32 source framework: inputs of every convolution rounded to 8
# mantissa bits (relative error 2^-9 each), through YOLOv4-tiny's 21 layers.
BF16_ATOL = 0.03  # relative to each output's magnitude, as in verify.compare_outputs


def _rewrite(func: relax.Function) -> relax.Function:
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
        return relax.op.nn.conv2d(relax.op.astype(padded, "bfloat16"),
                                  relax.op.astype(matches[weight], "bfloat16"), strides=attrs.strides, padding=0,
                                  data_layout="NHWC", kernel_layout="HWIO", out_dtype="float32")

    return rewrite_call(is_op("relax.nn.conv2d")(data, weight), rewriter, func)


@tvm.transform.module_pass(opt_level=0, name="BF16Conv2D")
def bf16_conv2d(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
    """Every NHWC fp32 convolution of the Relax functions of `mod` on bf16 operands, fp32 out."""
    functions = {gv: _rewrite(func) if isinstance(func, relax.Function) else func
                 for gv, func in mod.functions_items()}
    return tvm.IRModule(functions, attrs=mod.attrs, global_infos=mod.global_infos)


def _legalize_conv2d(bb: relax.BlockBuilder, call: relax.Call) -> relax.Expr:
    """A bf16 convolution (padded before) without a padding stage; any other as TVM legalizes it."""
    data, weight = call.args
    if data.ty.dtype != "bfloat16":
        return tvm.ir.Op.get("relax.nn.conv2d").get_attr("FLegalize")(bb, call)
    return bb.call_te(conv2d_nhwc_prepadded, data, weight, int(call.attrs.strides[0]), "float32",
                      primfunc_name_hint="conv2d_bf16")


def legalize_ops() -> tvm.transform.Pass:
    """Relax's LegalizeOps, with bf16 convolutions legalized without a padding stage."""
    return relax.transform.LegalizeOps(customize_legalize_map={"relax.nn.conv2d": _legalize_conv2d})


def count_bf16_conv2d(mod: tvm.IRModule) -> tuple[int, int]:
    """(bf16, other) conv2d calls in the Relax functions of `mod`, before legalization."""
    convs = relax_calls(mod, "relax.nn.conv2d")
    bf16 = sum(conv.args[0].ty.dtype == "bfloat16" for conv in convs)
    return bf16, len(convs) - bf16

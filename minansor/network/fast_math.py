"""exp, sigmoid, softmax and tanh legalized so that the vectorizer can use them.

TVM lowers `exp` to LLVM's `llvm.exp`, which on x86 becomes one call of libm's `expf` per element:
a vectorized loop over a sigmoid still computes its lanes one by one. Measured on one YOLOX-s
activation (104 x 104 x 64, two cores): a sigmoid takes 33x a copy of the same tensor; with
every convolution of YOLOX-s followed by a SiLU, that floor sits under every task, and no schedule
can move it (the search cannot change how an operator is computed, only in what order).

TVM's own `topi.fast_exp` is a polynomial (Cephes' exp: range reduction by ln 2, a degree-5
polynomial, the exponent written into the float's bits) that vectorizes: relative error at most
4e-6 over float32's range, 0 below -88.4, inf above 88.4. This pass legalizes the operators
that call exp with it, and leaves every other operator (and every non-float32 one) to TVM.
`SearchConfig.fast_math=False` keeps libm's exp.
"""

from __future__ import annotations

import tvm
from tvm import relax, te, topi


def _fast_sigmoid(x: te.Tensor) -> te.Tensor:
    e = topi.fast_exp(topi.negative(x))
    return te.compute(x.shape, lambda *i: 1.0 / (1.0 + e(*i)), name="sigmoid", tag="elemwise")


def _float32(call: relax.Call) -> bool:
    return call.args[0].ty.dtype == "float32"


def _legalization(op_name: str, compute):
    """FLegalize for `op_name`: `compute` (a TE function of the call) for float32, TVM's otherwise."""
    default = tvm.ir.Op.get(op_name).get_attr("FLegalize")

    def legalize(bb: relax.BlockBuilder, call: relax.Call) -> relax.Expr:
        if not _float32(call):
            return default(bb, call)
        return bb.call_te(compute(call), call.args[0], primfunc_name_hint=op_name.split(".")[-1])

    return legalize


FAST_MATH = {
    "relax.exp": _legalization("relax.exp", lambda call: topi.fast_exp),
    "relax.sigmoid": _legalization("relax.sigmoid", lambda call: _fast_sigmoid),
    "relax.nn.silu": _legalization("relax.nn.silu", lambda call: lambda x: topi.multiply(x, _fast_sigmoid(x))),
    "relax.tanh": _legalization("relax.tanh", lambda call: topi.fast_tanh),
    "relax.nn.softmax": _legalization("relax.nn.softmax",
                                      lambda call: lambda x: topi.nn.fast_softmax(x, int(call.attrs.axis))),
}

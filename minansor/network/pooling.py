"""A large max-pool as two thin ones: k x k as k x 1 after 1 x k.

The maximum over a window is the maximum over its rows of each row's maximum, and a max-pool pads
with the lowest value, so a 1 x k pool (along the width, with the width's stride and padding)
followed by a k x 1 pool (along the height, with the height's) computes exactly the values of
the k x k pool, with 2k comparisons per output instead of k^2. YOLOX-s's SPP pools 13 x 13, 9 x 9
and 5 x 5 windows at stride 1: 169 comparisons per output become 26. This is a different program,
not a schedule of the same one, so no tuner finds it; `SearchConfig.separable_pools=False`
keeps the pools as imported.
"""

from __future__ import annotations

import tvm
from tvm import relax
from tvm.relax.dpl import is_op, wildcard

from ..relax_rewrite import map_functions, rewrite_calls

MIN_WINDOW = 5  # below it the second pass over memory costs more than the comparisons it saves


def _separated(call: relax.Call) -> relax.Expr | None:
    """The two thin pools of `call`, or None where it stays."""
    attrs = call.attrs
    kh, kw = (int(k) for k in attrs.pool_size)
    if (min(kh, kw) < MIN_WINDOW or attrs.ceil_mode or any(int(d) != 1 for d in attrs.dilation)):
        return None
    sh, sw = (int(s) for s in attrs.strides)
    top, left, bottom, right = (int(p) for p in attrs.padding)
    common = {"layout": attrs.layout, "out_layout": attrs.out_layout}
    along_width = relax.op.nn.max_pool2d(call.args[0], pool_size=(1, kw), strides=(1, sw),
                                         padding=(0, left, 0, right), **common)
    return relax.op.nn.max_pool2d(along_width, pool_size=(kh, 1), strides=(sh, 1),
                                  padding=(top, 0, bottom, 0), **common)


@tvm.transform.module_pass(opt_level=0, name="SeparableMaxPools")
def separable_max_pools(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
    """Every max_pool2d of the Relax functions of `mod` with a window of at least MIN_WINDOW on
    both sides as a 1 x k pool followed by a k x 1 pool: the same values, 2k comparisons per
    output instead of k^2."""
    pattern = is_op("relax.nn.max_pool2d")(wildcard())
    return map_functions(mod, lambda func: rewrite_calls(pattern, lambda call, _: _separated(call), func))

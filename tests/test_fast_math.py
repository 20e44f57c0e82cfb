"""exp and the operators that call it, legalized as TVM's vectorizable polynomial: close to the
exact function over float32's range, and compiled without a libm call per element."""

import numpy as np
import pytest
import tvm
from tvm import relax

from minansor.network.extract import extract_tasks
from minansor.network.fast_math import FAST_MATH
from minansor.network.graph import optimize

OPS = {
    "exp": (relax.op.exp, np.exp),
    "sigmoid": (relax.op.sigmoid, lambda v: 1 / (1 + np.exp(-v))),
    "silu": (relax.op.nn.silu, lambda v: v / (1 + np.exp(-v))),
    "tanh": (relax.op.tanh, np.tanh),
    "softmax": (relax.op.nn.softmax, lambda v: np.exp(v - v.max(-1, keepdims=True))
                / np.exp(v - v.max(-1, keepdims=True)).sum(-1, keepdims=True)),
}


def _module(op: str, shape: tuple[int, ...]) -> tvm.IRModule:
    x = relax.Var("x", relax.TensorType(shape, "float32"))
    bb = relax.BlockBuilder()
    with bb.function("main", [x]):
        with bb.dataflow():
            y = bb.emit_output(OPS[op][0](x))
        bb.emit_func_output(y)
    return bb.get()


def _inputs(op: str) -> np.ndarray:
    if op == "softmax":
        return np.random.default_rng(0).normal(0, 5, (64, 1000)).astype(np.float32)
    return np.linspace(-100, 100, 200_001, dtype=np.float32).reshape(1, -1)


@pytest.mark.parametrize("op", sorted(OPS))
def test_fast_math_is_within_a_few_ulps_of_the_exact_function(op):
    x = _inputs(op)
    mod = relax.transform.LegalizeOps(customize_legalize_map=FAST_MATH)(_module(op, x.shape))
    got = relax.VirtualMachine(tvm.compile(mod, target="llvm"), tvm.cpu())["main"](tvm.runtime.tensor(x)).numpy()
    with np.errstate(over="ignore"):
        want = OPS[op][1](x.astype(np.float64))
    # exp is inf beyond 88.4 and 0 below -88.4 (float32's normal range); everything else is compared
    normal = np.isfinite(want) & (np.abs(want) > 1e-30) & (np.abs(want) < 1e38)
    assert np.all(np.isfinite(got[normal]))
    relative = np.abs(got[normal] - want[normal]) / np.abs(want[normal])
    assert relative.max() < 1e-5, relative.max()


def _llvm_ir(fused: tvm.IRModule) -> str:
    """The LLVM IR of a network's only task (a sigmoid), its innermost loop vectorized."""
    [task] = extract_tasks(fused)
    sch = tvm.s_tir.Schedule(task.task.mod)
    blocks = sch.get_child_blocks(sch.get_sblock("root"))
    for block in blocks[:-1]:
        sch.compute_inline(block)
    sch.vectorize(sch.get_loops(blocks[-1])[-1])
    return tvm.compile(sch.mod, target="llvm").mod.inspect_source("ll")


def test_the_vectorized_sigmoid_calls_no_libm_exp_and_fast_math_off_keeps_it():
    mod = _module("sigmoid", (1, 8, 8, 64))
    # llvm.exp of a vector becomes a libm call per lane on x86
    assert "llvm.exp" not in _llvm_ir(optimize(mod, "NCHW", fast_math=True))
    assert "llvm.exp.v64f32" in _llvm_ir(optimize(mod, "NCHW", fast_math=False))

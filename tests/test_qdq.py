"""Quantize and dequantize written as elementwise arithmetic: the layout conversion sees through
them and FuseOps fuses them, with the same numbers as TVM's own legalization."""

import numpy as np
import pytest
import tvm
from tvm import relax

from minansor.network.extract import extract_tasks
from minansor.network.graph import graph_passes, main_bindings
from minansor.network.int8 import integer_glue, relax_calls


def _qdq_chain():
    """A QDQ graph's glue: an integer conv whose result is quantized, dequantized, max-pooled and
    quantized again for the next conv, as PT2E exports it (per-tensor activations, per-channel
    weights)."""
    rng = np.random.default_rng(0)

    def weight(cin, cout):
        return relax.op.dequantize(relax.const(rng.integers(-128, 128, (cout, cin, 3, 3)).astype(np.int8)),
                                   relax.const(rng.uniform(0.001, 0.01, cout).astype(np.float32)),
                                   relax.const(np.zeros(cout, np.int8)), axis=0)

    def qdq(x, scale, zero):
        s, z = relax.const(np.float32(scale)), relax.const(np.uint8(zero))
        return relax.op.dequantize(relax.op.quantize(x, s, z, axis=1, out_dtype="uint8"), s, z, axis=1)

    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((1, 8, 12, 12), "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            y = bb.emit(relax.op.nn.conv2d(qdq(x, 0.02, 37), weight(8, 16), padding=1))
            y = bb.emit(relax.op.nn.max_pool2d(qdq(y, 0.05, 128), pool_size=2, strides=2))
            y = bb.emit_output(relax.op.nn.conv2d(qdq(y, 0.04, 20), weight(16, 16), padding=1))
        bb.emit_func_output(y)
    return bb.get(), rng.uniform(-0.7, 4.0, (1, 8, 12, 12)).astype(np.float32)


def _optimized(mod, decompose: bool):
    passes = [make() for what, make in graph_passes() if decompose or not what.startswith("write the quantizes")]
    return tvm.transform.Sequential(passes)(mod)


def _transposes(fused) -> int:
    """Transposes left in the fused PrimFuncs main calls."""
    return sum("transpose" in str(b.value.args[0]) for b in main_bindings(fused)
               if isinstance(b.value, relax.Call) and b.value.args and isinstance(b.value.args[0], relax.GlobalVar))


def test_qdq_as_arithmetic_leaves_no_transposes_and_changes_no_number():
    mod, x = _qdq_chain()
    before, after = _optimized(mod, decompose=False), _optimized(mod, decompose=True)
    # NCHW in and out: one transpose at the input and one at the output, none in between
    assert _transposes(before) > 2 and _transposes(after) == 2
    # the quantize behind the first conv is fused into its epilogue: that conv writes uint8
    convs = [t for t in extract_tasks(after) if "conv2d" in t.name]
    assert any(str(t.task.args[-1].dtype) == "uint8" for t in convs if t.task is not None)

    def run(fused):
        vm = relax.VirtualMachine(tvm.compile(fused, target="llvm"), tvm.cpu())
        return vm["main"](tvm.runtime.tensor(x)).numpy()

    np.testing.assert_array_equal(run(after), run(before))


def _glue(op: str):
    """quantize(op(dequantize(q...))) with the same scale and zero point on both sides, NCHW."""
    s, z = relax.const(np.float32(0.05)), relax.const(np.uint8(121))
    xs = [relax.Var(f"x{i}", relax.TensorType((1, 5, 7, 9), "uint8")) for i in range(2)]
    deq = [relax.op.dequantize(x, s, z, axis=1) for x in xs]
    value = {"max_pool2d": lambda: relax.op.nn.max_pool2d(deq[0], pool_size=3, strides=1, padding=1),
             "concat": lambda: relax.op.concat(deq, axis=1),
             "resize2d": lambda: relax.op.image.resize2d(deq[0], (14, 18), method="nearest_neighbor")}[op]
    bb = relax.BlockBuilder()
    with bb.function("main", xs):
        with bb.dataflow():
            y = bb.emit(value())
            y = bb.emit_output(relax.op.quantize(y, s, z, axis=1, out_dtype="uint8"))
        bb.emit_func_output(y)
    return bb.get()


@pytest.mark.parametrize("op", ["max_pool2d", "concat", "resize2d"])
def test_copies_and_max_pool_run_on_the_integers_with_the_same_numbers(op):
    mod = _glue(op)
    glued = integer_glue(mod)
    assert not relax_calls(glued, "relax.quantize") and not relax_calls(glued, "relax.dequantize")
    rng = np.random.default_rng(1)
    xs = [tvm.runtime.tensor(rng.integers(0, 256, (1, 5, 7, 9)).astype(np.uint8)) for _ in range(2)]

    def run(m):
        vm = relax.VirtualMachine(tvm.compile(relax.transform.LegalizeOps()(m), target="llvm"), tvm.cpu())
        return vm["main"](*xs).numpy()

    integer, reference = run(glued), run(mod)
    assert integer.dtype == np.uint8
    np.testing.assert_array_equal(integer, reference)


def test_convolutions_that_differ_only_in_their_quantization_are_one_task():
    """Three convs of one shape, each quantizing its result with its own scale: the scales are
    arguments of the fused PrimFuncs, not literals in them, so the two that write uint8 for the
    next one are one task (called twice) and share its trials."""
    rng = np.random.default_rng(0)

    def weight():
        return relax.op.dequantize(relax.const(rng.integers(-128, 128, (16, 16, 3, 3)).astype(np.int8)),
                                   relax.const(rng.uniform(0.001, 0.01, 16).astype(np.float32)),
                                   relax.const(np.zeros(16, np.int8)), axis=0)

    def qdq(x, scale):
        s, z = relax.const(np.float32(scale)), relax.const(np.uint8(128))
        return relax.op.dequantize(relax.op.quantize(x, s, z, axis=1, out_dtype="uint8"), s, z, axis=1)

    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((1, 16, 12, 12), "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            y = x
            for scale in (0.02, 0.05, 0.04):
                y = bb.emit(relax.op.nn.conv2d(qdq(y, scale), weight(), padding=1))
            y = bb.emit_output(y)
        bb.emit_func_output(y)
    convs = [t for t in extract_tasks(_optimized(bb.get(), decompose=True)) if "conv2d" in t.name]
    assert sorted(t.weight for t in convs) == [1, 2]

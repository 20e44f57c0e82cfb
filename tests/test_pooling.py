"""A large max-pool as two thin ones: the same values, and still on the integers in an int8 graph."""

import numpy as np
import pytest
import tvm
from tvm import relax

from minansor.network.graph import optimize
from minansor.network.int8 import integer_glue, relax_calls
from minansor.network.pooling import separable_max_pools


def _pool(shape, pool_size, strides, padding, dtype="float32", dequantized=False):
    x = relax.Var("x", relax.TensorType(shape, dtype))
    bb = relax.BlockBuilder()
    with bb.function("main", [x]):
        with bb.dataflow():
            s, z = relax.const(np.float32(0.05)), relax.const(np.uint8(121))
            value = relax.op.dequantize(x, s, z, axis=1) if dequantized else x
            y = bb.emit(relax.op.nn.max_pool2d(value, pool_size=pool_size, strides=strides, padding=padding))
            if dequantized:
                y = bb.emit(relax.op.quantize(y, s, z, axis=1, out_dtype="uint8"))
            y = bb.emit_output(y)
        bb.emit_func_output(y)
    return bb.get()


def _run(mod, x):
    vm = relax.VirtualMachine(tvm.compile(relax.transform.LegalizeOps()(mod), target="llvm"), tvm.cpu())
    return vm["main"](tvm.runtime.tensor(x)).numpy()


@pytest.mark.parametrize("pool_size,strides,padding", [((13, 13), (1, 1), (6, 6, 6, 6)), ((5, 9), (1, 1), (2, 4, 2, 4)),
                                                        ((5, 5), (2, 3), (1, 2, 2, 0)), ((7, 6), (1, 1), (0, 0, 0, 0))])
def test_two_thin_pools_compute_what_the_square_one_does(pool_size, strides, padding):
    mod = _pool((1, 6, 17, 19), pool_size, strides, padding)
    separated = separable_max_pools(mod)
    pools = relax_calls(separated, "relax.nn.max_pool2d")
    assert sorted(tuple(int(k) for k in p.attrs.pool_size) for p in pools) == sorted([(1, pool_size[1]),
                                                                                      (pool_size[0], 1)])
    # negative values too: padding must be the lowest value, not zero
    x = np.random.default_rng(0).normal(size=(1, 6, 17, 19)).astype(np.float32)
    np.testing.assert_array_equal(_run(separated, x), _run(mod, x))


def test_small_windows_stay_and_so_does_the_pipeline_with_the_option_off():
    assert len(relax_calls(separable_max_pools(_pool((1, 4, 8, 8), (3, 3), (1, 1), (1, 1, 1, 1))),
                           "relax.nn.max_pool2d")) == 1
    mod = _pool((1, 4, 8, 8), (5, 5), (1, 1), (2, 2, 2, 2))
    assert len([gv for gv in optimize(mod, separable_pools=False).functions if "max_pool" in gv.name_hint]) == 1
    assert len([gv for gv in optimize(mod).functions if "max_pool" in gv.name_hint]) == 2


def test_a_pool_of_quantized_values_runs_on_the_integers_in_two_thin_passes():
    mod = _pool((1, 4, 9, 9), (9, 9), (1, 1), (4, 4, 4, 4), dtype="uint8", dequantized=True)
    glued = separable_max_pools(integer_glue(mod))  # in the pipeline's order
    assert not relax_calls(glued, "relax.quantize") and not relax_calls(glued, "relax.dequantize")
    assert [p.ty.dtype for p in relax_calls(glued, "relax.nn.max_pool2d")] == ["uint8", "uint8"]
    x = np.random.default_rng(1).integers(0, 256, (1, 4, 9, 9)).astype(np.uint8)
    np.testing.assert_array_equal(_run(glued, x), _run(mod, x))

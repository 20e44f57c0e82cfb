"""VNNI: int8 multiply-accumulates tensorized with `vpdpbusd`, on weights packed so that each
16 x 4 tile is one vector, checked against the untuned program on full-range int8 data."""

import dataclasses

import numpy as np
import pytest
import tvm
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tvm import relax

from minansor.config import SearchConfig
from minansor.measure.peak import int8_peak_gops
from minansor.measure.verify import check_against_untuned
from minansor.model.features import FEATURE_NAMES, extract
from minansor.network.extract import extract_tasks
from minansor.network.graph import optimize_for
from minansor.space.search_space import SearchSpace
from minansor.space.steps import Tensorize, TileForIntrinsic
from minansor.tasks.targets import resolve_target
from minansor.tasks.workloads import make_task
from minansor.tir.layout_rewrite import kernel, packed_shapes
from minansor.tir.vnni import LANES, REDUCTION, VNNI_INTRIN, has_vnni

CPU = resolve_target("cpu")
CONFIG = dataclasses.replace(SearchConfig(), num_cores=2, amx=False)  # VNNI itself, also on a CPU with AMX
needs_vnni = pytest.mark.skipif(not has_vnni(CPU), reason="this CPU has no AVX-512 VNNI")


def _valid(space: SearchSpace, count: int, seed: int = 0):
    rng, found = np.random.default_rng(seed), []
    for _ in range(100):
        applied = space.random(rng)
        if applied is not None:
            found.append(applied)
        if len(found) == count:
            return found
    raise AssertionError(f"{len(found)} valid programs in 100 draws")


@needs_vnni
def test_int8_conv_sketches_tile_for_the_intrinsic_and_tensorize_last():
    space = SearchSpace(make_task("qconv-6x6-8-32-3x3"), CONFIG)
    assert space.sketches and all(TileForIntrinsic("conv2d_nhwc", VNNI_INTRIN) in s.steps for s in space.sketches)
    for sketch in space.sketches:
        assert sketch.annotations[-1] == Tensorize("conv2d_nhwc_o", VNNI_INTRIN)
        assert not any(s.describe().startswith("vectorize") and s.block == "conv2d_nhwc_o" for s in sketch.annotations)
    # the weight always goes packed: the intrinsic reads each 16 x 4 tile as one vector
    assert all(any(s.describe().startswith("rewrite the layout of weight") for s in sketch.steps)
               for sketch in space.sketches)


@needs_vnni
def test_tensorized_programs_emit_vpdpbusd_and_match_the_untuned_conv_on_full_range_data():
    task = make_task("qconv-6x6-8-32-3x3s2")
    space = SearchSpace(task, CONFIG)
    for applied in _valid(space, 3):
        # the intrinsic's 16 output channels x 4 input channels come last, contiguous
        (name, shape, packed), = [p for p in packed_shapes(applied.mod) if p[0] == "weight"]
        assert shape == (3, 3, 8, 32) and packed[-2:] == (16, 4)
        check = check_against_untuned(task, applied.mod, 1e-5, 1e-5)
        assert check.ok, check.detail
        asm = tvm.compile(kernel(applied.mod), target=task.target).mod.inspect_source("asm")
        assert "vpdpbusd" in asm


@needs_vnni
def test_the_cost_model_sees_the_work_of_a_tensorized_block():
    space = SearchSpace(make_task("qconv-6x6-8-32-1x1"), CONFIG)
    (applied,) = _valid(space, 1)
    assert applied.untensorized is not None
    int_ops = FEATURE_NAMES.index("int_ops")
    assert extract(applied.modeled)[:, int_ops].max() > extract(applied.mod)[:, int_ops].max()


def test_vnni_is_used_only_where_it_applies():
    # float convs, channels that do not fill a 16 x 4 tile, a target without VNNI, the ablation
    for name, target, config in [("conv-6x6-8-32-3x3-nhwc", CPU, CONFIG), ("qconv-6x6-8-24-3x3", CPU, CONFIG),
                                 ("qconv-6x6-8-32-3x3", {"kind": "llvm", "mcpu": "skylake", "num-cores": 2}, CONFIG),
                                 ("qconv-6x6-8-32-3x3", CPU, dataclasses.replace(CONFIG, vnni=False))]:
        space = SearchSpace(make_task(name, target), config)
        assert space.sketches and not any(isinstance(s, TileForIntrinsic) for sk in space.sketches for s in sk.steps)


@needs_vnni
def test_the_int8_peak_is_measured_with_vpdpbusd():
    gops = int8_peak_gops(chains=4, steps=1 << 10, repeat=2)
    assert 0 < gops < float("inf")


@needs_vnni
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([4, 8, 12]), st.sampled_from([16, 32, 48]), st.sampled_from([1, 3]), st.sampled_from([1, 2]),
       st.integers(3, 7), st.integers(0, 2**16))
def test_any_tensorized_int8_conv_equals_the_untuned_one_exactly(cin, cout, k, stride, size, seed):
    task = make_task(f"qconv-{size}x{size}-{cin}-{cout}-{k}x{k}" + (f"s{stride}" if stride > 1 else ""))
    space = SearchSpace(task, CONFIG)
    (applied,) = _valid(space, 1, seed)
    check = check_against_untuned(task, applied.mod, 0.0, 0.0, seed)  # integers, then one float scale: exact
    assert check.ok, check.detail


def _qdq_conv(cin: int, cout: int, k: int, stride: int, size: int, seed: int) -> tvm.IRModule:
    """One fake-quant conv as a QDQ model imports: uint8 activations (zero point 37), int8 weights."""
    rng = np.random.default_rng(seed)
    w_q = rng.integers(-128, 128, (cout, cin, k, k)).astype(np.int8)
    x_scale, x_zero = relax.const(np.float32(0.02)), relax.const(np.uint8(37))
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((1, cin, size, size), "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            q = bb.emit(relax.op.quantize(x, x_scale, x_zero, axis=1, out_dtype="uint8"))
            w = relax.op.dequantize(relax.const(w_q), relax.const(rng.uniform(0.001, 0.01, cout).astype(np.float32)),
                                    relax.const(np.zeros(cout, np.int8)), axis=0)
            y = bb.emit_output(relax.op.nn.conv2d(relax.op.dequantize(q, x_scale, x_zero, axis=1), w,
                                                  strides=stride, padding=k // 2))
        bb.emit_func_output(y)
    return bb.get()


def _weight_shape(task) -> tuple[int, ...]:
    func = task.mod["main"]
    return tuple(int(d) for d in func.params[1].shape)


def _conv_task(fused: tvm.IRModule):
    (task,) = [t.task for t in extract_tasks(fused, CPU) if t.task is not None and "conv2d" in t.name]
    return task


@needs_vnni
def test_unaligned_channels_are_padded_into_the_constant_weight_and_change_nothing():
    mod = _qdq_conv(3, 20, 3, 1, 8, 0)  # the first layer's 3 input channels; 20 = 16 + 4 outputs
    padded = optimize_for(mod, CONFIG)
    task = _conv_task(padded)
    assert _weight_shape(task) == (3, 3, REDUCTION, 2 * LANES)  # HWIO, a layout-free constant
    assert all(TileForIntrinsic("conv2d_nhwc", VNNI_INTRIN) in s.steps for s in SearchSpace(task, CONFIG).sketches)
    unpadded = optimize_for(mod, dataclasses.replace(CONFIG, vnni=False))
    assert _weight_shape(_conv_task(unpadded)) == (3, 3, 3, 20)
    x = np.random.default_rng(1).uniform(-0.7, 4.0, (1, 3, 8, 8)).astype(np.float32)

    def run(fused):
        return relax.VirtualMachine(tvm.compile(fused, target=CPU), tvm.cpu())["main"](tvm.runtime.tensor(x)).numpy()

    np.testing.assert_array_equal(run(padded), run(unpadded))  # zero weights add exact zeros


@needs_vnni
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([1, 3, 6]), st.sampled_from([8, 20, 75]), st.sampled_from([1, 3]), st.sampled_from([1, 2]),
       st.integers(4, 7), st.integers(0, 2**16))
def test_any_padded_int8_conv_tensorizes_and_equals_the_untuned_one_exactly(cin, cout, k, stride, size, seed):
    task = _conv_task(optimize_for(_qdq_conv(cin, cout, k, stride, size, seed), CONFIG))
    space = SearchSpace(task, CONFIG)
    (applied,) = _valid(space, 1, seed)
    assert any(isinstance(step, TileForIntrinsic) for step in space.sketches[applied.program.sketch].steps)
    check = check_against_untuned(task, applied.mod, 0.0, 0.0, seed)  # integers, then one float scale: exact
    assert check.ok, check.detail

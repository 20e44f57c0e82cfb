"""Layout rewrite of constant weights: the packed layout follows the tiles, and the kernel on
weights packed by the program's own packing stage computes what the untuned program computes."""

import dataclasses

import numpy as np
import pytest
import tvm
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from minansor.compare.task import as_compared
from minansor.config import SearchConfig
from minansor.measure.verify import check_against_untuned
from minansor.space.annotate import factorizations
from minansor.space.program import Program, apply_program, materialize
from minansor.space.search_space import SearchSpace
from minansor.space.steps import InvalidProgram, RewriteLayout
from minansor.tasks.workloads import make_task
from minansor.tir.layout_rewrite import kernel, pack_inputs, packed_shapes, packings

CONFIG = dataclasses.replace(SearchConfig(), num_cores=2)


def test_the_weight_is_stored_in_the_order_the_tiles_read_it():
    task = make_task("conv-12x12-8-16-3x3")
    space = SearchSpace(task, CONFIG)
    index = next(i for i, s in enumerate(space.sketches) if len(s.steps) == 3)  # tiled, unfused, packed
    assert space.sketches[index].steps[-1] == RewriteLayout("conv2d_nchw", "weight")
    tiles = {"nn": (1, 1, 1, 1), "ff": (1, 2, 4, 2), "yy": (2, 2, 3, 1), "xx": (1, 4, 1, 3), "rc": (2, 4),
             "ry": (1, 3), "rx": (3, 1)}
    decisions = {f"tile conv2d_nchw.{loop}": factors for loop, factors in tiles.items()}
    applied = apply_program(task.mod, space.sketches, Program.make(index, {
        **decisions, **{k.name: k.choices[0] for k in _choice_knobs(space, index)}}))
    # SSRSRS: ff0 .. | ff1 .. | rc0 ry0 rx0 | ff2 .. | rc1 ry1 rx1 | ff3 ..; loops of extent 1 take no dimension
    assert packed_shapes(applied.mod) == [("weight", (16, 8, 3, 3), (2, 2, 3, 4, 4, 3, 2))]
    weight = np.arange(16 * 8 * 3 * 3, dtype="float32").reshape(16, 8, 3, 3)
    packed = pack_inputs(applied.mod, [None, weight, None, None])[1]
    # element [ff1, rc0, rx0, ff2, rc1, ry1, ff3] is weight[ff1*8 + ff2*2 + ff3, rc0*4 + rc1, ry1, rx0]
    assert packed[1, 0, 2, 3, 1, 0, 1] == weight[1 * 8 + 3 * 2 + 1, 0 * 4 + 1, 0, 2]
    assert shape_of(kernel(applied.mod), 1) == (2, 2, 3, 4, 4, 3, 2)  # what is built and timed takes it packed
    # the numpy packing moves every element where TVM's own element-by-element map does
    (index_map,) = packings(applied.mod).values()
    np.testing.assert_array_equal(packed, index_map.map_tensor(tvm.runtime.tensor(weight)).numpy())


def shape_of(mod, param: int) -> tuple[int, ...]:
    return tuple(int(d) for d in mod["main"].params[param].shape)


def _choice_knobs(space, index):
    def first(knob, preferred):
        return (knob.extent,) + (1,) * (knob.parts - 1) if knob.is_tile else knob.choices[0]

    knobs = materialize(space.task.mod, space.sketches, index, first).knobs
    return [k for k in knobs if not k.is_tile]


@st.composite
def packed_conv_programs(draw):
    """A conv (NCHW or NHWC, 1x1 or 3x3, stride 1 or 2), one of its sketches, and every knob
    drawn: tile sizes over all factorizations, the other knobs over all their choices."""
    h, w = draw(st.integers(3, 9)), draw(st.integers(3, 9))
    cin, cout = draw(st.sampled_from([1, 2, 3, 4, 6, 8])), draw(st.sampled_from([1, 2, 4, 6, 8, 16]))
    k, stride, nhwc = draw(st.sampled_from([1, 3])), draw(st.sampled_from([1, 2])), draw(st.booleans())
    task = make_task(f"conv-{h}x{w}-{cin}-{cout}-{k}x{k}" + (f"s{stride}" if stride > 1 else "")
                     + ("-nhwc" if nhwc else ""))
    space = SearchSpace(task, CONFIG)
    index = draw(st.integers(0, len(space.sketches) - 1))

    def decide(knob, preferred):
        if knob.is_tile:
            return draw(st.sampled_from(factorizations(knob.extent, knob.parts, knob.max_innermost)))
        return draw(st.sampled_from(knob.choices))

    try:
        applied = materialize(task.mod, space.sketches, index, decide)
    except InvalidProgram:
        assume(False)
    return task, applied.mod


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(packed_conv_programs())
@pytest.mark.slow
def test_the_kernel_on_weights_packed_by_its_own_stage_matches_the_untuned_conv(case):
    task, mod = case
    (name, shape, packed), = packed_shapes(mod)
    assert name == "weight" and np.prod(packed) == np.prod(shape)
    assert shape_of(kernel(mod), 1) == packed
    check = check_against_untuned(task, mod, 1e-4, 1e-4)
    assert check.ok, check.detail


def test_with_the_rewrite_off_neither_tuner_sees_a_layout_free_input():
    """MetaSchedule's RewriteLayout postproc packs exactly the marked inputs: unmarked, it packs none."""
    task = make_task("conv-8x8-4-8-3x3")
    assert task.layout_free == (1, 2)  # weight and bias
    assert as_compared(task, dataclasses.replace(CONFIG, layout_rewrite="off")).layout_free == ()
    assert as_compared(task, CONFIG).layout_free == (1, 2)
    assert make_task("gemm-16x16x16").layout_free == ()

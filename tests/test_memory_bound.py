"""The memory-bound half of the space: pools, layout transposes, quantize, concat, resize,
softmax, global pooling and depthwise convs, vectorized along the contiguous axis (under the
reduction loops where those are innermost), computing what the untuned program computes."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minansor.config import SearchConfig
from minansor.measure.verify import check_against_untuned
from minansor.space.program import Program
from minansor.space.search_space import SearchSpace
from minansor.space.steps import MultiLevelTile, VectorizeUnderReduction
from minansor.tasks.workloads import MEMORY_BOUND, make_task

# sizes that do and do not divide a vector
sizes = st.sampled_from([1, 3, 7, 8, 13, 16, 24])


def _names(h: int, w: int, c: int) -> list[str]:
    return [f"maxpool-{h}x{w}-{c}-3x3", f"maxpool-{h}x{w}-{c}-5x5", f"nchw-to-nhwc-{h}x{w}-{c}",
            f"nhwc-to-nchw-{h}x{w}-{c}", f"quantize-{h}x{w}-{c}", f"concat-{h}x{w}-{c}", f"upsample-{h}x{w}-{c}",
            f"softmax-{h}x{c * 8}", f"fastsoftmax-{h}x{c * 8}", f"avgpool-{h}x{w}-{c}", f"dwconv-{h}x{w}-{c}-3x3"]


@settings(max_examples=4, deadline=None)
@given(h=sizes, w=sizes, c=st.sampled_from([3, 16, 20, 64]), seed=st.integers(0, 1000))
def test_random_programs_of_memory_bound_operators_match_the_untuned_program(h, w, c, seed):
    rng = np.random.default_rng(seed)
    for name in _names(h, w, c):
        space = SearchSpace(make_task(name), SearchConfig())
        programs = [p for p in (space.random(rng) for _ in range(2)) if p is not None]
        assert programs, f"{name}: no valid program ({dict(space.rejections)})"
        for applied in programs:
            result = check_against_untuned(space.task, applied.mod, rtol=1e-5, atol=1e-5)
            assert result.ok, f"{name} {applied.program}: {result.detail}"


def test_a_max_pool_takes_the_maximum_of_channel_vectors_across_its_window():
    space = SearchSpace(make_task("maxpool-13x13-64-5x5"), SearchConfig())
    steps = [s for s in space.sketches[0].annotations if isinstance(s, VectorizeUnderReduction)]
    assert [s.block for s in steps] == ["pool_max"]
    program = Program.make(0, {"location pad_temp": "inline", "parallel pool_max": 2, "unroll pool_max": 0,
                               "vectorize under-reduction pool_max": 16})
    applied = space.apply(program)
    script = applied.mod.script()
    # the channel vector is the innermost loop, under the two window loops
    window = script.index("for rv0, rv1 in T.grid(5, 5)")
    assert "T.vectorized(16)" in script[window:]
    assert check_against_untuned(space.task, applied.mod, rtol=0, atol=0).ok


def test_a_loop_too_long_for_one_vector_is_vectorized_in_parts():
    space = SearchSpace(make_task("upsample-26x26-128"), SearchConfig())
    rng = np.random.default_rng(0)
    widths = {p.program.as_dict().get("vectorize width resize") for p in (space.random(rng) for _ in range(20)) if p}
    assert widths & {4, 8, 16, 32, 64}


@pytest.mark.parametrize("name", MEMORY_BOUND)
def test_valid_rate_is_at_least_95_percent_on_the_memory_bound_operators(name):
    space = SearchSpace(make_task(name), SearchConfig())
    rng = np.random.default_rng(0)
    for _ in range(20):
        space.random(rng)
    assert space.valid_rate >= 0.95, f"{name}: {dict(space.rejections)}"


def test_a_transpose_gets_a_tiled_sketch_beside_the_plain_one_and_a_copy_gets_none():
    tiled = [s for s in SearchSpace(make_task("nhwc-to-nchw-16x16-32"), SearchConfig()).sketches
             if any(isinstance(step, MultiLevelTile) for step in s.steps)]
    assert len(tiled) == 1 and len(SearchSpace(make_task("nhwc-to-nchw-16x16-32"), SearchConfig()).sketches) == 2
    assert len(SearchSpace(make_task("concat-16x16-32"), SearchConfig()).sketches) == 1

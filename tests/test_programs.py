"""Random programs: valid, correct, deterministic, replayable."""

import numpy as np
import pytest
import tvm_ffi

from minansor.config import SearchConfig
from minansor.measure.verify import check_against_untuned
from minansor.space.program import Program
from minansor.space.search_space import SearchSpace
from minansor.space.steps import InvalidProgram
from minansor.tasks.workloads import CATALOGUE, make_task

SMALL = ["gemm-32x48x16", "conv-12x12-4-8-3x3", "conv-13x13-6-4-3x3s2", "head-8x8-8-6-1x1",
         "rowsum-6x2048", "maxpool-8x8-4", "add-8x12"]


@pytest.mark.parametrize("name", SMALL)
def test_random_programs_of_every_sketch_match_the_untuned_program(name):
    space = SearchSpace(make_task(name), SearchConfig())
    rng = np.random.default_rng(1)
    for sketch in range(len(space.sketches)):
        programs = [p for p in (space.random(rng, sketch) for _ in range(3)) if p is not None]
        assert programs, f"sketch {sketch} produced no valid program"
        for applied in programs:
            result = check_against_untuned(space.task, applied.mod, rtol=1e-4, atol=1e-4)
            assert result.ok, f"{name} sketch {sketch} {applied.program}: {result.detail}"


@pytest.mark.parametrize("name", CATALOGUE)
def test_valid_rate_is_at_least_95_percent_on_every_catalogue_workload(name):
    space = SearchSpace(make_task(name), SearchConfig())
    rng = np.random.default_rng(0)
    for _ in range(20):
        space.random(rng)
    assert space.valid_rate >= 0.95, f"{name}: {space.invalid}/{space.sampled} invalid"


def _draw(space, seed, n=6):
    rng = np.random.default_rng(seed)
    return [space.random(rng).program for _ in range(n)]


def test_same_seed_same_programs_different_seed_different_programs():
    space = SearchSpace(make_task("conv-16x16-8-8-3x3"), SearchConfig())
    assert _draw(space, 7) == _draw(space, 7)
    assert _draw(space, 7) != _draw(space, 8)


def test_replaying_a_program_rebuilds_the_same_schedule_and_survives_json():
    space = SearchSpace(make_task("gemm-32x48x16"), SearchConfig())
    rng = np.random.default_rng(3)
    for _ in range(5):
        applied = space.random(rng)
        program = Program.from_json(applied.program.to_json())
        assert program == applied.program and hash(program) == hash(applied.program)
        assert tvm_ffi.structural_equal(space.apply(program).mod, applied.mod)


def test_decisions_outside_a_knob_domain_are_rejected():
    space = SearchSpace(make_task("gemm-32x48x16"), SearchConfig())
    applied = space.random(np.random.default_rng(0), sketch=0)
    decisions = applied.program.as_dict()
    tile = next(k for k in decisions if k.startswith("tile"))
    broken = Program.make(0, {**decisions, tile: (1,) * len(decisions[tile])})  # product != extent
    with pytest.raises(InvalidProgram):
        space.apply(broken)
    with pytest.raises(InvalidProgram):
        space.apply(Program.make(0, {**decisions, "unknown knob": 1}))


def test_the_unchecked_schedule_methods_stay_inside_the_search():
    from tvm.s_tir import Schedule

    from minansor.tir.analysis import unchecked_schedule_methods

    assert hasattr(Schedule.split, "__wrapped__")  # TVM's type check, as anyone else gets it
    with unchecked_schedule_methods():
        assert not hasattr(Schedule.split, "__wrapped__")
        with unchecked_schedule_methods():  # nesting changes nothing
            assert not hasattr(Schedule.split, "__wrapped__")
        assert not hasattr(Schedule.split, "__wrapped__")
    SearchSpace(make_task("gemm-32x48x16"), SearchConfig()).random(np.random.default_rng(0))
    assert hasattr(Schedule.split, "__wrapped__")

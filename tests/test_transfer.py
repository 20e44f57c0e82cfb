"""Transfer across tasks: programs of one task re-fitted to a similar one, lent to its first round."""

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from minansor.measure.verify import check_against_untuned
from minansor.records import RecordStore
from minansor.scheduler import TaskProgress, TaskScheduler
from minansor.search.transfer import Donor, refit, refit_choice, refit_tile, transferred
from minansor.space.search_space import SearchSpace
from minansor.space.steps import InvalidProgram, Knob
from minansor.tasks.workloads import make_task
from minansor.tune import tune_tasks


@settings(max_examples=60, deadline=None)
@given(old=st.lists(st.integers(1, 16), min_size=2, max_size=4), extent=st.integers(1, 300),
       max_innermost=st.sampled_from([4, 16, 64]))
def test_a_refitted_tile_splits_the_new_extent(old, extent, max_innermost):
    knob = Knob("tile b.i", "b", extent=extent, parts=len(old), max_innermost=max_innermost)
    new = refit_tile(tuple(old), knob)
    assert knob.admits(new)


def test_a_refitted_tile_keeps_what_still_divides_and_the_inner_levels_first():
    knob = Knob("tile b.i", "b", extent=52, parts=4, max_innermost=64)
    assert refit_tile((13, 1, 1, 4), knob) == (13, 1, 1, 4)
    assert refit_tile((26, 1, 1, 4), Knob("tile b.i", "b", extent=26, parts=4, max_innermost=64)) == (13, 1, 1, 2)
    wider = Knob("tile b.i", "b", extent=104, parts=4, max_innermost=64)
    assert refit_tile((13, 1, 1, 4), wider)[-1] == 4  # the vector tile stays, the outer level grows


def test_a_choice_is_kept_or_moved_to_the_nearest_number_offered():
    assert refit_choice(16, Knob("vectorize width b", "b", choices=(4, 8, 16))) == 16
    assert refit_choice(32, Knob("vectorize width b", "b", choices=(4, 8, 16))) == 16
    assert refit_choice("root", Knob("location b", "b", choices=("root", "inline", 0))) == "root"
    with pytest.raises(InvalidProgram):
        refit_choice("inline", Knob("location b", "b", choices=("root", 0, 1)))


def _donor_of(task, config, rng_seed: int) -> tuple[Donor, SearchSpace]:
    space = SearchSpace(task, config)
    rng = np.random.default_rng(rng_seed)
    applied = next(a for a in (space.random(rng) for _ in range(50)) if a is not None)
    program = applied.program
    return Donor(task.name, 0, str(task.target), space.fingerprint(program.sketch), program.decisions, 1e-3), space


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_refitted_program_computes_what_the_untuned_one_computes(fast_config, seed):
    donor, _ = _donor_of(make_task("conv-8x8-4-4-3x3"), fast_config, seed)
    recipient = make_task("conv-10x10-4-12-3x3")
    space = SearchSpace(recipient, fast_config)
    applied = refit(space, donor)
    assert applied is not None  # same sketches, other extents: every knob has a value to take
    assert space.fingerprint(applied.program.sketch) == donor.fingerprint
    assert check_against_untuned(recipient, applied.mod, 1e-4, 1e-4, seed).ok


def test_nothing_is_lent_across_targets_or_sketches(fast_config):
    donor, _ = _donor_of(make_task("conv-8x8-4-4-3x3"), fast_config, 0)
    recipient = make_task("conv-10x10-4-12-3x3")
    space = SearchSpace(recipient, fast_config)
    other_target = dataclasses.replace(donor, target=donor.target + " -mcpu=cortex-a57")
    assert transferred(space, str(recipient.target), [other_target], 4, set()) == []
    gemm_donor, _ = _donor_of(make_task("gemm-32x32x32"), fast_config, 0)
    assert refit(space, gemm_donor) is None
    assert len(transferred(space, str(recipient.target), [donor, donor], 4, set())) == 1  # distinct only


def test_warm_up_goes_heaviest_first_unless_told_otherwise(fast_config):
    progress = [TaskProgress("light", 1, 1e6, "a"), TaskProgress("heavy", 4, 1e8, "b"),
                TaskProgress("middle", 2, 1e7, "c")]
    rng = np.random.default_rng(0)
    assert TaskScheduler(progress, fast_config, rng).next_task() == 1
    assert TaskScheduler(progress, dataclasses.replace(fast_config, warmup_order="given"), rng).next_task() == 0


@pytest.mark.slow
def test_a_network_lends_its_best_programs_to_the_tasks_that_start_later(tmp_path, fast_config):
    tasks = [make_task("conv-8x8-4-4-3x3"), make_task("conv-10x10-4-12-3x3")]
    result = tune_tasks(tasks, fast_config, str(tmp_path / "on"), trials=16, seed=1, progress=False)
    trials = RecordStore(str(tmp_path / "on")).load()
    heavier = max(tasks, key=lambda t: t.weight * t.flops).name
    assert trials[0].task == heavier  # warm-up heaviest first
    lent = [t for t in trials if t.meta["origin"].startswith("transfer:")]
    assert lent and all(t.task != heavier and t.meta["origin"].startswith(f"transfer:{heavier}#") for t in lent)
    assert all(r.check.ok for r in result.results)

    off = dataclasses.replace(fast_config, transfer_programs=0, warmup_order="given", warmup_trials=0)
    tune_tasks(tasks, off, str(tmp_path / "off"), trials=16, seed=1, progress=False)
    trials = RecordStore(str(tmp_path / "off")).load()
    assert [t.task for t in trials[:8]] == [tasks[0].name] * 8  # Ansor: given order, full rounds
    assert not any(t.meta["origin"].startswith("transfer:") for t in trials)

"""Local search: coordinate descent around the measured best, one knob one step at a time."""

import dataclasses

import numpy as np
import pytest

from minansor.records import RecordStore
from minansor.search.local_search import choice_steps, neighbours, tile_steps, unmeasured_neighbours
from minansor.space.program import Program
from minansor.space.search_space import SearchSpace
from minansor.space.steps import Knob
from minansor.tasks.workloads import make_task
from minansor.tune import tune_task


def test_a_tile_step_moves_one_prime_between_adjacent_levels():
    assert sorted(tile_steps((4, 1, 3))) == [(2, 2, 3), (4, 3, 1)]
    assert tile_steps((1, 1)) == []
    for step in tile_steps((12, 5, 2, 8)):
        assert np.prod(step) == 12 * 5 * 2 * 8
        assert sum(a != b for a, b in zip(step, (12, 5, 2, 8))) == 2


def test_a_choice_step_is_the_next_or_previous_value():
    knob = Knob("unroll b", "b", choices=(0, 16, 64, 512))
    assert choice_steps(16, knob) == [64, 0]
    assert choice_steps(512, knob) == [64]
    assert choice_steps(7, knob) == []


def test_every_neighbour_differs_in_one_knob_and_is_in_its_domain(fast_config):
    space = SearchSpace(make_task("conv-8x8-4-4-3x3"), fast_config)
    rng = np.random.default_rng(0)
    best = next(a for a in (space.random(rng) for _ in range(50)) if a is not None)
    found = neighbours(best.program, best.knobs)
    assert found and len({p.key() for p in found}) == len(found)
    knobs = {k.name: k for k in best.knobs}
    before = best.program.as_dict()
    for program in found:
        changed = [name for name, value in program.as_dict().items() if value != before[name]]
        assert len(changed) == 1 and knobs[changed[0]].admits(program.as_dict()[changed[0]])
    seen = {found[0].key()}
    fresh = unmeasured_neighbours(space, best, seen, 3)
    assert len(fresh) <= 3 and all(a.program.key() != found[0].key() for a in fresh)


@pytest.mark.slow
def test_the_descent_moves_only_to_measured_better_programs_and_resumes(tmp_path, fast_config):
    config = dataclasses.replace(fast_config, local_search=True, trials_per_round=4, model_min_samples=1000)
    task = make_task("conv-8x8-4-4-3x3")
    tune_task(task, config, str(tmp_path), trials=24, seed=2, progress=False)
    trials = RecordStore(str(tmp_path)).load(task.name)
    local = [t for t in trials if t.meta["origin"] == "local"]
    assert local, "a 24-trial run in rounds of 4 stalls at least once"
    by_key = {t.program.key(): t for t in trials}
    for t in local:  # the centre of each step was the best measured before that round
        (centre,) = t.meta["parents"]
        earlier = [u for u in trials if u.round < t.round and u.ok]
        assert by_key[centre].median_s == min(u.median_s for u in earlier)
    rounds = RecordStore(str(tmp_path)).load_rounds()
    assert sum(r["local"] for r in rounds) == len(local)
    resumed = tune_task(task, config, str(tmp_path), trials=28, seed=2, progress=False)
    assert resumed.new_trials == 4 and len({t.program.key() for t in RecordStore(str(tmp_path)).load()}) == 28

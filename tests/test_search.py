"""The evolutionary search and its parts: mutators, crossover, features, cost model."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minansor.config import SearchConfig
from minansor.model import features
from minansor.model.cost_model import SharedModel, XGBModel, normalized_throughput, rank_correlation
from minansor.search.evolve import EvolutionarySearch
from minansor.search.mutate import MUTATORS, crossover, mutate_tile_size
from minansor.space.program import Program
from minansor.space.search_space import SearchSpace
from minansor.space.steps import InvalidProgram, Knob
from minansor.tasks.workloads import make_task
from minansor.tune import task_rng

_SPACE = SearchSpace(make_task("conv-12x12-8-8-3x3"), SearchConfig())
# The GPU knobs: threads per block of a block reduced across threads, vector width of a conv's
# shared-memory fetch.
_CUDA = '{"kind": "cuda", "arch": "sm_80", "max_threads_per_block": 1024, "max_shared_memory_per_block": 49152}'
_GPU_SPACES = {"threads": SearchSpace(make_task("rowsum-64x2048", _CUDA), SearchConfig()),
               "vector": SearchSpace(make_task("conv-12x12-8-8-3x3", _CUDA), SearchConfig())}


def _random(seed, space=_SPACE):
    rng = np.random.default_rng(seed)
    while (applied := space.random(rng)) is None:
        pass
    return applied


@given(st.integers(0, 10_000))
@settings(max_examples=40, deadline=None)
def test_tile_mutation_keeps_products_and_gives_a_valid_distinct_program(seed):
    parent = _random(seed)
    child = mutate_tile_size(parent.program, parent.knobs, np.random.default_rng(seed))
    if child is None:
        return
    assert child != parent.program
    before, after = parent.program.as_dict(), child.as_dict()
    changed = [k for k in before if before[k] != after[k]]
    assert len(changed) == 1 and changed[0].startswith("tile")
    assert np.prod(before[changed[0]]) == np.prod(after[changed[0]])
    _SPACE.apply(child)  # replays without error


def test_a_one_level_tile_has_nothing_to_mutate():
    # e.g. the reduction of a structure with a single R ("SSRS"): its only factor is its extent
    knob = Knob("tile k", "C", extent=16, parts=1, max_innermost=16)
    program = Program.make(0, {"tile k": (16,)})
    assert mutate_tile_size(program, (knob,), np.random.default_rng(0)) is None


def test_every_task_of_a_network_searches_with_its_own_stream():
    first, second = make_task("gemm-32x32x32"), make_task("gemm-64x64x64")
    draws = {name: task_rng(0, task, 0).integers(1 << 30, size=4).tolist()
             for name, task in (("first", first), ("second", second))}
    assert draws["first"] != draws["second"]
    assert task_rng(0, first, 0).integers(1 << 30, size=4).tolist() == draws["first"]  # and the same on a rerun
    assert task_rng(0, first, 16).integers(1 << 30, size=4).tolist() != draws["first"]  # a resumed run draws anew


@pytest.mark.parametrize("name", sorted(MUTATORS))
def test_every_mutator_changes_exactly_one_decision_of_its_kind(name):
    rng = np.random.default_rng(0)
    space = _GPU_SPACES.get(name, _SPACE)
    changed_any = False
    for seed in range(20):
        parent = _random(seed, space)
        child = MUTATORS[name](parent.program, parent.knobs, rng)
        if child is None:
            continue
        diff = [k for k, v in child.as_dict().items() if parent.program.as_dict()[k] != v]
        assert len(diff) == 1 and diff[0].startswith(name if name in _GPU_SPACES else "")
        changed_any = True
        try:
            space.apply(child)
        except InvalidProgram:
            pass  # e.g. a location that breaks a later fuse: rejected, never measured
    assert changed_any


def test_crossover_takes_each_block_from_one_parent():
    rng = np.random.default_rng(0)
    a = _random(1)
    b = next(p for p in map(_random, range(2, 200)) if p.program.sketch == a.program.sketch)
    first, second = a.program.as_dict(), b.program.as_dict()
    children = [c for c in (crossover(a.program, a.knobs, b.program, b.knobs, rng) for _ in range(20)) if c]
    assert children
    for child in children:
        decisions = child.as_dict()
        for block in {k.block for k in a.knobs + b.knobs}:
            names = {k.name for k in a.knobs + b.knobs if k.block == block}
            from_first = all(decisions.get(n) == first.get(n) for n in names)
            from_second = all(decisions.get(n) == second.get(n) for n in names)
            assert from_first or from_second, block


def test_features_are_named_finite_and_differ_between_programs():
    one, two = features.extract(_random(0).mod), features.extract(_random(1).mod)
    assert one.shape[1] == two.shape[1] == len(features.FEATURE_NAMES)
    assert np.isfinite(one).all() and np.isfinite(two).all()
    assert one.shape != two.shape or not np.allclose(one, two)


def test_a_feature_row_refuses_an_unknown_name_a_repeat_and_a_gap():
    row = features.FeatureRow()
    with pytest.raises(KeyError, match="not a feature"):
        row.set(vector_extnet=1.0)
    row.set(vector_extent=1.0)
    with pytest.raises(KeyError, match="set twice"):
        row.set(vector_extent=2.0)
    with pytest.raises(KeyError, match="never set"):
        row.array()
    full = features.FeatureRow()
    full.set(**{name: float(i) for i, name in enumerate(features.FEATURE_NAMES)})
    assert list(full.array()) == list(range(len(features.FEATURE_NAMES)))


def test_tvm_feature_set_is_selectable():
    extract = features.make_extractor("tvm", _SPACE.task)
    matrix = extract(_random(0))
    assert matrix.ndim == 2 and matrix.shape[1] == 164


def test_xgb_pack_sum_learns_an_easy_ranking():
    rng = np.random.default_rng(0)
    programs = [rng.uniform(0, 1, size=(int(rng.integers(1, 4)), 6)).astype(np.float32) for _ in range(200)]
    costs = np.array([1.0 / (1.0 + 5 * p[:, 0].sum()) for p in programs])  # faster with more of feature 0
    model = XGBModel(np.random.default_rng(1), dataclasses.replace(SearchConfig(), model_min_samples=10))
    model.update(programs[:150], costs[:150])
    predicted = model.predict(programs[150:])
    assert rank_correlation(predicted, normalized_throughput(costs[150:])) > 0.6


class _StubModel:
    """Scores a program by its first feature."""

    trained = True

    def update(self, feats, costs):
        pass

    def predict(self, feats):
        return np.array([f[0, 0] for f in feats])


def test_evolution_converges_to_what_the_model_scores_high():
    config = dataclasses.replace(SearchConfig(), population=32, generations=3, eps_greedy=0.0,
                                 mutators="unroll:1", min_fresh_random=8)
    space = SearchSpace(make_task("conv-12x12-8-8-3x3"), config)
    search = EvolutionarySearch(space, space.config, np.random.default_rng(0))
    search.model = _StubModel()
    search.extract = lambda applied: np.array([[float(applied.program.as_dict()["unroll conv2d_nchw"] == 512)]])
    proposals = search.propose(8, set())
    assert len(proposals) == 8
    assert all(p.applied.program.as_dict()["unroll conv2d_nchw"] == 512 for p in proposals)


def test_local_refinement_proposes_single_mutations_of_the_best_measured():
    config = dataclasses.replace(SearchConfig(), refine_share=1.0, eps_greedy=0.0, refine_parents=2, population=16,
                                 min_fresh_random=4, generations=1)
    space = SearchSpace(make_task("conv-12x12-8-8-3x3"), config)
    search = EvolutionarySearch(space, space.config, np.random.default_rng(0))
    search.model = _StubModel()
    search.extract = lambda applied: np.ones((1, 1))
    measured = [a for a in (space.random(np.random.default_rng(s)) for s in range(12)) if a is not None]
    search.measured = {a.program.key(): (a, 1e-3 * (i + 1)) for i, a in enumerate(measured)}
    best = {a.program.key(): a.program.as_dict() for a in measured[:2]}
    proposals = search.propose(8, set())
    assert len(proposals) == 8
    for proposal in proposals:
        assert proposal.origin.startswith("refine:") and proposal.parents[0] in best
        parent, child = best[proposal.parents[0]], proposal.applied.program.as_dict()
        assert sum(parent[name] != child[name] for name in parent) == 1


def test_a_shared_model_normalizes_costs_within_each_task():
    class Recorder:
        trained = False

        def update(self, features, costs):
            self.seen = (len(features), normalized_throughput(costs))

        def predict(self, features):
            return np.zeros(len(features))

    shared = SharedModel(Recorder())
    rows = [np.zeros((1, 3))] * 2
    shared.for_task("fast").update(rows, np.array([1e-3, 2e-3]))
    shared.for_task("slow").update(rows, np.array([1.0, np.inf]))
    shared.for_task("fast").update(rows, np.array([1e-3, 4e-3]))  # a task's new data replaces its old
    count, labels = shared.model.seen
    assert count == 4 and labels.tolist() == pytest.approx([1.0, 0.25, 1.0, 0.0])


def test_sampling_gives_up_on_an_exhausted_space_after_its_patience():
    from minansor.search.strategy import sample_new
    from minansor.search.trace import RoundStats
    from minansor.space.search_space import SearchSpace
    from minansor.tasks.workloads import make_task

    space = SearchSpace(make_task("add-4x4"), SearchConfig())
    stats = RoundStats()
    everything = sample_new(space, np.random.default_rng(0), 500, set(), 20, stats, patience=0)
    assert 0 < len(everything) < 500 and stats.tried == 500 * 20  # a tiny space: every attempt spent
    stats = RoundStats()
    found = sample_new(space, np.random.default_rng(0), 500, set(), 20, stats, patience=16)
    assert stats.tried < 500 * 20 and found  # the same draws, stopped early
    assert [a.program.key() for a in found] == [a.program.key() for a in everything][:len(found)]


def test_a_population_sized_to_the_round_breeds_fewer_programs_for_a_small_round():
    from minansor.space.search_space import SearchSpace
    from minansor.tasks.workloads import make_task

    space = SearchSpace(make_task("gemm-64x48x32"), SearchConfig())
    fixed = EvolutionarySearch(space, SearchConfig(population_per_trial=0), np.random.default_rng(0))
    sized = EvolutionarySearch(space, SearchConfig(), np.random.default_rng(0))  # 12 per trial
    assert fixed.population_size(4) == fixed.population_size(64) == 192
    assert sized.population_size(4) == 50 and sized.population_size(8) == 96 and sized.population_size(64) == 192

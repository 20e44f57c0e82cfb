"""The task scheduler on synthetic tasks: no TVM, just the allocation policy."""

import dataclasses

import numpy as np

from minansor.config import SearchConfig
from minansor.scheduler import NO_PROGRAM_S, TaskProgress, TaskScheduler, objective_s, similarity_group


def simulate(curves: dict[str, tuple[float, float, float]], rounds: int, scheduler: str, trials_per_round: int = 8,
             patience: int = 0) -> tuple[list[TaskProgress], list[str]]:
    """Tasks whose best latency after r rounds is floor + gap / r (name -> (weight, floor, gap))."""
    config = dataclasses.replace(SearchConfig(), task_scheduler=scheduler, task_early_stop_trials=patience)
    tasks = [TaskProgress(name, weight, 1e6, name) for name, (weight, _, _) in curves.items()]
    sched = TaskScheduler(tasks, config, np.random.default_rng(0))
    picks = []
    for _ in range(rounds):
        i = sched.next_task()
        if i is None:
            break
        _, floor, gap = curves[tasks[i].name]
        r = tasks[i].rounds + 1
        sched.record_round(i, floor + gap / r, r * trials_per_round)
        picks.append(tasks[i].name)
    return tasks, picks


CURVES = {"heavy": (3.0, 1e-3, 8e-3), "light": (1.0, 1e-3, 1e-4), "flat": (1.0, 2e-3, 0.0)}


def test_warm_up_gives_every_task_one_round_first():
    _, picks = simulate(CURVES, 3, "gradient")
    assert sorted(picks) == sorted(CURVES)


def test_gradient_gives_most_rounds_to_the_task_with_most_to_gain():
    tasks, picks = simulate(CURVES, 20, "gradient")
    counts = {name: picks.count(name) for name in CURVES}
    assert counts["heavy"] > counts["light"] and counts["heavy"] > counts["flat"]
    assert counts["heavy"] >= 10


def test_gradient_beats_round_robin_on_the_objective():
    by_gradient, _ = simulate(CURVES, 12, "gradient")
    by_round_robin, picks = simulate(CURVES, 12, "round_robin")
    assert [picks.count(name) for name in CURVES] == [4, 4, 4]
    assert objective_s(by_gradient) < objective_s(by_round_robin)


def test_a_task_without_improvement_stops_after_patience():
    tasks, picks = simulate({"flat": (1.0, 2e-3, 0.0), "heavy": (3.0, 1e-3, 8e-3)}, 40, "round_robin",
                            patience=16)
    flat = next(t for t in tasks if t.name == "flat")
    assert flat.stopped.startswith("no improvement") and picks.count("flat") == 3  # 8 + 16 trials without gain


def test_a_task_with_no_valid_program_is_dropped():
    config = SearchConfig()
    tasks = [TaskProgress("broken", 1, 1e6, "a"), TaskProgress("fine", 1, 1e6, "b")]
    sched = TaskScheduler(tasks, config, np.random.default_rng(0))
    sched.record_round(sched.next_task(), None, 8)
    assert tasks[0].stopped == "no valid program in 8 trials" and tasks[0].best_s == NO_PROGRAM_S
    assert sched.next_task() == 1 and sched.live() == [1]


def test_similar_tasks_share_a_group_across_shapes():
    assert similarity_group("fused_conv2d1_add_leaky_relu") == similarity_group("fused_conv2d_add_leaky_relu2")
    assert similarity_group("fused_conv2d_add") != similarity_group("fused_conv2d_add_leaky_relu")

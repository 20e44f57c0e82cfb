"""The task scheduler: which task of a network gets the next round of trials.

A network's latency is the objective  f = sum_i weight_i * best_i  (best_i: the fastest
program found so far for task i). After a warm-up round for every task, Ansor gives the next
round to the task whose estimated gradient df/dt_i (t_i: rounds spent on task i) is most
negative:

    df/dt_i ~ weight_i * (alpha * backward_i + (1 - alpha) * forward_i)

    backward_i = (best_i(t_i) - best_i(t_i - w)) / w       how much the last w rounds gained
    forward_i  = min(best_i - best_i / t_i,                 optimistic: gains keep coming as 1/t
                     beta * flops_i / best_flops_of_similar)  no faster than a similar task's rate
                 - best_i

"Similar" tasks share an operator pattern (the same fused function modulo shapes); their best
FLOPS says what this task could reach. MetaSchedule drops that term; we keep it.
`round_robin` is the ablation alternative.

Warm-up rounds go heaviest task first (calls x FLOPs, `warmup_order`), so that by the time the
many light tasks of a network start, the heavy ones they resemble have programs to lend them
(search/transfer.py) and the shared cost model has learned from them; Ansor takes the tasks in
the order given. A task whose best has not improved for
`task_early_stop_trials` of its own trials stops getting rounds, and so does a task whose
space ran dry or that has produced no valid program in its warm-up.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

from .config import SearchConfig

NO_PROGRAM_S = 1e10  # stands in for the latency of a task with no valid program yet (as Ansor)
TASK_SCHEDULERS = ("gradient", "round_robin")  # SearchConfig.task_scheduler
WARMUP_ORDERS = ("calls_flops", "given")  # SearchConfig.warmup_order


@dataclass
class TaskProgress:
    """What the scheduler knows about one task: plain data, rebuilt from records on resume."""

    name: str
    weight: float
    flops: float
    group: str  # tasks of one group are similar
    best_after_round: list[float] = field(default_factory=list)  # seconds, one entry per round
    trials: int = 0
    trials_at_best: int = 0  # trials spent when the current best was found
    stopped: str = ""  # why the task gets no more rounds ("" while it does)

    @property
    def rounds(self) -> int:
        return len(self.best_after_round)

    @property
    def best_s(self) -> float:
        return self.best_after_round[-1] if self.best_after_round else NO_PROGRAM_S

    def record_round(self, best_s: float | None, trials: int) -> None:
        best_s = NO_PROGRAM_S if best_s is None or not math.isfinite(best_s) else best_s
        if best_s < self.best_s:
            self.trials_at_best = trials
        self.best_after_round.append(min(best_s, self.best_s))
        self.trials = trials


def similarity_group(task_name: str) -> str:
    """Tasks whose names differ only in numbers (shapes, fused-function counters) are similar."""
    return re.sub(r"\d+", "", task_name)


def objective_s(tasks: list[TaskProgress]) -> float:
    """Estimated network latency: sum of weight x best latency over the tasks."""
    return sum(t.weight * t.best_s for t in tasks)


def gradient(i: int, tasks: list[TaskProgress], config: SearchConfig) -> float:
    """Ansor's estimate of d(objective)/d(rounds of task i); never positive."""
    task = tasks[i]
    window = config.scheduler_backward_window
    history = task.best_after_round
    backward = (history[-1] - history[-1 - window]) / window if len(history) > window else 0.0
    optimistic = task.best_s - task.best_s / task.rounds
    similar = [t for t in tasks if t.group == task.group and t.best_s < NO_PROGRAM_S]
    if len(similar) > 1 and task.flops > 0:
        best_flops = max(t.flops / t.best_s for t in similar)
        optimistic = min(optimistic, config.scheduler_beta * task.flops / best_flops)
    forward = optimistic - task.best_s
    alpha = config.scheduler_alpha
    return task.weight * (alpha * backward + (1 - alpha) * forward)


class TaskScheduler:
    def __init__(self, tasks: list[TaskProgress], config: SearchConfig, rng: np.random.Generator):
        self.tasks, self.config, self.rng = tasks, config, rng
        order = range(len(tasks))
        if config.warmup_order == "calls_flops":  # stable: equal work keeps the given order
            order = sorted(order, key=lambda i: -tasks[i].weight * tasks[i].flops)
        self.warmup_order = list(order)

    def live(self) -> list[int]:
        return [i for i, t in enumerate(self.tasks) if not t.stopped]

    def next_task(self) -> int | None:
        """Index of the task that gets the next round; None when every task has stopped."""
        live = self.live()
        if not live:
            return None
        warm_up = [i for i in self.warmup_order if not self.tasks[i].stopped and self.tasks[i].rounds == 0]
        if warm_up:
            return warm_up[0]
        if self.config.task_scheduler == "round_robin":
            return min(live, key=lambda i: (self.tasks[i].rounds, i))
        grads = np.array([gradient(i, self.tasks, self.config) for i in live])
        if grads.max() == grads.min():
            return int(self.rng.choice(live))
        return live[int(np.argmin(grads))]

    def record_round(self, i: int, best_s: float | None, trials: int) -> None:
        """Task i finished a round: its best so far (None: no valid program) and trials spent."""
        self.tasks[i].record_round(best_s, trials)
        self.update_stop(i)

    def stop(self, i: int, reason: str) -> None:
        self.tasks[i].stopped = reason

    def update_stop(self, i: int) -> None:
        task, patience = self.tasks[i], self.config.task_early_stop_trials
        if task.rounds >= 1 and task.best_s >= NO_PROGRAM_S:
            self.stop(i, f"no valid program in {task.trials} trials")
        elif patience and task.trials - task.trials_at_best >= patience:
            self.stop(i, f"no improvement in its last {task.trials - task.trials_at_best} trials")

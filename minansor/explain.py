"""`minansor explain WORK_DIR`: the best program of a task, and how the search came to it.

From the records alone: the task (tasks.jsonl), its best trial, the sketch it belongs to (the
derivation steps), the decisions that annotate it, the scheduled program as TVMScript, and its
lineage. A program's lineage is read from the trials' search metadata: each measured program
says how it was made (random, mutate:<mutator>, crossover) and from which parents; parents bred
within the same round and never measured are stored with it ("ancestry"), measured parents are
trials of earlier rounds, whose own lineage continues the same way back to random programs.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import SearchConfig
from .errors import UserError
from .measure.verify import CheckResult, check_against_untuned
from .records import RecordStore, Trial, read_records
from .space.search_space import SearchSpace
from .tasks.targets import cross_compiler, device_type
from .tasks.task import Task
from .tasks.workloads import make_task
from .tir.layout_rewrite import packed_shapes
from .tune import best_trial

MAX_LINEAGE_LINES = 60


@dataclass
class Explanation:
    task: Task
    best: Trial
    sketch_lines: list[str]
    decisions: list[tuple[str, object]]
    lineage: list[str]
    packed: list[tuple[str, tuple[int, ...], tuple[int, ...]]]  # constants the program packs: name, shape, packed
    script: str
    check: CheckResult | None  # against the untuned PrimFunc, when the target is this machine's CPU


def _task(store: RecordStore, name: str | None, trials: list[Trial]) -> Task:
    names = list(dict.fromkeys(t.task for t in trials))
    if name is None:
        if len(names) > 1:
            raise UserError(f"{store.work_dir!r} holds {len(names)} tasks; name one with --task "
                            f"({', '.join(names[:5])}{', ...' if len(names) > 5 else ''})")
        name = names[0]
    if name not in names:
        raise UserError(f"no trials of task {name!r} in {store.work_dir!r}")
    described = store.load_tasks()
    if name in described:
        return described[name]
    try:  # records written before tasks.jsonl: tune-op names its task by its catalogue name
        return make_task(name)
    except UserError:
        raise UserError(f"{store.work_dir!r} does not describe task {name!r} (no tasks.jsonl line)") from None


def lineage(best: Trial, history: list[Trial]) -> list[str]:
    """One line per ancestor, indented by generation: measured ones as #index with their
    latency, those bred and dropped within a round as (unmeasured). A parent counts as measured
    only if it was measured before its child: a program bred unmeasured in one round can be bred
    again, from other parents, and measured in a later one."""
    by_key = {t.program.key(): t for t in history}
    lines: list[str] = []

    def describe(parents: list[str], depth: int, ancestry: dict[str, dict], seen: set[str], before: int) -> None:
        for parent in parents:
            if len(lines) >= MAX_LINEAGE_LINES:
                return
            pad = "  " * depth
            if parent in by_key and by_key[parent].index < before:
                walk(by_key[parent], depth, seen)
            elif parent in ancestry:
                step = ancestry[parent]
                lines.append(f"{pad}<- (unmeasured) {step['origin']}")
                describe(step["parents"], depth + 1, ancestry, seen, before)
            else:
                lines.append(f"{pad}<- (a program not in the records)")

    def walk(trial: Trial, depth: int, seen: set[str]) -> None:
        pad = "  " * depth
        origin = trial.meta.get("origin", "unknown")
        latency = f"{trial.median_s * 1e3:.4f} ms" if trial.ok else "failed"
        key = trial.program.key()
        if key in seen:
            lines.append(f"{pad}<- #{trial.index} (above)")
            return
        seen.add(key)
        lines.append(f"{pad}{'<- ' if depth else ''}#{trial.index} round {trial.round}, {latency}: {origin}")
        ancestry = {step["program"]: step for step in trial.meta.get("ancestry", [])}
        describe(list(trial.meta.get("parents", [])), depth + 1, ancestry, seen, trial.index)

    walk(best, 0, set())
    if len(lines) >= MAX_LINEAGE_LINES:
        lines.append(f"... (cut at {MAX_LINEAGE_LINES} lines)")
    return lines


def explain(work_dir: str, task_name: str | None = None, config: SearchConfig | None = None) -> Explanation:
    """The best program of a run; `config` defaults to the one the run recorded (records.CONFIG_FILE)."""
    store, trials = read_records(work_dir)
    task = _task(store, task_name, trials)
    history = [t for t in trials if t.task == task.name]
    space = SearchSpace(task, config or store.load_config() or SearchConfig())
    best = best_trial(history, space)
    if best is None:
        raise UserError(f"task {task.name!r} has no successful trial whose sketch still exists under this config")
    sketch = space.sketches[best.program.sketch]
    sketch_lines = sketch.describe() + ["open decisions: " + ", ".join(s.describe() for s in sketch.annotations)]
    mod = space.apply(best.program).mod
    local = device_type(task.target) == "cpu" and cross_compiler(task.target) is None
    check = check_against_untuned(task, mod, space.config.check_rtol, space.config.check_atol) if local else None
    return Explanation(task, best, sketch_lines, list(best.program.decisions), lineage(best, history),
                       packed_shapes(mod), mod.script(), check)


def render(e: Explanation) -> str:
    gflops = e.task.flops / e.best.median_s / 1e9
    out = [f"task {e.task.name} ({e.task.target.kind.name}, {e.task.flops / 1e6:.1f} MFLOP)",
           f"best: trial #{e.best.index} of round {e.best.round}, {e.best.median_s * 1e3:.4f} ms "
           f"({gflops:.1f} GFLOPS), searched by {e.best.search}",
           "check against the untuned program: " + ("not run (the target is not this machine's CPU)" if e.check is None
                                                    else "ok" if e.check.ok else f"FAILED: {e.check.detail}"), "",
           f"sketch {e.best.program.sketch}:"]
    out += [f"  - {line}" for line in e.sketch_lines]
    out += ["", "decisions:"] + [f"  {name} = {value}" for name, value in e.decisions]
    if e.packed:
        out += ["", "constants packed at compile time (the measured kernel reads them packed):"]
        out += [f"  {name} {shape} -> {packed}" for name, shape, packed in e.packed]
    out += ["", "lineage (newest first):"] + [f"  {line}" for line in e.lineage]
    out += ["", "program:", e.script]
    return "\n".join(out)

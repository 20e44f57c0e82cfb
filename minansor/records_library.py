"""A records library: the work dirs of earlier runs, which a new run learns from (`--records DIR...`).

Another network, another budget, another seed: what was measured there is worth something here.

- **What counts.** Only tasks recorded for this run's target: each task's target in tasks.jsonl,
  normalized by TVM, equal to the run's. A work dir without any such task is refused.
- **Which task a record matches.** A recorded task and a task of this run match exactly when their
  PrimFuncs are structurally equal (`Task.identity`): the recorded best then replays unchanged.
  Otherwise they match as far as a sketch does: a recorded program goes to any sketch of the same
  fingerprint, its tile splits re-fitted to the new extents (search/transfer.py).
- **What a match gives.** Each recorded task's best program is a donor, lent to the first round of
  matching tasks (exact matches first). Every successful measurement of a recorded task whose
  sketch still exists pretrains the network's shared cost model, normalized within its task like
  the run's own, so the first rounds are ranked by what the library measured.

The library is read before anything is written; a missing dir or one of another target ends
with one line, and unreadable lines are skipped with one line saying how many.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import tvm
from tqdm import tqdm

from .config import SearchConfig
from .errors import UserError
from .model.features import make_extractor
from .records import TASKS_FILE, RecordStore, Trial
from .search.transfer import Donor
from .space.search_space import SearchSpace
from .space.steps import InvalidProgram
from .tasks.task import Task


@dataclass
class RecordsLibrary:
    donors: list[Donor] = field(default_factory=list)  # the best program of every recorded task
    # "dir:task" -> (feature matrices, seconds) of its successful trials, for SharedModel.pretrain
    measurements: dict[str, tuple[list[np.ndarray], np.ndarray]] = field(default_factory=dict)

    @property
    def trials(self) -> int:
        return sum(len(seconds) for _, seconds in self.measurements.values())


def same_target(recorded, target: tvm.target.Target) -> bool:
    return str(tvm.target.Target(recorded)) == str(target)


def read_library(work_dirs: list[str], target: tvm.target.Target, config: SearchConfig,
                 log: Callable[[str], None] = print, progress: bool = True) -> RecordsLibrary:
    """The records of `work_dirs` that count for `target` (see the module docstring)."""
    chosen: list[tuple[str, RecordStore, dict[str, Task], list[Trial]]] = []
    for work_dir in work_dirs:  # every dir is checked before any is read in full
        if not os.path.isdir(work_dir):
            raise UserError(f"--records: no work dir {work_dir!r}")
        store = RecordStore(work_dir)
        targets = store.task_targets()
        if not targets:
            raise UserError(f"--records: {work_dir!r} holds no tasks ({TASKS_FILE})")
        ours = [name for name, recorded in targets.items() if same_target(recorded, target)]
        if not ours:
            theirs = str(tvm.target.Target(next(iter(targets.values()))))
            raise UserError(f"--records: {work_dir!r} was tuned for another target ({theirs}), not {target}")
        trials = store.load()
        if store.skipped_lines:
            log(f"--records: {work_dir}: {store.skipped_lines} unreadable trial line(s) skipped")
        tasks = store.load_tasks()
        chosen.append((work_dir, store, {name: tasks[name] for name in ours}, trials))

    library = RecordsLibrary()
    total = sum(len(tasks) for _, _, tasks, _ in chosen)
    with tqdm(total=total, desc="reading --records", unit="task", disable=not progress, leave=False) as bar:
        for work_dir, _, tasks, trials in chosen:
            source = os.path.basename(os.path.normpath(work_dir))
            for name, task in tasks.items():
                bar.update()
                _read_task(library, source, task, [t for t in trials if t.task == name and t.ok], config)
    log(f"--records: {len(library.donors)} recorded tasks of this target, {library.trials} measured programs "
        f"from {len(work_dirs)} work dir(s)")
    return library


def _read_task(library: RecordsLibrary, source: str, task: Task, trials: list[Trial], config: SearchConfig) -> None:
    space = SearchSpace(task, config)
    current = [t for t in trials if t.program.sketch < len(space.sketches)
               and t.sketch_fingerprint == space.fingerprint(t.program.sketch)]
    if not current:
        return
    extract = make_extractor(config.features, task)
    features, seconds = [], []
    for trial in current:
        try:
            features.append(extract(space.apply(trial.program)))
        except InvalidProgram:
            continue
        seconds.append(trial.median_s)
    if features:
        library.measurements[f"{source}:{task.name}"] = (features, np.array(seconds))
    best = min(current, key=lambda t: t.median_s)
    library.donors.append(Donor(task.name, best.index, str(task.target), best.sketch_fingerprint,
                                best.program.decisions, best.median_s, task.flops, task.identity, source))

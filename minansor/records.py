"""Records of a tuning run, in two files side by side in the work dir:

- MetaSchedule's own JSON database (`database_workload.json`, `database_tuning_record.json`),
  written through its `JSONDatabase`, so MetaSchedule tools and
  `relax.transform.MetaScheduleApplyDatabase` can use our results directly;
- `trials.jsonl`, one line per measured trial (failed ones included) with what MetaSchedule has
  no place for: our program (sketch + decisions), the error text, timings, round and seed;
- `rounds.jsonl`, the search trace: one line per round of search (see trace.py);
- `tasks.jsonl`, one line per task: its name, PrimFunc, target and weight, so that `minansor
  explain` can replay a recorded program without knowing where the task came from;
- `config.json`: the SearchConfig of the latest run (every field, and its fingerprint), so that
  `explain` and `report` read the run as it was tuned, and a resume under another config says so.

`trials.jsonl` is append-only and is the source of truth on resume: the search state is
rebuilt by replaying it. A truncated last line (a killed run) is skipped and reported.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import tvm
import tvm_ffi
from tvm.s_tir import Schedule
from tvm.s_tir import meta_schedule as ms

from .config import SearchConfig
from .errors import UserError
from .measure.measurer import MeasureResult, Measured
from .measure.replay import ReplayMeasurer
from .space.program import Applied, Program
from .tasks.task import Task

TRIALS_FILE = "trials.jsonl"
TASKS_FILE = "tasks.jsonl"
ROUNDS_FILE = "rounds.jsonl"
CONFIG_FILE = "config.json"


@dataclass(frozen=True)
class Trial(Measured):
    task: str
    index: int  # 0-based, per task
    round: int
    program: Program
    sketch_fingerprint: str
    latencies_s: tuple[float, ...] | None
    error: str | None
    build_s: float
    run_s: float
    search: str
    seed: int
    meta: dict[str, Any] = field(default_factory=dict)  # search metadata (parent, mutator, score...)

    def to_json(self) -> dict:
        out = asdict(self)
        out["program"] = self.program.to_json()
        return out

    @classmethod
    def from_json(cls, obj: dict) -> "Trial":
        obj = dict(obj)
        obj["program"] = Program.from_json(obj["program"])
        if obj.get("latencies_s") is not None:
            obj["latencies_s"] = tuple(obj["latencies_s"])
        return cls(**obj)


class RecordStore:
    def __init__(self, work_dir: str):
        try:
            os.makedirs(work_dir, exist_ok=True)
        except OSError as err:
            raise UserError(f"cannot use work dir {work_dir!r}: {err.strerror}") from None
        if not os.access(work_dir, os.R_OK | os.W_OK):
            raise UserError(f"cannot use work dir {work_dir!r}: not readable and writable")
        self.work_dir = work_dir
        self.trials_path = os.path.join(work_dir, TRIALS_FILE)
        self.tasks_path = os.path.join(work_dir, TASKS_FILE)
        self.rounds_path = os.path.join(work_dir, ROUNDS_FILE)
        self._described: set[str] | None = None  # tasks already in tasks.jsonl
        self.skipped_lines = 0
        self._database: ms.database.JSONDatabase | None = None
        self._workloads: dict[str, ms.database.Workload] = {}  # task name -> committed workload
        self._line_start_checked = False

    @property
    def database(self) -> ms.database.JSONDatabase:
        if self._database is None:
            self._database = ms.database.JSONDatabase(work_dir=self.work_dir)
        return self._database

    def load(self, task_name: str | None = None) -> list[Trial]:
        """Every trial of `task_name` (all tasks if None). Unreadable lines are skipped and
        counted in `skipped_lines`."""
        objects, self.skipped_lines = _json_lines(self.trials_path)
        trials = []
        for obj in objects:
            try:
                trial = Trial.from_json(obj)
            except (KeyError, TypeError, ValueError):
                self.skipped_lines += 1
                continue
            if task_name is None or trial.task == task_name:
                trials.append(trial)
        return trials

    def append(self, task: Task, applied: Applied, trial: Trial) -> None:
        """Record one measured trial: always in trials.jsonl, and in MetaSchedule's database
        when it ran."""
        self._describe(task)
        if trial.ok:
            if task.name not in self._workloads:
                self._workloads[task.name] = self.database.commit_workload(task.mod)
            workload = self._workloads[task.name]
            self.database.commit_tuning_record(ms.database.TuningRecord(
                applied.sch.trace, workload, list(trial.latencies_s), task.target,
                ms.arg_info.ArgInfo.from_prim_func(task.mod["main"])))
        self._ensure_line_start()
        with open(self.trials_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(trial.to_json()) + "\n")

    def save_config(self, config: SearchConfig) -> list[str]:
        """Write the config a run starts with; returns how it differs from the one the records
        were made under ("field: recorded -> now"), empty for a new or unchanged run."""
        recorded = self.load_config()
        path = os.path.join(self.work_dir, CONFIG_FILE)
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            json.dump({"fingerprint": config.fingerprint(), "config": config.to_json()}, f, indent=1)
        os.replace(path + ".tmp", path)
        return recorded.differences(config) if recorded is not None else []

    def load_config(self) -> SearchConfig | None:
        """The config of the latest run in this work dir; None for records made before runs
        wrote theirs, or an unreadable file."""
        try:
            with open(os.path.join(self.work_dir, CONFIG_FILE), encoding="utf-8") as f:
                return SearchConfig.from_json(json.load(f)["config"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def append_round(self, record: dict) -> None:
        start_on_new_line(self.rounds_path)
        with open(self.rounds_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def load_rounds(self) -> list[dict]:
        """The search trace, in order; unreadable lines are left out."""
        return [obj for obj in _json_lines(self.rounds_path)[0] if isinstance(obj, dict)]

    def _describe(self, task: Task) -> None:
        if self._described is None:
            self._described = set(self._read_tasks())
        if task.name in self._described:
            return
        self._described.add(task.name)
        line = {"task": task.name, "target": json.loads(str(task.target)), "weight": task.weight,
                "mod": tvm.ir.save_json(task.mod)}
        start_on_new_line(self.tasks_path)
        with open(self.tasks_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")

    def _read_tasks(self) -> dict[str, dict]:
        # A truncated line is left out: that task is described again on its next trial.
        return {obj["task"]: obj for obj in _json_lines(self.tasks_path)[0] if isinstance(obj, dict) and "task" in obj}

    def task_targets(self) -> dict[str, dict]:
        """The target of every task described in tasks.jsonl, by name (without loading its TIR)."""
        return {name: obj["target"] for name, obj in self._read_tasks().items()}

    def load_tasks(self) -> dict[str, Task]:
        """The tasks described in tasks.jsonl, by name."""
        return {name: Task.from_module(name, tvm.ir.load_json(obj["mod"]), obj["target"], int(obj["weight"]))
                for name, obj in self._read_tasks().items()}

    def _ensure_line_start(self) -> None:
        """After a killed run trials.jsonl may end mid-line. Only the file as found can end that
        way, so this is checked once."""
        if not self._line_start_checked:
            self._line_start_checked = True
            start_on_new_line(self.trials_path)


# MetaSchedule records a failed measurement with a huge time instead of an error.
METASCHEDULE_FAILED_S = 1e9


def metaschedule_measurements(work_dir: str, task: Task) -> list[tuple[Schedule, float]]:
    """What MetaSchedule measured for `task` in its JSON database at `work_dir` (its own tuning
    runs, or ours): each record's trace replayed on the task, with the median seconds (inf for a
    failed run). The warm start of tune.tune_task reads these."""
    if not os.path.exists(os.path.join(work_dir, "database_tuning_record.json")):
        raise UserError(f"no MetaSchedule database in {work_dir!r}")
    out = []
    for record in ms.database.JSONDatabase(work_dir=work_dir).get_all_tuning_records():
        if not record.run_secs or not tvm_ffi.structural_equal(record.workload.mod, task.mod):
            continue
        sch = Schedule(task.mod)
        record.trace.apply_to_schedule(sch, remove_postproc=False)
        seconds = float(np.median([float(s) for s in record.run_secs]))
        out.append((sch, seconds if seconds < METASCHEDULE_FAILED_S else float("inf")))
    return out


def read_records(work_dir: str) -> tuple[RecordStore, list[Trial]]:
    """The records of an earlier run, for reading them back (report, explain): a one-line error
    when there is no such run."""
    if not os.path.isdir(work_dir):
        raise UserError(f"no work dir {work_dir!r}")
    store = RecordStore(work_dir)
    trials = store.load()
    if not trials:
        raise UserError(f"{work_dir!r} has no readable trials ({TRIALS_FILE})")
    return store, trials


def replay_from(*work_dirs: str, fallback: str = "nearest") -> ReplayMeasurer:
    """A replay measurer answering from the records of every run in `work_dirs`."""
    recorded: dict[str, list[tuple[Program, MeasureResult]]] = {}
    for trial in (t for work_dir in work_dirs for t in RecordStore(work_dir).load()):
        recorded.setdefault(trial.task, []).append((trial.program, MeasureResult(trial.latencies_s, trial.error)))
    return ReplayMeasurer(recorded, fallback)


def _json_lines(path: str) -> tuple[list, int]:
    """(the JSON value of every readable line of `path`, how many non-empty lines were not)."""
    if not os.path.exists(path):
        return [], 0
    out, unreadable = [], 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                unreadable += 1
    return out, unreadable


def start_on_new_line(path: str) -> None:
    """End a file that stops mid-line (a killed writer) with a newline, so the next record
    appended to it is a line of its own."""
    if os.path.exists(path) and os.path.getsize(path) > 0:
        with open(path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            ends_mid_line = f.read(1) != b"\n"
        if ends_mid_line:
            with open(path, "a", encoding="utf-8") as f:
                f.write("\n")

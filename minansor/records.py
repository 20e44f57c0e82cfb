"""Records of a tuning run, in two files side by side in the work dir:

- MetaSchedule's own JSON database (`database_workload.json`, `database_tuning_record.json`),
  written through its `JSONDatabase`, so MetaSchedule tools and
  `relax.transform.MetaScheduleApplyDatabase` can use our results directly;
- `trials.jsonl`, one line per measured trial (failed ones included) with what MetaSchedule has
  no place for: our program (sketch + decisions), the error text, timings, round and seed.

`trials.jsonl` is append-only and is the source of truth on resume: the search state is
rebuilt by replaying it. A truncated last line (a killed run) is skipped and reported.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from tvm.s_tir import meta_schedule as ms

from .errors import UserError
from .measure import MeasureResult
from .program import Applied, Program
from .task import Task

TRIALS_FILE = "trials.jsonl"


@dataclass(frozen=True)
class Trial:
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

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def median_s(self) -> float:
        return MeasureResult(self.latencies_s, self.error).median_s

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
        if not os.path.exists(self.trials_path):
            return []
        trials, self.skipped_lines = [], 0
        with open(self.trials_path, encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                try:
                    trial = Trial.from_json(json.loads(line))
                except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                    self.skipped_lines += 1
                    continue
                if task_name is None or trial.task == task_name:
                    trials.append(trial)
        return trials

    def append(self, task: Task, applied: Applied, trial: Trial) -> None:
        """Record one measured trial: always in trials.jsonl, and in MetaSchedule's database
        when it ran."""
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

    def _ensure_line_start(self) -> None:
        """After a killed run the file may end mid-line; start the next record on a new line.
        Only the file as found can end that way, so this is checked once."""
        if self._line_start_checked:
            return
        self._line_start_checked = True
        if os.path.exists(self.trials_path) and os.path.getsize(self.trials_path) > 0:
            with open(self.trials_path, "rb") as f:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    with open(self.trials_path, "a", encoding="utf-8") as g:
                        g.write("\n")

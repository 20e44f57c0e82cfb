"""End to end on small tasks: tuning finds a good program, records it, and resumes."""

import dataclasses
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from tvm import te, tirx
from tvm.s_tir import meta_schedule as ms

from helpers import run_in_own_process
from minansor.cli import main
from minansor.compare.report import geometric_mean_interval
from minansor.compare.task import start_afresh
from minansor.measure.local import LocalMeasurer
from minansor.records import RecordStore
from minansor.tasks.task import Task
from minansor.tasks.workloads import make_task
from minansor.tune import tune_task, tune_tasks


@pytest.mark.slow
def test_short_tune_beats_the_untuned_program_and_checks_it(tmp_path, fast_config, monkeypatch):
    """The baseline is independent of the search: the untuned PrimFunc (naive loops on one
    thread), measured by the same measurer in the same run. Both run on one thread: a parallel
    launch next to other heavy work (the suite's other process) can stall for milliseconds, which
    would say nothing about the search."""
    monkeypatch.setenv("TVM_NUM_THREADS", "1")
    task = make_task("gemm-128x128x128")
    result = tune_task(task, fast_config, str(tmp_path), trials=16, seed=0, progress=False)
    assert result.trials == 16 and result.new_trials == 16
    assert result.check is not None and result.check.ok
    latencies = sorted(t.median_s for t in RecordStore(str(tmp_path)).load(task.name) if t.ok)
    assert result.best.median_s == latencies[0]
    with LocalMeasurer(fast_config) as measurer:
        (untuned,) = measurer.measure(task, [task.mod])
    assert untuned.ok and result.best.median_s < untuned.median_s


@pytest.mark.slow
def test_resume_continues_the_budget_without_measuring_anything_twice(tmp_path, fast_config):
    task = make_task("conv-8x8-4-4-3x3")
    first = tune_task(task, fast_config, str(tmp_path), trials=8, seed=1, progress=False)
    again = tune_task(task, fast_config, str(tmp_path), trials=8, seed=1, progress=False)
    assert first.new_trials == 8 and again.new_trials == 0 and again.trials == 8
    more = tune_task(task, fast_config, str(tmp_path), trials=14, seed=1, progress=False)
    assert more.new_trials == 6
    trials = RecordStore(str(tmp_path)).load(task.name)
    assert len(trials) == 14
    assert len({t.program.key() for t in trials}) == 14
    assert [t.index for t in trials] == list(range(14))


@pytest.mark.slow
def test_resume_under_another_knob_domain_searches_its_own_sketches(tmp_path, fast_config):
    """Knob bounds are fields of the steps, so a sketch derived under other bounds is another
    sketch: its old records are left out rather than replayed outside their domain."""
    task = make_task("conv-8x8-4-4-3x3")
    tune_task(task, fast_config, str(tmp_path), trials=8, seed=1, progress=False)
    narrow = dataclasses.replace(fast_config, max_innermost_tile=2, unroll_steps=(0, 16))
    resumed = tune_task(task, narrow, str(tmp_path), trials=12, seed=1, progress=False)
    assert resumed.new_trials == 4 and resumed.trials == 12
    assert resumed.best.index >= 8 and resumed.check.ok
    decided = resumed.best_applied.program.as_dict()
    tiles = [knob for knob in resumed.best_applied.knobs if knob.is_tile]
    assert tiles and all(knob.max_innermost == 2 and decided[knob.name][-1] <= 2 for knob in tiles)
    assert all(decided[k.name] in (0, 16) for k in resumed.best_applied.knobs if k.kind == "unroll")


def test_a_network_resumed_under_other_sketches_gives_every_task_rounds_again(tmp_path, fast_config):
    """Records of sketches that no longer exist do not make a task look like one without a valid
    program (which the scheduler stops): it starts over, with a warm-up round."""
    tasks = [make_task("gemm-32x32x32"), make_task("conv-8x8-4-4-3x3")]
    tune_tasks(tasks, fast_config, str(tmp_path), trials=8, seed=1, progress=False)
    narrow = dataclasses.replace(fast_config, max_innermost_tile=2)  # every sketch of both tasks changes
    resumed = tune_tasks(tasks, narrow, str(tmp_path), trials=24, seed=1, progress=False)
    assert resumed.trials == 24 and all(r.new_trials > 0 and r.best is not None for r in resumed.results)


@pytest.mark.slow
def test_tune_op_cli_prints_a_table_and_json(tmp_path, capsys):
    code = main(["tune-op", "gemm-32x32x32", "--trials", "4", "--work-dir", str(tmp_path), "--json",
                 "--no-progress", "--set", "min_repeat_ms=1", "--set", "repeat=1"])
    out = capsys.readouterr().out
    assert code == 0
    summary = json.loads(out.strip().splitlines()[-1])
    assert {"best_ms", "gflops", "trials", "valid_rate"} <= set(summary)
    assert summary["trials"] == 4 and summary["best_ms"] > 0 and summary["check_ok"] is True
    assert "best ms" in out and "valid rate" in out


@pytest.mark.slow
def test_same_seed_and_same_recorded_measurements_give_the_same_search(tmp_path, fast_config):
    from minansor.measure.measurer import MeasureResult
    from minansor.measure.replay import ReplayMeasurer

    config = dataclasses.replace(fast_config, population=24, generations=2, min_fresh_random=8,
                                 model_min_samples=8)
    task = make_task("gemm-32x32x32")
    tune_task(task, config, str(tmp_path / "real"), trials=24, seed=3, progress=False)
    real = RecordStore(str(tmp_path / "real")).load(task.name)
    recorded = {task.name: [(t.program, MeasureResult(t.latencies_s, t.error)) for t in real]}
    paths = []
    for run in ("replay1", "replay2"):
        replay = ReplayMeasurer(recorded, fallback="fail")
        tune_task(task, config, str(tmp_path / run), trials=24, seed=3, progress=False, measurer=replay)
        assert replay.answers["exact"] == 24 and replay.answers["missing"] == 0
        paths.append([t.program.key() for t in RecordStore(str(tmp_path / run)).load(task.name)])
    assert paths[0] == paths[1] == [t.program.key() for t in real]


def _minansor(args: list[str]) -> subprocess.CompletedProcess:
    """The CLI in a fresh interpreter: MetaSchedule's tune_tir leaves its loggers in the process."""
    return subprocess.run([sys.executable, "-m", "minansor.cli"] + args, capture_output=True, text=True, timeout=600)


QUICK_REMEASURE = ["--set", "remeasure_turns=2", "--set", "remeasure_min_repeat_ms=1"]


@pytest.mark.slow
def test_compare_runs_both_tuners_and_remeasures_their_best(tmp_path, capsys):
    done = _minansor(["compare", "gemm-16x16x16", "--trials", "4", "--work-dir", str(tmp_path), "--no-progress",
                      "--set", "trials_per_round=4", "--set", "min_repeat_ms=1", "--set", "repeat=1"] + QUICK_REMEASURE)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    ratio = float(lines[-1].split(":")[1].split()[0])
    # the table's row: task, trials, minansor ms, MetaSchedule ms, ratio, ...; both re-measured
    row = next(line.split() for line in lines if line.startswith("gemm-16x16x16"))
    ours_ms, theirs_ms = float(row[2]), float(row[3])
    assert 0 < ours_ms < math.inf and 0 < theirs_ms < math.inf and row[-1] == "ok"
    assert float(row[4]) == ratio and abs(ratio - ours_ms / theirs_ms) <= 0.0005 + 0.0011 * ratio  # 4 digits each
    assert (tmp_path / "minansor" / "trials.jsonl").exists()
    assert (tmp_path / "metaschedule" / "database_tuning_record.json").exists()
    # again into the same work dir: MetaSchedule would start from its old records, so it is refused
    records = (tmp_path / "metaschedule" / "database_tuning_record.json").read_text()
    assert main(["compare", "gemm-16x16x16", "--trials", "4", "--work-dir", str(tmp_path), "--no-progress"]) == 2
    assert "--fresh" in capsys.readouterr().err
    assert (tmp_path / "metaschedule" / "database_tuning_record.json").read_text() == records
    start_afresh(str(tmp_path), fresh=True)
    assert not tmp_path.exists()


@pytest.mark.slow
def test_compare_without_a_valid_program_says_so_in_one_line_and_keeps_both_records(tmp_path, capsys, monkeypatch):
    """Every candidate of both tuners fails: ours crash for real; MetaSchedule's run is replaced by
    one that ends, as a run of only failures does, with no best program in its database (a real
    tune_tir here would leave its loggers bound to this test process)."""
    a = te.placeholder((64,), name="A")
    crashing = Task.from_te("crash-64", [a, te.compute((64,), lambda i: a[i] + tirx.call_extern("float32", "abort"),
                                                       name="B")])
    monkeypatch.setattr("minansor.cli.make_task", lambda name, target: crashing)
    monkeypatch.setattr("minansor.compare.metaschedule_runs.ms.tune_tir",
                        lambda mod, target, work_dir, **kwargs: ms.database.JSONDatabase(work_dir=work_dir))
    code = main(["compare", "crash-64", "--trials", "2", "--work-dir", str(tmp_path), "--no-progress",
                 "--set", "trials_per_round=2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1, err
    assert err[0].startswith(f"minansor: MetaSchedule found no valid program of crash-64 in 2 trials; "
                             f"the records of both tuners are kept in {tmp_path}")
    assert RecordStore(str(tmp_path / "minansor")).load("crash-64")  # ours: failed trials, kept
    assert (tmp_path / "metaschedule" / "database_workload.json").exists()


def test_geometric_mean_interval_widens_with_the_spread_of_the_ratios():
    low, high = geometric_mean_interval([math.exp(x) for x in (-0.1, 0.1)])
    assert (low, high) == pytest.approx((math.exp(-0.196), math.exp(0.196)), rel=1e-3)
    tight = geometric_mean_interval([math.exp(x) for x in (-0.01, 0.01)])
    assert low < tight[0] < 1 < tight[1] < high
    assert all(math.isnan(v) for v in geometric_mean_interval([0.9]))


@pytest.mark.slow
def test_compare_script_runs_every_seed_and_puts_their_ratios_side_by_side(tmp_path):
    script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "experiments",
                          "compare_metaschedule.py")
    run_in_own_process(script, ["--tasks", "gemm-16x16x16", "--budgets", "4", "--seeds", "0,1",
                                "--work-dir", str(tmp_path / "work"), "--results", str(tmp_path),
                                "--set", "trials_per_round=4", "--set", "min_repeat_ms=1", "--set", "repeat=1"] + QUICK_REMEASURE)
    per_seed = [json.load(open(tmp_path / name)) for name in ("compare-custom-4.json", "compare-custom-4-seed1.json")]
    ratios = [runs[0]["minansor"]["best_ms"] / runs[0]["metaschedule"]["best_ms"] for runs in per_seed]
    summary = (tmp_path / "compare-custom-4-seeds.md").read_text()
    row = next(line for line in summary.splitlines() if line.startswith("| gemm-16x16x16"))
    assert row.split(" | ")[1:3] == [f"{r:.3f}" for r in ratios]
    assert f"**{float(np.exp(np.mean(np.log(ratios)))):.3f}**" in summary
    assert f"minansor was faster on {sum(r < 1 for r in ratios)} of the 2 pairs" in summary

    # a change to the search is tried against the MetaSchedule run kept from before
    ms_records = tmp_path / "work" / "4" / "gemm-16x16x16" / "metaschedule" / "database_tuning_record.json"
    ours_trials = tmp_path / "work" / "4" / "gemm-16x16x16" / "minansor" / "trials.jsonl"
    kept, before = ms_records.read_text(), ours_trials.stat().st_mtime_ns
    run_in_own_process(script, ["--tasks", "gemm-16x16x16", "--budgets", "4", "--again", "minansor",
                                "--work-dir", str(tmp_path / "work"), "--results", str(tmp_path),
                                "--set", "trials_per_round=4", "--set", "min_repeat_ms=1", "--set", "repeat=1"] + QUICK_REMEASURE)
    retuned = json.load(open(tmp_path / "compare-custom-4.json"))[0]
    assert ms_records.read_text() == kept
    assert retuned["metaschedule"]["curve"] == per_seed[0][0]["metaschedule"]["curve"]
    assert ours_trials.stat().st_mtime_ns != before and len(ours_trials.read_text().splitlines()) == 4
    assert not (tmp_path / "compare-custom-4.again-pending.json").exists()

    # a change to the measurement: both kept bests re-measured, nothing tuned
    ours_now = ours_trials.read_text()
    run_in_own_process(script, ["--tasks", "gemm-16x16x16", "--budgets", "4", "--again", "remeasure",
                                "--work-dir", str(tmp_path / "work"), "--results", str(tmp_path)] + QUICK_REMEASURE)
    remeasured = json.load(open(tmp_path / "compare-custom-4.json"))[0]
    assert ours_trials.read_text() == ours_now and ms_records.read_text() == kept
    assert remeasured["minansor"]["curve"] == retuned["minansor"]["curve"]
    assert 0 < remeasured["minansor"]["best_ms"] < float("inf") and 0 < remeasured["metaschedule"]["best_ms"] < 1e9


def test_the_progress_bar_estimates_the_network_once_every_task_has_a_program():
    from minansor.scheduler import TaskProgress
    from minansor.tune import network_estimate

    measured = TaskProgress("conv", 2, 1e6, "conv", best_after_round=[0.5e-3])
    waiting = TaskProgress("pool", 1, 1e3, "pool")
    assert network_estimate([measured, waiting]) == "network ~? (1 of 2 tasks without a measured program yet)"
    waiting.best_after_round.append(0.25e-3)
    assert network_estimate([measured, waiting]) == "network ~1.2 ms"

"""Records: our trials round-trip, and MetaSchedule reads and builds what we write."""

import dataclasses
import json

import numpy as np
import pytest
import tvm
import tvm_ffi
from tvm.s_tir import meta_schedule as ms

from minansor.config import SearchConfig
from minansor.records import CONFIG_FILE, RecordStore, Trial
from minansor.space.search_space import SearchSpace
from minansor.tasks.workloads import make_task


def _trial(space, applied, index, latency=1e-3, error=None):
    return Trial(space.task.name, index, 0, applied.program, space.fingerprint(applied.program.sketch),
                 None if error else (latency, latency), error, 0.1, 0.2, "random", 0, {"note": "x"})


def test_trials_round_trip_and_a_truncated_last_line_is_skipped(tmp_path):
    space = SearchSpace(make_task("gemm-16x16x16"), SearchConfig())
    rng = np.random.default_rng(0)
    store = RecordStore(str(tmp_path))
    written = []
    for i in range(3):
        applied = space.random(rng)
        trial = _trial(space, applied, i, error="build: boom" if i == 1 else None)
        store.append(space.task, applied, trial)
        written.append(trial)
    assert store.load(space.task.name) == written
    with open(tmp_path / "trials.jsonl", "a") as f:
        f.write('{"task": "gemm-16x16x16", "ind')  # a run killed mid-write
    reloaded = RecordStore(str(tmp_path))
    assert reloaded.load() == written and reloaded.skipped_lines == 1
    applied = space.random(rng)
    reloaded.append(space.task, applied, _trial(space, applied, 3))  # starts on a fresh line
    assert len(reloaded.load()) == 4 and reloaded.skipped_lines == 1


def test_metaschedule_reads_our_record_and_builds_the_same_program(tmp_path):
    task = make_task("conv-12x12-4-8-3x3")
    space = SearchSpace(task, SearchConfig())
    applied = space.random(np.random.default_rng(5))
    store = RecordStore(str(tmp_path))
    store.append(task, applied, _trial(space, applied, 0))

    database = ms.database.JSONDatabase(work_dir=str(tmp_path))  # MetaSchedule's own reader
    assert len(database) == 1
    sch = database.query_schedule(task.mod, task.target, workload_name="main")
    assert sch is not None and tvm_ffi.structural_equal(sch.mod, applied.mod)

    built = ms.tir_integration.compile_tir(database, task.mod, task.target).mod
    rng = np.random.default_rng(0)
    inputs = [spec.random(rng) for spec in task.args]
    outs = []
    for mod in (built, applied.mod):
        arrays = [tvm.runtime.tensor(x) for x in inputs]
        tvm.compile(mod, target=task.target).mod["main"](*arrays)
        outs.append(arrays[-1].numpy())
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-5, atol=1e-5)


def test_failed_trials_stay_out_of_the_metaschedule_database(tmp_path):
    space = SearchSpace(make_task("gemm-16x16x16"), SearchConfig())
    applied = space.random(np.random.default_rng(0))
    store = RecordStore(str(tmp_path))
    store.append(space.task, applied, _trial(space, applied, 0, error="run: timeout"))
    line = json.loads((tmp_path / "trials.jsonl").read_text())
    assert line["error"] == "run: timeout" and line["latencies_s"] is None
    assert len(ms.database.JSONDatabase(work_dir=str(tmp_path))) == 0


@pytest.mark.slow
def test_a_run_records_its_config_and_explain_and_report_read_it(tmp_path, fast_config, capsys):
    """Knob bounds are part of a sketch's identity: a run under `max_innermost_tile=4` is
    explained under the recorded config without repeating --set, and a resume under another
    config says which fields differ."""
    from minansor.cli import main
    from minansor.tune import tune_task

    config = dataclasses.replace(fast_config, max_innermost_tile=4)
    work = str(tmp_path / "run")
    tune_task(make_task("gemm-32x32x32"), config, work, trials=8, seed=0, progress=False)
    recorded = RecordStore(work).load_config()
    assert recorded == config and json.load(open(tmp_path / "run" / CONFIG_FILE))["fingerprint"] == config.fingerprint()
    capsys.readouterr()
    assert main(["explain", work]) == 0  # under SearchConfig() no recorded sketch would exist
    assert "best: trial" in capsys.readouterr().out
    assert main(["report", work]) == 0
    assert "max_innermost_tile: 64 -> 4" in (tmp_path / "run" / "report.md").read_text()
    tune_task(make_task("gemm-32x32x32"), dataclasses.replace(config, eps_greedy=0.5), work, trials=12, seed=0,
              progress=False)
    assert "another config (eps_greedy: 0.05 -> 0.5)" in capsys.readouterr().out
    assert RecordStore(work).load_config().eps_greedy == 0.5


def test_a_config_round_trips_through_json_and_an_unknown_field_is_dropped():
    config = dataclasses.replace(SearchConfig(), unroll_steps=(0, 8), vnni=False)
    data = json.loads(json.dumps({**config.to_json(), "field_of_a_later_version": 1}))
    assert SearchConfig.from_json(data) == config
    assert config.differences(SearchConfig()) == ["unroll_steps: (0, 8) -> (0, 16, 64, 512)", "vnni: False -> True"]

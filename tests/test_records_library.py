"""A records library: earlier work dirs a run learns from, of the same target only."""

import dataclasses
import json
import os

import pytest

from minansor.cli import main
from minansor.errors import UserError
from minansor.records import TASKS_FILE, TRIALS_FILE, RecordStore
from minansor.records_library import read_library
from minansor.tasks.targets import resolve_target
from minansor.tasks.workloads import make_task
from minansor.tune import tune_tasks


@pytest.fixture(scope="module")
def earlier_run(tmp_path_factory, fast_config_module):
    work_dir = tmp_path_factory.mktemp("earlier")
    tasks = [make_task("conv-8x8-4-4-3x3"), make_task("gemm-32x32x32")]
    tune_tasks(tasks, fast_config_module, str(work_dir), trials=16, seed=0, progress=False)
    return str(work_dir)


def _copy_with_target(source: str, dest, target: dict) -> str:
    os.makedirs(dest)
    with open(os.path.join(source, TASKS_FILE)) as f, open(os.path.join(dest, TASKS_FILE), "w") as g:
        for line in f:
            g.write(json.dumps({**json.loads(line), "target": target}) + "\n")
    with open(os.path.join(source, TRIALS_FILE)) as f, open(os.path.join(dest, TRIALS_FILE), "w") as g:
        g.write(f.read())
    return str(dest)


def test_the_library_offers_each_tasks_best_and_its_measurements(earlier_run, fast_config):
    library = read_library([earlier_run], resolve_target("cpu"), fast_config, log=lambda line: None, progress=False)
    trials = RecordStore(earlier_run).load()
    assert {d.task for d in library.donors} == {t.task for t in trials}
    for donor in library.donors:
        best = min((t for t in trials if t.task == donor.task and t.ok), key=lambda t: t.median_s)
        assert donor.seconds == best.median_s and donor.source == os.path.basename(earlier_run)
    assert library.trials == sum(t.ok for t in trials)


def test_a_run_with_the_library_starts_from_its_programs_and_a_trained_model(earlier_run, fast_config, tmp_path):
    fast_config = dataclasses.replace(fast_config, model_min_samples=8)
    library = read_library([earlier_run], resolve_target("cpu"), fast_config, log=lambda line: None, progress=False)
    tasks = [make_task("conv-10x10-4-12-3x3")]
    tune_tasks(tasks, fast_config, str(tmp_path), trials=8, seed=0, progress=False, library=library)
    trials = RecordStore(str(tmp_path)).load()
    source = os.path.basename(earlier_run)
    lent = [t for t in trials if t.meta["origin"].startswith(f"transfer:{source}:conv-8x8-4-4-3x3#")]
    assert len(lent) == 1  # one recorded conv: its best, re-fitted
    assert all(t.meta["score"] == t.meta["score"] for t in trials if t not in lent)  # ranked: the model was pretrained


def test_bad_records_end_with_one_line_and_write_nothing(earlier_run, tmp_path, capsys):
    other = _copy_with_target(earlier_run, tmp_path / "arm",
                              {"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mcpu": "cortex-a57"})
    for records, message in ((str(tmp_path / "missing"), "no work dir"), (other, "another target")):
        work_dir = tmp_path / "run"
        code = main(["tune-model", "convnet", "--trials", "4", "--work-dir", str(work_dir), "--no-progress",
                     "--records", records])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and message in err[0]
        assert not work_dir.exists()


def test_unreadable_lines_are_skipped_and_counted_in_one_line(earlier_run, tmp_path, fast_config):
    corrupt = _copy_with_target(earlier_run, tmp_path / "corrupt", json.loads(str(resolve_target("cpu"))))
    with open(os.path.join(corrupt, TRIALS_FILE), "a") as f:
        f.write("{not json\n")
    lines = []
    library = read_library([corrupt], resolve_target("cpu"), fast_config, log=lines.append, progress=False)
    assert library.donors and any("1 unreadable trial line(s) skipped" in line for line in lines)
    with pytest.raises(UserError, match="holds no tasks"):
        os.makedirs(tmp_path / "empty")
        read_library([str(tmp_path / "empty")], resolve_target("cpu"), fast_config, log=lines.append, progress=False)

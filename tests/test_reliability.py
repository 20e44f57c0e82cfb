"""Faults: a run killed with SIGKILL resumes with nothing lost or measured twice; damaged record
files are tolerated; an RPC device that dies and comes back does not stop the run; bad input
never touches the work dir."""

import hashlib
import json
import os
import signal
import subprocess
import sys

import pytest

from helpers import wait_for
from minansor.cli import main
from minansor.records import RecordStore

pytestmark = pytest.mark.slow  # end-to-end runs: make test-fast leaves them out

FAST = ["--set", "trials_per_round=8", "--set", "repeat=1", "--set", "min_repeat_ms=1", "--set", "population=24",
        "--set", "model_min_samples=8", "--set", "min_fresh_random=8"]


def _lines(path: str) -> int:
    with open(path, encoding="utf-8") as f:
        return sum(1 for line in f if line.strip())


def test_sigkill_mid_round_then_the_same_command_resumes(tmp_path):
    work = str(tmp_path / "work")
    command = [sys.executable, "-m", "minansor.cli", "tune-op", "gemm-32x32x32", "--trials", "40", "--work-dir", work,
               "--no-progress"] + FAST
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    trials = os.path.join(work, "trials.jsonl")
    try:
        # after the first round is recorded, the second is being proposed or measured: kill it there
        wait_for(lambda: os.path.exists(trials) and _lines(trials) >= 8, "the first round", 120)
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    before = RecordStore(work).load()
    assert 8 <= len(before) < 40
    with open(trials, "a", encoding="utf-8") as f:
        f.write('{"task": "gemm-32x32x32", "index": ')  # what a kill during a write leaves
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "skipped 1 unreadable line" in result.stderr
    after = RecordStore(work).load()
    assert len(after) == 40 and after[:len(before)] == before  # the sum, the old records untouched
    assert len({t.program.key() for t in after}) == 40  # nothing measured twice
    assert [t.index for t in after] == list(range(40))  # the search state came back from the records
    assert max(t.round for t in after[len(before):]) > max(t.round for t in before)


def _digest(work: str) -> dict[str, str]:
    return {name: hashlib.sha256(open(os.path.join(work, name), "rb").read()).hexdigest()
            for name in sorted(os.listdir(work))}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    work = str(tmp_path_factory.mktemp("recorded"))
    assert main(["tune-op", "gemm-16x16x16", "--trials", "8", "--work-dir", work, "--no-progress"] + FAST) == 0
    return work


BAD_ON_A_WORK_DIR = [
    (["tune-op", "no-such-workload"], "unknown workload"),
    (["tune-op", "gemm-0x16x16"], "must be >= 1"),
    (["tune-op", "gemm-16x16x16", "--target", "tpu"], "target"),
    (["tune-op", "gemm-16x16x16", "--trials", "0"], "--trials"),
    (["tune-op", "gemm-16x16x16", "--set", "population=0"], "population"),
    (["tune-op", "gemm-16x16x16", "--rpc", "nohost"], "HOST:PORT:KEY"),
    (["tune-model", "missing.onnx"], "neither a file"),
    (["explain", "--task", "no-such-task"], "no trials of task"),
    (["explain", "--set", "cpu_tile_structure=RR"], "tile structure"),
]


@pytest.mark.parametrize("argv,message", BAD_ON_A_WORK_DIR)
def test_bad_input_is_one_line_exit_2_and_the_work_dir_is_untouched(recorded, argv, message, capsys):
    before = _digest(recorded)
    position = ["--work-dir", recorded] if argv[0] in ("tune-op", "tune-model") else [recorded]
    assert main(argv[:1] + position + argv[1:]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and "Traceback" not in err
    assert _digest(recorded) == before


@pytest.mark.parametrize("command", ["report", "explain"])
def test_report_and_explain_refuse_a_missing_or_empty_work_dir(command, tmp_path, capsys):
    assert main([command, str(tmp_path / "missing")]) == 2
    assert "no work dir" in capsys.readouterr().err
    (tmp_path / "trials.jsonl").write_text("garbage\n")
    assert main([command, str(tmp_path)]) == 2
    assert "no readable trials" in capsys.readouterr().err
    assert (tmp_path / "trials.jsonl").read_text() == "garbage\n"


def test_a_damaged_trace_or_task_file_is_skipped(recorded, tmp_path, capsys):
    work = str(tmp_path / "copy")
    os.makedirs(work)
    for name in os.listdir(recorded):
        with open(os.path.join(recorded, name), "rb") as src, open(os.path.join(work, name), "wb") as dst:
            dst.write(src.read())
    for name in ("rounds.jsonl", "tasks.jsonl"):
        with open(os.path.join(work, name), "a") as f:
            f.write('{"task": "gemm-16')
    assert main(["report", work]) == 0 and main(["explain", work] + FAST) == 0
    capsys.readouterr()
    # a further run appends whole lines after the damaged ones
    assert main(["tune-op", "gemm-16x16x16", "--trials", "16", "--work-dir", work, "--no-progress"] + FAST) == 0
    rounds = open(os.path.join(work, "rounds.jsonl")).read().splitlines()
    assert rounds[-2] == '{"task": "gemm-16' and json.loads(rounds[-1])["trials"] == 16
    assert len(RecordStore(work).load_rounds()) == 2 and list(RecordStore(work).load_tasks()) == ["gemm-16x16x16"]

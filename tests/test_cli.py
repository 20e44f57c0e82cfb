"""Bad input: one line on stderr, exit status 2, no traceback."""

import subprocess
import sys

import pytest

from minansor.cli import build_parser, main

BAD = [
    (["tune-op", "no-such-workload"], "unknown workload"),
    (["tune-op", "gemm-nx64x64"], "dynamic"),
    (["tune-op", "gemm-64x64x64", "--target", "{not json"], "unknown target"),
    (["tune-op", "gemm-64x64x64", "--target", '{"kind": "llvmx"}'], "malformed target"),
    (["tune-op", "gemm-64x64x64", "--target", '{"kind": "llvm", "mcpu": "nonsense"}'], "malformed target"),
    (["tune-op", "gemm-64x64x64", "--set", "no_such_field=3"], "--set"),
    (["tune-op", "gemm-64x64x64", "--set", "mutators=tile_size:1,bogus:2"], "unknown mutator"),
    (["tune-op", "gemm-64x64x64", "--set", "cost_model=gbdt"], "unknown cost model"),
    (["sketches", "gemm-64x64x64", "--set", "max_vector_length=abc"], "cannot read"),
]


@pytest.mark.parametrize("argv,message", BAD)
def test_bad_input_is_one_line_and_exit_status_2(argv, message, capsys, tmp_path):
    assert main(argv + (["--work-dir", str(tmp_path)] if argv[0] == "tune-op" else [])) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and "Traceback" not in err


def test_dynamic_shapes_are_refused_by_task_construction():
    from tvm import te

    from minansor.errors import UserError
    from minansor.tasks.task import Task

    n = te.var("n")
    a = te.placeholder((n, 4), name="A")
    b = te.compute((n, 4), lambda i, j: a[i, j] * 2, name="B")
    with pytest.raises(UserError, match="dynamic shape"):
        Task.from_te("dyn", [a, b])


def test_unwritable_work_dir_is_a_clean_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert main(["tune-op", "gemm-8x8x8", "--work-dir", str(blocker / "sub"), "--trials", "1"]) == 2
    assert "cannot use work dir" in capsys.readouterr().err
    assert blocker.read_text() == "not a directory"


def test_every_subcommand_has_help(capsys):
    commands = next(a for a in build_parser()._actions if a.dest == "command").choices
    assert {"workloads", "sketches", "tune-op", "tune-model", "compare", "report", "explain"} <= set(commands)
    for command in commands:
        with pytest.raises(SystemExit) as done:
            main([command, "--help"])
        assert done.value.code == 0 and f"usage: minansor {command}" in capsys.readouterr().out
    # and the module runs as a program
    done = subprocess.run([sys.executable, "-m", "minansor.cli", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "usage:" in done.stdout


def test_workloads_lists_the_catalogue(capsys):
    assert main(["workloads"]) == 0
    out = capsys.readouterr().out
    for name in ["gemm-512x512x512", "gemm-1024x1024x1024", "yolo-conv-104x104-64-64-3x3",
                 "yolo-conv-416x416-3-32-3x3s2", "yolo-maxpool-104x104-128", "rowsum-64x16384"]:
        assert name in out


def test_sketches_prints_steps_and_valid_rate(capsys):
    assert main(["sketches", "gemm-32x32x32", "--samples", "5"]) == 0
    out = capsys.readouterr().out
    assert "cache_write C" in out and "fuse C_local into C at tile level 1" in out and "valid rate: 100.0%" in out

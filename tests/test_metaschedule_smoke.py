"""Guards the apache-tvm-ffi pin: with 0.1.15.post2 MetaSchedule segfaults as soon as tune_tir
writes its database. Runs in a subprocess so a segfault fails this test instead of pytest. The
same run checks that MetaSchedule tunes with only the CPU's tensor intrinsics registered
(tir/intrinsics.py), not every one TVM has (20-60 s per process)."""

import subprocess
import sys

import pytest

SCRIPT = """
import tempfile
from tvm.s_tir import meta_schedule as ms
from minansor import metaschedule
from minansor.config import SearchConfig
from minansor.tasks.workloads import make_task
from minansor.tir.intrinsics import register_intrinsics
task = make_task("gemm-32x32x32")
register_intrinsics(task.target)
with tempfile.TemporaryDirectory() as work_dir:
    db = ms.tune_tir(task.mod, task.target, work_dir, max_trials_global=4, num_trials_per_iter=4, seed=1,
                     builder=metaschedule.builder(SearchConfig()), runner=metaschedule.runner(SearchConfig()))
    records = db.get_all_tuning_records()
    assert records, "MetaSchedule recorded nothing"
    print("records", len(records))
import sys
from tvm.s_tir import TensorIntrin
TensorIntrin.get("dot_16x4_vnni")  # x86's are registered
assert "tvm.s_tir.tensor_intrin.cuda" not in sys.modules, "every intrinsic TVM has was registered"
"""


@pytest.mark.slow
def test_metaschedule_tune_tir_writes_its_database():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stderr[-2000:]}"
    assert "records" in done.stdout

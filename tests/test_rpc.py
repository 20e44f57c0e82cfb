"""Remote measurement through a real rpc_tracker and rpc_servers on loopback, and the presets
that cross-compile for a device."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from tvm import rpc

from minansor.cli import main
from minansor.measure import build_module
from minansor.models import load_model
from minansor.network import tune_network
from minansor.records import RecordStore
from minansor.rpc import RPCMeasurer, RPCSettings
from minansor.targets import cross_compiler, resolve_target
from minansor.tune import tune_task
from minansor.workloads import make_task

KEY = "loopback"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # its own process group: stopped with its children


def _stop(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def _servers_registered(port: int) -> int:
    try:
        summary = rpc.connect_tracker("127.0.0.1", port).summary()
    except Exception:
        return -1
    return int(summary["queue_info"].get(KEY, {}).get("free", 0))


def _wait_for(condition, what: str, timeout_s: float = 60.0) -> None:
    deadline = time.time() + timeout_s
    while not condition():
        if time.time() > deadline:
            raise TimeoutError(f"gave up waiting for {what}")
        time.sleep(0.2)


@pytest.fixture
def loopback():
    """A tracker and two servers under one key, on free loopback ports; stopped by pid."""
    port = _free_port()
    processes = [_start("tvm.exec.rpc_tracker", "--host", "127.0.0.1", "--port", str(port), "--port-end",
                        str(port + 1))]
    servers = []
    try:
        _wait_for(lambda: _servers_registered(port) >= 0, "the tracker")
        for _ in range(2):
            server_port = _free_port()
            servers.append(_start("tvm.exec.rpc_server", "--tracker", f"127.0.0.1:{port}", "--key", KEY,
                                  "--host", "127.0.0.1", "--port", str(server_port), "--port-end",
                                  str(server_port + 1)))
        processes += servers
        _wait_for(lambda: _servers_registered(port) == 2, "two servers")
        yield port, servers
    finally:
        for process in processes:
            _stop(process)


def test_tune_through_the_tracker_on_two_devices(loopback, fast_config, tmp_path):
    port, _ = loopback
    task = make_task("gemm-64x48x32")
    with RPCMeasurer(fast_config, RPCSettings("127.0.0.1", port, KEY, devices=2)) as measurer:
        result = tune_task(task, fast_config, str(tmp_path), trials=12, progress=False, measurer=measurer)
    assert result.trials == 12 and result.failed == 0 and result.check.ok
    trials = RecordStore(str(tmp_path)).load()
    assert len(trials) == 12 and len({t.program.key() for t in trials}) == 12  # each candidate once
    # the same through the command line
    assert main(["tune-op", "gemm-64x48x32", "--trials", "8", "--work-dir", str(tmp_path / "cli"), "--no-progress",
                 "--set", "trials_per_round=4", "--rpc", f"127.0.0.1:{port}:{KEY}", "--rpc-devices", "2"]) == 0
    assert len(RecordStore(str(tmp_path / "cli")).load()) == 8


def test_tune_model_times_the_whole_network_on_the_device(loopback, fast_config, tmp_path, monkeypatch):
    """The network is exported, uploaded and run in the Relax VM on a device from the tracker:
    untuned and tuned, with the outputs fetched back for the check against PyTorch."""
    port, _ = loopback
    uploads = []
    open_library = RPCMeasurer.open_library
    monkeypatch.setattr(RPCMeasurer, "open_library",
                        lambda self, path, target: uploads.append(os.path.basename(path)) or
                        open_library(self, path, target))
    work = str(tmp_path / "work")
    network = load_model("convnet")
    with RPCMeasurer(fast_config, RPCSettings("127.0.0.1", port, KEY, devices=2)) as measurer:
        result = tune_network(network, fast_config, work, trials=10, progress=False, repeats=2, measurer=measurer)
    assert result.untuned_check.ok and result.tuned_check.ok
    assert result.tuned.median_s < result.untuned.median_s
    assert uploads.count("network.so") == 2  # the untuned and the tuned network ran on the device
    assert uploads.count("check.so") == len(result.tuning.results)  # each task's best program was checked there
    # the command line
    assert main(["tune-model", "convnet", "--trials", "12", "--work-dir", work, "--no-progress", "--skip-untuned",
                 "--repeats", "1", "--set", "repeat=1", "--set", "min_repeat_ms=1",
                 "--rpc", f"127.0.0.1:{port}:{KEY}"]) == 0
    assert uploads.count("network.so") == 3 and len(RecordStore(work).load()) == 12


def test_a_device_lost_mid_batch_is_replaced_and_its_candidate_requeued(loopback, fast_config):
    port, servers = loopback
    task = make_task("gemm-64x48x32")
    measurer = RPCMeasurer(fast_config, RPCSettings("127.0.0.1", port, KEY, devices=2))
    busy, unplugged, lock = [0], threading.Event(), threading.Lock()  # no references: they would keep sessions open
    time_on = measurer._time_on

    def unplug_first_board_once_both_are_busy(session, *args):
        with lock:
            busy[0] += 1
            first = busy[0] == 1
        if first:
            _wait_for(lambda: busy[0] >= 2, "both devices busy", 30)
            _stop(servers[0])
            unplugged.set()
        unplugged.wait(30)
        return time_on(session, *args)

    measurer._time_on = unplug_first_board_once_both_are_busy
    with measurer:
        results = measurer.measure(task, [task.mod] * 6)
    assert all(r.ok for r in results), [r.error for r in results]  # all six measured, once each
    assert measurer.reconnects == 1


def test_no_tracker_is_a_failed_trial_not_a_crash(fast_config):
    task = make_task("gemm-64x48x32")
    settings = RPCSettings("127.0.0.1", _free_port(), KEY)
    with RPCMeasurer(fast_config, settings) as measurer:
        measurer._request = lambda: (_ for _ in ()).throw(RuntimeError("Cannot request loopback after 5 retry"))
        (result,) = measurer.measure(task, [task.mod])
    assert not result.ok and result.error.startswith("run:")


def test_rpc_option_parsing():
    assert RPCSettings.parse("10.0.0.2:9190:nano", devices=3) == RPCSettings("10.0.0.2", 9190, "nano", devices=3)
    with pytest.raises(Exception, match="HOST:PORT:KEY"):
        RPCSettings.parse("10.0.0.2:nano")


@pytest.mark.skipif(shutil.which("aarch64-linux-gnu-g++") is None,
                    reason="needs Debian's aarch64 cross compiler (apt-get install g++-aarch64-linux-gnu)")
def test_jetson_nano_preset_builds_an_aarch64_library(tmp_path):
    from tvm import s_tir

    task = make_task("gemm-64x48x32", "jetson-nano")
    assert cross_compiler(task.target) == "aarch64-linux-gnu-g++"
    sch = s_tir.Schedule(task.mod)
    block = sch.get_sblock("C")
    i, j, _ = sch.get_loops(block)
    sch.bind(i, "blockIdx.x")
    sch.bind(j, "threadIdx.x")
    path = str(tmp_path / "nano.so")
    build_module(__import__("tvm").ir.save_json(sch.mod), task.target.export(), path, cross_compiler(task.target))
    with open(path, "rb") as f:
        header = f.read(20)
    assert header[:4] == b"\x7fELF" and int.from_bytes(header[18:20], "little") == 183  # EM_AARCH64
    assert resolve_target("cpu").host is None and cross_compiler(resolve_target("cpu")) is None

"""Remote measurement through a real rpc_tracker and rpc_servers on loopback, and the presets
that cross-compile for a device."""

import os
import shutil
import subprocess
import threading
import time

import pytest
from tvm import rpc

from helpers import free_port, start_module, start_tracker, stop_group, wait_for
from minansor.cli import main
from minansor.measure.local import build_module
from minansor.measure.rpc import RPCMeasurer, RPCSettings
from minansor.network.models import load_model
from minansor.network.tuning import tune_network
from minansor.records import RecordStore
from minansor.tasks.targets import cross_compiler, resolve_target
from minansor.tasks.workloads import make_task
from minansor.tune import tune_task

pytestmark = pytest.mark.slow  # end-to-end runs: make test-fast leaves them out

KEY = "loopback"


def _servers_registered(port: int) -> int:
    try:
        summary = rpc.connect_tracker("127.0.0.1", port).summary()
    except Exception:
        return -1
    return int(summary["queue_info"].get(KEY, {}).get("free", 0))


def _start_server(tracker_port: int) -> subprocess.Popen:
    port = free_port()
    return start_module("tvm.exec.rpc_server", "--tracker", f"127.0.0.1:{tracker_port}", "--key", KEY,
                        "--host", "127.0.0.1", "--port", str(port), "--port-end", str(port + 1))


@pytest.fixture
def tracker():
    """An rpc_tracker on a free loopback port; stopped by pid."""
    process, port = start_tracker()
    try:
        wait_for(lambda: _servers_registered(port) >= 0, "the tracker")
        yield port
    finally:
        stop_group(process)


@pytest.fixture
def loopback(tracker):
    """Two servers under one key at the tracker; stopped by pid."""
    servers = [_start_server(tracker) for _ in range(2)]
    try:
        wait_for(lambda: _servers_registered(tracker) == 2, "two servers")
        yield tracker, servers
    finally:
        for server in servers:
            stop_group(server)


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
    tuned_library = f"{network.name}.so"  # the tuned network is kept in the work dir; the untuned one is scratch
    assert uploads.count("network.so") == 1 and uploads.count(tuned_library) == 1  # both ran on the device
    assert uploads.count("check.so") == len(result.tuning.results)  # each task's best program was checked there
    # the command line
    assert main(["tune-model", "convnet", "--trials", "12", "--work-dir", work, "--no-progress", "--skip-untuned",
                 "--repeats", "1", "--set", "repeat=1", "--set", "min_repeat_ms=1",
                 "--rpc", f"127.0.0.1:{port}:{KEY}"]) == 0
    assert uploads.count("network.so") == 1 and uploads.count(tuned_library) == 2
    assert len(RecordStore(work).load()) == 12


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
            wait_for(lambda: busy[0] >= 2, "both devices busy", 30)
            stop_group(servers[0])
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
    settings = RPCSettings("127.0.0.1", free_port(), KEY)
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


def test_a_device_killed_and_restarted_mid_run_does_not_stop_it(tracker, fast_config, tmp_path):
    """One device: it dies in the middle of a batch, and a new server registers a moment later
    under the same key; the lost candidate waits for it and the run finishes."""
    port = tracker
    server = [_start_server(port)]
    wait_for(lambda: _servers_registered(port) == 1, "the server")
    measurer = RPCMeasurer(fast_config, RPCSettings("127.0.0.1", port, KEY, devices=1))
    time_on, calls = measurer._time_on, [0]

    def restart_once(session, *args):
        calls[0] += 1
        if calls[0] == 3:
            stop_group(server[0])

            def come_back():
                time.sleep(2.0)
                server.append(_start_server(port))

            threading.Thread(target=come_back, daemon=True).start()
        return time_on(session, *args)

    measurer._time_on = restart_once
    try:
        with measurer:
            result = tune_task(make_task("gemm-64x48x32"), fast_config, str(tmp_path), trials=12, progress=False,
                               measurer=measurer)
    finally:
        for process in server:
            stop_group(process)
    assert result.trials == 12 and result.failed == 0 and result.check.ok
    assert measurer.reconnects == 1 and len(server) == 2

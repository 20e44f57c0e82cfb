"""The Jetson path on an aarch64 CPU that runs: an emulated device (qemu-user, an arm64 Python
and TVM, emulated_device.py) behind a real tracker. What it proves is that the libraries built
for `jetson-nano-cpu` run there and compute the right thing; its timings are qemu's.

The device is set up once per machine in its cache folder (about a minute, 450 MB; CI keeps it
between the runs of one job); where it cannot be (no x86-64 Linux host, no root for apt-get, no
path to Debian's registry) the tests skip with the reason."""

import os

import pytest

from helpers import free_port, start_tracker, stop_group, wait_for
from minansor import emulated_device as emulated
from minansor.cli import main
from minansor.errors import UserError
from minansor.measure.rpc import RPCMeasurer, RPCSettings
from minansor.network.models import load_model
from minansor.network.tuning import tune_network
from minansor.records import RecordStore

pytestmark = pytest.mark.slow  # emulation is 10-50x slower than the host: make test-fast leaves them out

KEY = "a57"


@pytest.fixture(scope="module")
def device() -> emulated.EmulatedDevice:
    try:
        return emulated.setup(emulated.EmulatedDevice(emulated.default_cache()), log=lambda line: None)
    except UserError as err:
        pytest.skip(f"no emulated aarch64 device here: {err}")


@pytest.fixture(scope="module")
def a57(device):
    """A tracker on loopback and one emulated Cortex-A57 registered under KEY; both stopped by pid."""
    tracker, port = start_tracker()
    address = f"127.0.0.1:{port}"
    try:
        wait_for(lambda: emulated.registered(address, KEY) >= 0, "the tracker")
        pid = emulated.start_server(device, address, KEY, port=free_port())
        try:
            emulated.wait_registered(device, pid, address, KEY, before=0)
            yield address
        finally:
            emulated.stop_server(pid)
    finally:
        stop_group(tracker)


@pytest.fixture
def uploads(monkeypatch) -> list[str]:
    """The file names of the libraries uploaded to a device."""
    names: list[str] = []
    open_library = RPCMeasurer.open_library
    monkeypatch.setattr(RPCMeasurer, "open_library",
                        lambda self, path, target: names.append(os.path.basename(path)) or
                        open_library(self, path, target))
    return names


def test_the_device_runs_aarch64_python_and_tvm(device):
    machine, version = device.run_python("import platform, tvm; print(platform.machine(), tvm.__version__)").split()
    assert machine == "aarch64" and version == device.wheels()["apache-tvm"]


def test_tune_op_on_the_emulated_device_checks_its_best_there(a57, uploads, tmp_path, capsys):
    work = str(tmp_path / "op")
    assert main(["tune-op", "conv-14x14-16-16-3x3-nhwc", "--target", "jetson-nano-cpu", "--rpc", f"{a57}:{KEY}",
                 "--trials", "4", "--work-dir", work, "--no-progress", "--json", "--set", "trials_per_round=4",
                 "--set", "repeat=1", "--set", "min_repeat_ms=1"]) == 0
    trials = RecordStore(work).load()
    assert len(trials) == 4 and all(t.error is None for t in trials)
    assert uploads.count("check.so") == 1 and '"check_ok": true' in capsys.readouterr().out


def test_tune_model_built_for_aarch64_runs_and_matches_pytorch_on_the_device(a57, uploads, fast_config, tmp_path):
    config = fast_config
    network = load_model("convnet")
    with RPCMeasurer(config, RPCSettings("127.0.0.1", int(a57.rsplit(":", 1)[1]), KEY)) as measurer:
        result = tune_network(network, config, str(tmp_path), trials=8, target="jetson-nano-cpu", progress=False,
                              repeats=1, measurer=measurer)
    assert result.untuned_check.ok and result.tuned_check.ok  # outputs fetched back, against PyTorch
    assert uploads.count("network.so") == 1 and uploads.count(f"{network.name}.so") == 1
    assert uploads.count("check.so") == len(result.tuning.results)  # every task's best checked on the device
    with open(result.library, "rb") as f:
        header = f.read(20)
    assert header[:4] == b"\x7fELF" and int.from_bytes(header[18:20], "little") == 183  # EM_AARCH64


def test_device_commands_say_what_is_wrong_in_one_line(capsys, tmp_path):
    cache = ["--cache", str(tmp_path / "cache")]
    assert main(["device", "start", *cache]) == 2
    assert main(["device", "start", "--tracker", f"127.0.0.1:{free_port()}", *cache]) == 2
    assert main(["device", "start", "--tracker", "nowhere", *cache]) == 2
    assert main(["device", "stop", *cache]) == 2
    assert main(["device", "stop", "999999999", *cache]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 5 and all(line.startswith("minansor: error: ") for line in errors)
    assert "--tracker HOST:PORT" in errors[0] and "no RPC tracker answers" in errors[1] and "HOST:PORT" in errors[2]
    assert "give the server's PID" in errors[3] and "no process 999999999" in errors[4]
    assert not os.path.exists(tmp_path / "cache")  # nothing set up for a command that cannot run


def test_a_host_that_cannot_emulate_is_one_line(monkeypatch):
    monkeypatch.setattr(emulated.platform, "machine", lambda: "aarch64")
    with pytest.raises(UserError, match="needs an x86-64 Linux host"):
        emulated.check_host()


def test_the_nano_cpu_preset_is_an_aarch64_cpu_without_x86_intrinsics():
    from minansor.tasks.targets import cross_compiler, resolve_target
    from minansor.tir.amx import has_amx
    from minansor.tir.vnni import has_vnni

    target = resolve_target("jetson-nano-cpu")
    assert target.kind.name == "llvm" and str(target.attrs["mtriple"]) == "aarch64-linux-gnu"
    assert cross_compiler(target) == "aarch64-linux-gnu-g++"
    assert not has_vnni(target) and not has_amx(target) and not has_amx(target, "bf16")

"""Whole networks: import, graph optimization, task extraction, the tuned build."""

import json
import os

import numpy as np
import onnx
import pytest
import tvm
from onnx import TensorProto, helper, numpy_helper
from tvm import relax

from minansor.cli import main
from minansor.config import SearchConfig
from minansor.network.engines import network_engines
from minansor.network.extract import extract_tasks
from minansor.network.graph import graph_summary, optimize
from minansor.network.models import load_model
from minansor.network.run import build, check_against_reference, run


@pytest.fixture(scope="module")
def convnet():
    return load_model("convnet")


def test_graph_optimization_folds_batch_norm_and_fuses(convnet):
    before = graph_summary(convnet.mod)
    fused = optimize(convnet.mod, "NCHW")
    after = graph_summary(fused)
    assert before["operator calls"] >= 12 and before["PrimFuncs"] == 0
    assert after["operator calls"] == 0 and after["PrimFunc calls"] == 6 and after["PrimFuncs"] == 5
    assert not any("batch_norm" in gv.name_hint for gv in fused.functions)


def test_tasks_are_distinct_fused_functions_weighted_by_calls(convnet):
    tasks = extract_tasks(optimize(convnet.mod, "NCHW"))
    by_name = {t.name: t for t in tasks}
    assert sum(t.weight for t in tasks) == 6 and len(tasks) == 5
    repeated = [t for t in tasks if t.weight == 2]
    assert len(repeated) == 1 and "conv2d" in repeated[0].name
    assert repeated[0].flops == pytest.approx(2 * 16 * 16 * 9 * 32 * 32 + 3 * 16 * 32 * 32, rel=0.01)
    assert all(t.task is not None and t.task.weight == t.weight for t in tasks)
    assert by_name["concatenate1"].flops == 0
    assert tasks[0] is repeated[0]  # sorted by weighted FLOPs


def test_nhwc_keeps_the_activations_channels_last_from_the_input_to_the_outputs(convnet):
    fused = optimize(convnet.mod, "NHWC")
    called = [b.value.args[0].name_hint for b in fused["main"].body.blocks[0].bindings
              if isinstance(b.value, relax.Call) and b.value.op.name == "relax.call_tir"]
    transposes = [name for name in called if "transpose" in name]
    assert len(transposes) == 2  # the input into NHWC, the output back to NCHW: nothing in between
    assert not any("leaky" in name for name in called) and sum("maximum" in name for name in called) == 3
    inputs = [convnet.inputs[0].random(np.random.default_rng(0))]
    timing = run(build(fused)[0], inputs, repeats=1)
    check = check_against_reference(convnet, timing.outputs, inputs, SearchConfig())
    assert check.ok and check.max_abs_error < 1e-5


def test_a_function_with_no_decision_is_reported_not_tuned():
    from tvm import relax, topi

    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((1,), "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            out = bb.emit_output(bb.emit_te(topi.add, x, relax.const(1.0, "float32")))
        bb.emit_func_output(out)
    tasks = extract_tasks(optimize(bb.get()))
    assert len(tasks) == 1 and tasks[0].task is None and tasks[0].skipped.startswith("nothing to tune")


def _onnx_convnet(path: str) -> None:
    rng = np.random.default_rng(0)
    weights = {"w": rng.normal(0, 0.3, (8, 3, 3, 3)), "scale": rng.uniform(0.5, 1.5, 8), "bias": rng.normal(0, 0.1, 8),
               "mean": rng.normal(0, 0.1, 8), "var": rng.uniform(0.5, 1.5, 8)}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "scale", "bias", "mean", "var"], ["b"]),
             helper.make_node("LeakyRelu", ["b"], ["l"], alpha=0.1),
             helper.make_node("MaxPool", ["l"], ["y"], kernel_shape=[2, 2], strides=[2, 2])]
    graph = helper.make_graph(nodes, "onnxnet", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 8, 8])],
                              [numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items()])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def test_onnx_model_builds_and_matches_onnxruntime(tmp_path):
    path = str(tmp_path / "onnxnet.onnx")
    _onnx_convnet(path)
    network = load_model(path)
    assert network.source == "onnx" and network.inputs[0].shape == (1, 3, 16, 16)
    fused = optimize(network.mod, "NCHW")
    assert len(extract_tasks(fused)) == 2  # conv + BN + leaky ReLU, max pool
    inputs = [network.inputs[0].random(np.random.default_rng(0))]
    timing = run(build(fused)[0], inputs, repeats=1)
    assert check_against_reference(network, timing.outputs, inputs, SearchConfig()).ok
    # the engines a user would otherwise run it with compute the same
    engines = network_engines(network)
    assert {e.name for e in engines} >= {"onnxruntime", "OpenVINO"} and all(e.precision == "fp32" or
                                                                          e.name == "OpenVINO default" for e in engines)
    for engine in engines:
        np.testing.assert_allclose(engine.forward(inputs)[0], timing.outputs[0], rtol=0.05, atol=0.05)


@pytest.mark.slow
def test_tune_model_builds_checks_exports_and_resumes(tmp_path, capsys):
    work = str(tmp_path / "work")
    args = ["tune-model", "convnet", "--work-dir", work, "--repeats", "2", "--no-progress", "--json",
            "--set", "build_timeout_s=60", "--set", "repeat=1", "--set", "min_repeat_ms=1"]
    assert main(args + ["--trials", "10"]) == 0
    out = capsys.readouterr().out
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["trials"] == 10 and summary["new_trials"] == 10 and summary["tuned_check_ok"]
    assert 0 < summary["tuned_ms"] < float("inf") and 0 < summary["untuned_ms"] < float("inf")
    assert os.path.getsize(summary["library"]) > 0 and os.path.getsize(summary["plot"]) > 0
    assert len(summary["tuned_functions"]) == 7  # every fused PrimFunc got its record applied
    assert "fused_conv2d1_add_multiply_maximum1" in out and "speedup" in out
    # beside the engine the model came from and the engines of its ONNX export, timed in the same run
    assert [e["engine"] for e in summary["engines"]][:3] == ["PyTorch eager", "onnxruntime", "OpenVINO"]
    assert "fastest other engine" in out
    # the library deploys the kernels on constants packed at compile time: no packing function is left,
    # and every weight a best program packs is in the constant pool in its packed shape
    stats = relax.VMExecutable(tvm.runtime.load_module(summary["library"])).stats()
    constants, functions = stats.split("Globals")
    packed = [p for r in summary["results"] for p in r["packed"]]
    assert len(packed) == 3  # the weight of each of the three distinct convs
    assert all(str(layout) in constants for _, _, layout in packed)
    assert "_prepacked" in functions and "weight_prepack" not in functions
    # the same command with a larger budget measures only the difference
    assert main(args + ["--trials", "14", "--skip-untuned"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["trials"] == 14 and summary["new_trials"] == 4
    # which task gets the 4 new trials follows measured latencies (test_scheduler.py checks the rule)
    assert sum(r["trials"] for r in summary["results"]) == 14 and all(r["trials"] >= 1 for r in summary["results"])
    with open(os.path.join(work, "trials.jsonl")) as f:
        keys = [(t["task"], json.dumps(t["program"], sort_keys=True)) for t in map(json.loads, f)]
    assert len(keys) == 14 == len(set(keys))


def test_bad_model_files_are_one_line_errors(tmp_path, capsys):
    garbage = tmp_path / "broken.onnx"
    garbage.write_bytes(b"not a model")
    for spec, message in [(str(garbage), "cannot read"), (str(tmp_path / "missing.onnx"), "neither a file"),
                          (str(tmp_path), "neither a file")]:
        assert main(["tune-model", spec, "--work-dir", str(tmp_path / "w")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err


def test_a_saved_torch_export_program_loads_and_matches_pytorch(tmp_path):
    import torch

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.LeakyReLU(0.1)).eval()
    path = str(tmp_path / "tiny.pt2")
    torch.export.save(torch.export.export(model, (torch.zeros(1, 3, 8, 8),)), path)
    network = load_model(path)
    assert network.name == "tiny" and network.source == "pytorch" and network.inputs[0].shape == (1, 3, 8, 8)
    inputs = [network.inputs[0].random(np.random.default_rng(0))]
    timing = run(build(optimize(network.mod))[0], inputs, repeats=1)
    assert check_against_reference(network, timing.outputs, inputs, SearchConfig()).ok

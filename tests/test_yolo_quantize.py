"""Int8 quantization: PT2E calibration, QDQ ONNX export, and the int8 model in TVM running real
integer convolutions that match onnxruntime."""

import os

import numpy as np
import onnx
import pytest
import torch
import tvm
from PIL import Image
from tvm import relax

from minansor.measure.verify import compare_outputs
from minansor.network.graph import graph_passes, inner_transposes, optimize
from minansor.network.int8 import QUANTIZED_ATOL, count_integer_conv2d, integer_conv2d, is_quantized
from minansor.network.models import randomize_batchnorm, from_onnx
from yolo.data import SYNTHETIC_CLASSES, make_synthetic_voc
from yolo.metrics import Detections
from yolo.model import YoloV4Tiny
from yolo.photo import DEFAULT_PHOTO, count_hits, main as photo_main
from yolo.quantize import export_onnx, main as quantize_main, output_names, quantize_int8
from yolo.train import TrainConfig, save_checkpoint

SIZE = 64


@pytest.fixture(scope="module")
def int8_onnx(tmp_path_factory) -> str:
    torch.manual_seed(0)
    model = YoloV4Tiny(20)
    randomize_batchnorm(model, 0)
    rng = np.random.default_rng(0)
    quantized = quantize_int8(model, [rng.random((1, 3, SIZE, SIZE), dtype=np.float32) for _ in range(3)])
    path = str(tmp_path_factory.mktemp("int8") / "int8.onnx")
    export_onnx(quantized, path, SIZE, output_names(model))
    return path


def _run(mod: tvm.IRModule, x: np.ndarray) -> list[np.ndarray]:
    vm = relax.VirtualMachine(tvm.compile(mod, target="llvm"), tvm.cpu())
    out = vm["main"](tvm.runtime.tensor(x))
    return [out.numpy()] if hasattr(out, "numpy") else [o.numpy() for o in out]


def test_export_is_qdq_with_int8_weights(int8_onnx):
    graph = onnx.load(int8_onnx).graph
    assert [o.name for o in graph.output] == ["p5", "p4"]
    ops = [node.op_type for node in graph.node]
    assert ops.count("Conv") == 21 and ops.count("QuantizeLinear") >= 20 and ops.count("DequantizeLinear") >= 41
    int8_kernels = [t for t in graph.initializer if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 4]
    assert len(int8_kernels) == 21  # one int8 weight tensor per conv


@pytest.mark.slow
def test_int8_model_runs_integer_convs_in_tvm_and_matches_onnxruntime(int8_onnx):
    net = from_onnx(int8_onnx)
    assert is_quantized(net.mod) and count_integer_conv2d(net.mod) == (0, 21)
    assert count_integer_conv2d(integer_conv2d()(net.mod)) == (21, 0)
    x = np.random.default_rng(1).random((1, 3, SIZE, SIZE), dtype=np.float32)
    want = net.reference([x])
    fused = optimize(net.mod)
    convs = [f for gv, f in fused.functions_items() if gv.name_hint.startswith("fused_conv2d")]
    assert len(convs) >= 18 and all("int8" in {str(p.dtype) for p in f.params} for f in convs)
    got = _run(fused, x)
    # an activation within float rounding of a step boundary may round the other way than in
    # onnxruntime (the exactness of the rewrite itself is the next test's)
    check = compare_outputs(["p5", "p4"], want, got, 1e-3, QUANTIZED_ATOL, "onnxruntime")
    assert check.ok, check.detail


def test_int8_graph_transposes_only_at_its_edges(int8_onnx):
    """NHWC inside, the caller's NCHW at the input and the outputs: no quantize, max-pool, concat or
    resize leaves a transpose between two layers, as each did before the QDQ passes."""
    mod = from_onnx(int8_onnx).mod
    assert inner_transposes(optimize(mod)) == []
    without = [make() for what, make in graph_passes()
               if not what.startswith(("run max-pools", "write the quantizes"))]
    assert len(inner_transposes(tvm.transform.Sequential(without)(mod))) >= 10


def test_rewrite_handles_zero_point_and_padding():
    """One QDQ conv with a non-zero activation zero point and padding 1: the padded border must
    hold the zero point (real 0), or the edges of the output go wrong."""
    rng = np.random.default_rng(2)
    w_q = rng.integers(-127, 128, (4, 3, 3, 3)).astype(np.int8)
    w_scale = rng.uniform(0.001, 0.01, 4).astype(np.float32)
    x_scale, x_zero = np.float32(0.02), np.uint8(37)
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((1, 3, 8, 8), "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            q = bb.emit(relax.op.quantize(x, relax.const(x_scale), relax.const(x_zero), axis=1, out_dtype="uint8"))
            dq = bb.emit(relax.op.dequantize(q, relax.const(x_scale), relax.const(x_zero), axis=1))
            w = bb.emit(relax.op.dequantize(relax.const(w_q), relax.const(w_scale), relax.const(np.zeros(4, np.int8)),
                                            axis=0))
            y = bb.emit_output(relax.op.nn.conv2d(dq, w, padding=1))
        bb.emit_func_output(y)
    mod = bb.get()
    assert count_integer_conv2d(integer_conv2d()(mod)) == (1, 0)
    data = rng.uniform(-0.7, 4.0, (1, 3, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(_run(integer_conv2d()(mod), data), _run(mod, data), rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> tuple[str, str]:
    """(a tiny synthetic VOC set, an untrained 64-px checkpoint on its classes)."""
    root = tmp_path_factory.mktemp("photo")
    data = str(root / "voc")
    make_synthetic_voc(data, images=8, seed=0, min_size=64, max_size=96)
    torch.manual_seed(0)
    model = YoloV4Tiny(len(SYNTHETIC_CLASSES))
    path = str(root / "last.pt")
    save_checkpoint(path, model, torch.optim.Adam(model.parameters()), 0, TrainConfig(input_size=SIZE),
                    SYNTHETIC_CLASSES)
    return data, path


def test_quantize_command_writes_both_models_and_their_map(checkpoint, tmp_path, capsys):
    data, path = checkpoint
    assert quantize_main(["--checkpoint", path, "--data", data, "--out", str(tmp_path), "--calibration", "2"]) == 0
    out = capsys.readouterr().out
    assert os.path.getsize(tmp_path / "int8.onnx") < os.path.getsize(tmp_path / "fp32.onnx") / 2
    assert "| fp32 | PyTorch |" in out and "| int8 | onnxruntime |" in out


def test_photo_command_draws_a_png(checkpoint, tmp_path, capsys):
    _, path = checkpoint
    out = str(tmp_path / "photo.png")
    assert photo_main(["--checkpoint", path, "--out", out, "--add-objects", "3", "--conf", "0.9"]) == 0
    assert Image.open(out).size == Image.open(DEFAULT_PHOTO).size
    assert "of 3 pasted objects found" in capsys.readouterr().out
    assert photo_main(["--checkpoint", path, "--image", str(tmp_path / "missing.jpg")]) == 2


def test_count_hits_needs_the_right_class_and_overlap():
    boxes = np.array([[0, 0, 10, 10], [20, 20, 40, 40]], np.float32)
    classes = np.array([1, 2])
    assert count_hits(Detections(boxes, np.ones(2), classes), boxes, classes) == 2
    assert count_hits(Detections(boxes, np.ones(2), classes[::-1].copy()), boxes, classes) == 0
    assert count_hits(Detections(boxes + 30, np.ones(2), classes), boxes, classes) == 0

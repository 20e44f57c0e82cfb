"""YOLOX-s: architecture and complexity, decoding, SimOTA, the loss, training end to end, int8
quantization and export, and the exported models in TVM."""

import contextlib
import importlib
import io
import math
import os
import tomllib
from collections import Counter

import numpy as np
import onnx
import pytest
import torch

from minansor.config import SearchConfig
from minansor.network.graph import inner_transposes, optimize
from minansor.network.int8 import count_integer_conv2d, integer_conv2d, is_quantized
from minansor.network.models import from_onnx, randomize_batchnorm
from minansor.network.run import build, check_against_reference, run
from yolo.data import SYNTHETIC_CLASSES, VOCDataset, letterbox, make_synthetic_voc
from yolo.detect import (decode, decode_anchor_free_boxes, encode_anchor_free_boxes, flatten_levels, postprocess,
                         to_input)
from yolo.evaluate import main as evaluate_main
from yolo.info import main as info_main
from yolo.photo import main as photo_main
from yolo.quantize import main as quantize_main, onnx_forward
from yolo.model import YoloV4Tiny, build_model, complexity, fuse_batchnorm, load_checkpoint, thop_flops
from yolo.networks import fp32_network
from yolo.train import OtherModelError, TrainConfig, save_checkpoint, train
from yolo.yolox import YoloX
from yolo.yolox_loss import centre_prior, dynamic_k, simota, yolox_loss

C = 20


def zero_outputs(size=64, batch=1, num_classes=C):
    return [torch.zeros(batch, 5 + num_classes, size // s, size // s) for s in (8, 16, 32)]


# --- architecture and complexity ---------------------------------------------------------------


def test_output_shapes_and_official_names():
    model = YoloX(C).eval()
    with torch.no_grad():
        outputs = model(torch.rand(2, 3, 96, 96))
    assert [tuple(o.shape) for o in outputs] == [(2, 25, 12, 12), (2, 25, 6, 6), (2, 25, 3, 3)]
    keys = set(model.state_dict())
    # the official YOLOX module tree, so that its released weights load by name
    for key in ("backbone.backbone.stem.conv.conv.weight", "backbone.backbone.dark2.1.m.0.conv2.bn.running_var",
                "backbone.backbone.dark5.1.conv2.conv.weight", "backbone.backbone.dark5.2.conv3.bn.bias",
                "backbone.lateral_conv0.conv.weight", "backbone.C3_n4.conv3.conv.weight",
                "head.stems.2.conv.weight", "head.cls_convs.0.1.bn.weight", "head.reg_preds.1.bias",
                "head.obj_preds.2.weight", "head.cls_preds.0.weight"):
        assert key in keys, key
    # YOLOX-s: depth 0.33 -> one bottleneck per CSP layer except dark3 and dark4 (three each)
    assert len(model.backbone.backbone.dark3[1].m) == 3 and len(model.backbone.C3_p4.m) == 1
    assert model.head.cls_preds[0].bias[0].item() == pytest.approx(-math.log(99))  # prior probability 0.01


def test_complexity_matches_published_figures():
    """YOLOX-s as published (80 classes, 640x640): 9.0 M parameters, 26.8 GFLOPs.

    The two FLOP conventions differ. complexity() counts 2 x conv multiply-adds and nothing else,
    darknet's BFLOPS, the convention of YOLOv4-tiny's published 6.81 GFLOPs (test_yolo_model).
    YOLOX's 26.8 is thop's count x 2: thop adds one op per output element of a conv with a bias and
    two per batch-norm element (eval mode). thop_flops() counts that way; the conv-only figure is
    0.12 G lower and would round to 26.7.
    """
    model = YoloX(80)
    size = complexity(model, 640)
    assert size.params == 8_968_255 and round(size.params / 1e6, 1) == 9.0
    assert size.gflops == pytest.approx(26.686, abs=1e-3)
    assert round(thop_flops(model, 640) / 1e9, 1) == 26.8


def test_info_prints_yolox_s_at_416_for_20_classes(capsys):
    info_main(["--model", "yolox-s"])
    out = capsys.readouterr().out
    assert "YOLOX-s, 20 classes, 416x416" in out and "params: 8,945,035" in out and "GFLOPs: 11.220" in out
    assert "layer" not in out  # the darknet table is YOLOv4-tiny's only


# --- decoding ------------------------------------------------------------------------------------


def test_encoded_boxes_decode_back():
    _, cells, strides = flatten_levels(zero_outputs())
    chosen = torch.tensor([0, 9, 63, 64, 70, 83])  # cells of all three levels
    boxes = torch.tensor([[1.0, 2, 9, 11], [3, 5, 40, 30], [50, 52, 63, 64], [0, 0, 64, 64], [10, 20, 30, 60],
                          [20, 25, 60, 62]])
    raw = encode_anchor_free_boxes(boxes, cells[chosen], strides[chosen])
    torch.testing.assert_close(decode_anchor_free_boxes(raw, cells[chosen], strides[chosen]), boxes)


def test_one_confident_cell_becomes_one_detection():
    """A box encoded at cell (x=2, y=1) of the stride-16 map, through the full decode + NMS path."""
    outputs = zero_outputs()
    for output in outputs:
        output[:, 4] = -10.0  # no object anywhere ...
    box = torch.tensor([[30.0, 12, 58, 44]])
    raw = encode_anchor_free_boxes(box, torch.tensor([[2.0, 1.0]]), torch.tensor([16.0]))
    outputs[1][0, :4, 1, 2] = raw[0]
    outputs[1][0, 4, 1, 2] = 10.0  # ... but here, of class 7
    outputs[1][0, 5 + 7, 1, 2] = 10.0
    boxes, objectness, _ = decode(outputs, C)
    assert boxes.shape == (1, 64 + 16 + 4, 4) and int(objectness[0].argmax()) == 64 + 1 * 4 + 2
    found = postprocess([o.numpy() for o in outputs], C, conf_threshold=0.5)[0]
    assert found.classes.tolist() == [7]
    assert found.boxes[0].tolist() == pytest.approx(box[0].tolist(), abs=1e-4)


def test_outputs_of_neither_layout_are_refused():
    with pytest.raises(ValueError, match="neither YOLOX's 25 nor YOLOv4-tiny's 75"):
        decode([torch.zeros(1, 30, 2, 2)], C)


# --- SimOTA -------------------------------------------------------------------------------------


def one_class_logits(*cls_logits):
    return torch.full((len(cls_logits),), 10.0), torch.tensor(cls_logits)[:, None]


def test_simota_takes_the_k_cheapest_proper_candidates():
    """One ground truth (0, 0, 32, 32) of the only class and six stride-8 cells:

    cell centre  in box  centre region (2.5 strides = 20 px of (16, 16))  predicted box IoU  class p
    a0 (12, 12)  yes     yes                                                1.0                 1
    a1 (20, 20)  yes     yes                                                0.8                 0.01
    a2 (28, 28)  yes     yes                                                0.5                 1
    a3 (34, 16)  no      yes: a candidate, at a prohibitive cost            0.6                 1
    a4 (44, 16)  no      no: not even a candidate, despite its perfect box  1.0                 1
    a5 (100,100) no      no                                                 0                   1
    Candidates' IoUs sum to 2.9, so k = 2. Costs (class BCE + 3 x -log IoU): a0 ~ 0; a1 2.30 +
    0.67 = 2.97; a2 0 + 2.08; a3 1.53 + 1e5. The two cheapest are a0 and a2: the class cost puts
    a1 behind a2 although its box is better.
    """
    truth = torch.tensor([[0.0, 0, 32, 32]])
    centres = torch.tensor([[12.0, 12], [20, 20], [28, 28], [34, 16], [44, 16], [100, 100]])
    strides = torch.full((6,), 8.0)
    boxes = torch.tensor([[0.0, 0, 32, 32], [0, 0, 32, 25.6], [0, 0, 32, 16], [0, 0, 32, 19.2], [0, 0, 32, 32],
                          [90, 90, 110, 110]])
    obj_logits, cls_logits = one_class_logits(10.0, math.log(0.01 / 0.99), 10.0, 10.0, 10.0, 10.0)

    in_box, in_centre = centre_prior(truth, centres, strides)
    assert in_box[0].tolist() == [True, True, True, False, False, False]
    assert in_centre[0].tolist() == [True, True, True, True, False, False]
    assert dynamic_k(torch.tensor([[1.0, 0.8, 0.5, 0.6]])).tolist() == [2]

    match = simota(boxes, obj_logits, cls_logits, centres, strides, truth, torch.tensor([0]))
    assert match.predictions.tolist() == [0, 2] and match.truths.tolist() == [0, 0]
    assert match.ious.tolist() == pytest.approx([1.0, 0.5])


def test_simota_gives_a_contested_prediction_to_the_cheaper_truth():
    """Truths A (0, 0, 32, 32) and B (4, 4, 36, 36); two cells inside both boxes and centre regions.

    a0 predicts exactly A: IoU 1 with A, 784 / 1264 = 0.62 with B. a1 predicts (20, 20, 36, 36):
    IoU 0.13 with A, 0.25 with B. k = 1 for both (IoU sums 1.13 and 0.87), and both take a0, their
    cheapest. A's cost there (~0) is below B's (3 x -log 0.62 = 1.43): a0 goes to A, and B is not
    given a second choice.
    """
    truths = torch.tensor([[0.0, 0, 32, 32], [4, 4, 36, 36]])
    centres = torch.tensor([[18.0, 18], [30, 30]])
    boxes = torch.tensor([[0.0, 0, 32, 32], [20, 20, 36, 36]])
    obj_logits, cls_logits = one_class_logits(10.0, 10.0)
    match = simota(boxes, obj_logits, cls_logits, centres, torch.full((2,), 8.0), truths, torch.tensor([0, 0]))
    assert match.predictions.tolist() == [0] and match.truths.tolist() == [0]


def test_simota_without_candidates_assigns_nothing():
    match = simota(torch.tensor([[0.0, 0, 8, 8]]), torch.zeros(1), torch.zeros(1, 1), torch.tensor([[4.0, 4]]),
                   torch.tensor([8.0]), torch.tensor([[200.0, 200, 240, 240]]), torch.tensor([0]))
    assert len(match.predictions) == 0 and len(match.truths) == 0


# --- loss ---------------------------------------------------------------------------------------


def test_loss_decreases_when_training_on_two_images():
    torch.manual_seed(0)
    model = YoloX(C)
    images = torch.rand(2, 3, 64, 64)
    targets = [(torch.tensor([[8.0, 10, 40, 44]]), torch.tensor([4])),
               (torch.tensor([[20.0, 16, 60, 58], [2, 2, 18, 22]]), torch.tensor([1, 7]))]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(20):
        loss, parts = yolox_loss(model(images), targets, C)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert np.isfinite(losses).all() and np.mean(losses[-3:]) < 0.75 * losses[0]
    assert set(parts) == {"box", "object", "class"}


def test_an_image_without_objects_only_has_object_loss():
    torch.manual_seed(0)
    outputs = [o.normal_() for o in zero_outputs()]
    loss, parts = yolox_loss(outputs, [(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))], C)
    assert parts["box"] == 0 and parts["class"] == 0 and parts["object"] > 0
    assert float(loss) == pytest.approx(parts["object"])


# --- training, checkpoints, evaluation -----------------------------------------------------------


def test_train_checkpoint_and_evaluate_yolox(tmp_path, capsys):
    data, out = str(tmp_path / "voc"), str(tmp_path / "run")
    make_synthetic_voc(data, images=10, seed=0, min_size=96, max_size=128)
    config = TrainConfig(model="yolox-s", input_size=64, unfrozen_epochs=1, unfrozen_batch=4)
    train(VOCDataset(data, "train"), config, out, VOCDataset(data, "val"), progress=False)
    model, size, _ = load_checkpoint(os.path.join(out, "last.pt"))
    assert isinstance(model, YoloX) and model.architecture == "yolox-s" and size == 64
    assert evaluate_main(["--data", data, "--checkpoint", os.path.join(out, "last.pt"), "--split", "test"]) == 0
    assert "mAP@0.5 on test" in capsys.readouterr().out
    with pytest.raises(OtherModelError, match="holds a yolox-s, not a yolov4-tiny"):
        train(VOCDataset(data, "train"), TrainConfig(input_size=64, unfrozen_epochs=2), out, progress=False)


def test_checkpoints_without_an_architecture_are_yolov4_tiny(tmp_path):
    """Checkpoints written before YOLOX joined do not name their model."""
    path = str(tmp_path / "old.pt")
    model = build_model("yolov4-tiny", 3)
    save_checkpoint(path, model, torch.optim.Adam(model.parameters()), 0, TrainConfig(), ("a", "b", "c"))
    state = torch.load(path, weights_only=False)
    del state["architecture"], state["config"]["model"]
    torch.save(state, path)
    loaded, _, classes = load_checkpoint(path)
    assert isinstance(loaded, YoloV4Tiny) and classes == ("a", "b", "c")


def test_photo_runs_a_yolox_checkpoint(tmp_path, capsys):
    torch.manual_seed(0)
    model = YoloX(len(SYNTHETIC_CLASSES))
    path, out = str(tmp_path / "last.pt"), str(tmp_path / "photo.png")
    save_checkpoint(path, model, torch.optim.Adam(model.parameters()), 0, TrainConfig(model="yolox-s", input_size=64),
                    SYNTHETIC_CLASSES)
    assert photo_main(["--checkpoint", path, "--out", out, "--add-objects", "2", "--conf", "0.9"]) == 0
    assert os.path.exists(out) and "of 2 pasted objects found" in capsys.readouterr().out


# --- int8 and export -----------------------------------------------------------------------------


def test_batch_norm_folds_into_every_conv():
    torch.manual_seed(0)
    model = YoloX(C).eval()
    randomize_batchnorm(model, 0)
    fused = fuse_batchnorm(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    assert all(m.bias is not None for m in fused.modules() if isinstance(m, torch.nn.Conv2d))
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        for want, got in zip(model(x), fused(x)):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def yolox_export(tmp_path_factory) -> tuple[str, str, np.ndarray]:
    """`python -m yolo.quantize` on an untrained 64-px YOLOX-s checkpoint with random BN statistics:
    (the folder of fp32.onnx and int8.onnx, what the command printed, a letterboxed test image)."""
    root = tmp_path_factory.mktemp("yolox-int8")
    data, path, out = str(root / "voc"), str(root / "last.pt"), str(root / "onnx")
    make_synthetic_voc(data, images=8, seed=0, min_size=64, max_size=96)
    torch.manual_seed(0)
    model = YoloX(len(SYNTHETIC_CLASSES))
    randomize_batchnorm(model, 0)
    save_checkpoint(path, model, torch.optim.Adam(model.parameters()), 0, TrainConfig(model="yolox-s", input_size=64),
                    SYNTHETIC_CLASSES)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert quantize_main(["--checkpoint", path, "--data", data, "--out", out, "--calibration", "2"]) == 0
    image = VOCDataset(data, "test")[0].image
    return out, printed.getvalue(), to_input(letterbox(image, np.zeros((0, 4), np.float32), 64)[0])


def test_quantize_exports_yolox_as_qdq_onnx_that_onnxruntime_runs(yolox_export):
    """Focus (slices and a concatenation), SiLU and the SPP max pools go through PT2E; every conv
    gets int8 weights, and the int8 model's outputs stay close to the fp32 export's."""
    folder, printed, x = yolox_export
    assert "| fp32 | PyTorch |" in printed and "| int8 | onnxruntime |" in printed
    fp32, int8 = (onnx.load(os.path.join(folder, f"{p}.onnx")).graph for p in ("fp32", "int8"))
    assert [o.name for o in fp32.output] == [o.name for o in int8.output] == ["p3", "p4", "p5"]
    fp32_ops, int8_ops = (Counter(node.op_type for node in g.node) for g in (fp32, int8))
    assert fp32_ops["Conv"] == int8_ops["Conv"] == 83 and "BatchNormalization" not in fp32_ops
    assert int8_ops["MaxPool"] == 3 and int8_ops["Slice"] >= 4 and int8_ops["Sigmoid"] == 74
    assert int8_ops["QuantizeLinear"] >= 83 and int8_ops["DequantizeLinear"] >= 2 * 83
    int8_kernels = [t for t in int8.initializer if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 4]
    assert len(int8_kernels) == 83
    want = onnx_forward(os.path.join(folder, "fp32.onnx"))(x)
    got = onnx_forward(os.path.join(folder, "int8.onnx"))(x)
    assert [o.shape for o in got] == [(1, 25, 8, 8), (1, 25, 4, 4), (1, 25, 2, 2)]
    for w, g in zip(want, got):
        assert np.abs(g - w).max() < 0.1 * np.abs(w).max()


# --- in TVM --------------------------------------------------------------------------------------


def test_yolox_s_is_a_builtin_model_of_tune_model():
    """pyproject.toml registers both precisions beside YOLOv4-tiny's (the installed metadata may
    predate them, so read the file)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "pyproject.toml"), "rb") as f:
        entries = tomllib.load(f)["project"]["entry-points"]["minansor.models"]
    assert {"yolov4-tiny", "yolov4-tiny-int8", "yolox-s", "yolox-s-int8"} <= set(entries)
    for name, target in entries.items():
        module, function = target.split(":")
        assert callable(getattr(importlib.import_module(module), function)), name


def _tvm_outputs(network, x: np.ndarray) -> list[np.ndarray]:
    return run(build(optimize(network.mod))[0], [x], repeats=1).outputs


@pytest.mark.slow
def test_exported_model_matches_pytorch_in_tvm():
    """The built-in yolox-s as tune-model imports it (torch.export), at 64 px: untuned TVM
    computes PyTorch's three maps."""
    network = fp32_network("yolox-s", seed=0, input_size=64)
    assert network.source == "pytorch" and network.inputs[0].shape == (1, 3, 64, 64)
    x = network.inputs[0].random(np.random.default_rng(0))
    got = _tvm_outputs(network, x)
    assert [o.shape for o in got] == [(1, 25, 8, 8), (1, 25, 4, 4), (1, 25, 2, 2)]
    check = check_against_reference(network, got, [x], SearchConfig())
    assert check.ok and check.max_abs_error < 1e-4, check.detail


@pytest.mark.slow
def test_int8_export_runs_integer_convs_in_tvm_and_matches_onnxruntime(yolox_export):
    folder, _, x = yolox_export
    network = from_onnx(os.path.join(folder, "int8.onnx"))
    assert is_quantized(network.mod) and count_integer_conv2d(network.mod) == (0, 83)
    assert count_integer_conv2d(integer_conv2d()(network.mod)) == (83, 0)
    # an activation within float rounding of a step boundary may round the other way than in
    # onnxruntime: the tolerance of quantized models
    fused = optimize(network.mod)
    # NHWC inside, NCHW only at the input and the three outputs: no transpose between two layers
    assert inner_transposes(fused) == []
    check = check_against_reference(network, run(build(fused)[0], [x], repeats=1).outputs, [x], SearchConfig())
    assert check.ok, check.detail

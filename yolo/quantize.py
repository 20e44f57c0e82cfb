"""Int8 post-training static quantization of a YOLOv4-tiny or YOLOX-s checkpoint, exported as QDQ ONNX.

    python -m yolo.quantize --checkpoint runs/yolo/last.pt --data data/synthetic-voc --out runs/yolo

PT2E quantization (torchao's `prepare_pt2e` / `convert_pt2e` with the X86 quantizer: uint8
activations per tensor, int8 weights per output channel, both static) calibrated on
`--calibration` letterboxed training images, then `torch.onnx.export(dynamo=True)` writes a QDQ
model. Batch norm is folded into the convolutions first, as deployment does. Both the fp32 and the
int8 ONNX files are written next to each other, and the mAP of fp32 (PyTorch) and int8
(onnxruntime) is measured on the same split. The ONNX outputs are named by level, ``p<k>`` for
stride 2^k, in the model's output order: YOLOv4-tiny ``p5, p4``, YOLOX ``p3, p4, p5``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import sys
import warnings

import numpy as np
import torch

from .data import VOCDataset, letterbox
from .detect import Forward, to_input
from .evaluate import evaluate, torch_forward
from .model import YoloV4Tiny, fuse_batchnorm, load_checkpoint
from .yolox import YoloX

INPUT_NAME = "images"


def output_names(model: YoloV4Tiny | YoloX) -> tuple[str, ...]:
    """The ONNX names of a model's head outputs, in forward order: ``p<k>`` for stride 2^k
    (YOLOv4-tiny: p5, p4, the 13x13 and 26x26 heads at 416x416; YOLOX: p3, p4, p5)."""
    return tuple(f"p{stride.bit_length() - 1}" for stride in model.strides)


@contextlib.contextmanager
def _quiet():
    """Exporters print progress lines and warnings about their own internals; keep the output ours."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torchao", "torch.utils._pytree")]
    levels = [log.level for log in loggers]
    for log in loggers:
        log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for log, level in zip(loggers, levels):
            log.setLevel(level)


def calibration_inputs(dataset: VOCDataset, count: int, input_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """`count` letterboxed images of `dataset`, drawn without replacement, as network inputs."""
    chosen = rng.choice(len(dataset), size=min(count, len(dataset)), replace=False)
    return [to_input(letterbox(dataset[int(i)].image, np.zeros((0, 4), np.float32), input_size)[0]) for i in chosen]


def quantize_int8(model: YoloV4Tiny | YoloX, calibration: list[np.ndarray]) -> torch.nn.Module:
    """The BN-folded model with int8 weights and uint8 activations, calibrated on `calibration`.

    The X86 quantizer quantizes the inputs and weights of every convolution and what max pools
    and concatenations pass on. In YOLOX the rest (SiLU, as sigmoid and multiply, the residual
    adds, the Focus slices, upsampling) computes in float between a DequantizeLinear and the next
    QuantizeLinear."""
    with _quiet():
        import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as x86
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

        quantizer = x86.X86InductorQuantizer().set_global(x86.get_default_x86_inductor_quantization_config())
        model = fuse_batchnorm(model).eval()
        graph = torch.export.export(model, (torch.from_numpy(calibration[0]),)).module()
        prepared = prepare_pt2e(graph, quantizer)
        with torch.no_grad():
            for x in calibration:
                prepared(torch.from_numpy(x))
        return convert_pt2e(prepared)


def export_onnx(module: torch.nn.Module, path: str, input_size: int, names: tuple[str, ...]) -> None:
    """A static-shape (1, 3, S, S) ONNX file with outputs `names` (:func:`output_names` of the
    model `module` is or was quantized from); QDQ nodes where `module` is quantized."""
    example = (torch.zeros(1, 3, input_size, input_size),)
    with _quiet():
        program = torch.onnx.export(module, example, dynamo=True, opset_version=18, input_names=[INPUT_NAME],
                                    output_names=list(names))
    program.save(path)


def export_fp32_and_int8(model: YoloV4Tiny | YoloX, calibration: list[np.ndarray], folder: str, input_size: int,
                        prefix: str = "") -> dict[str, str]:
    """Write the BN-folded fp32 model and its int8 QDQ quantization as ONNX files in `folder`
    (`<prefix>fp32.onnx`, `<prefix>int8.onnx`); returns {precision: path}."""
    os.makedirs(folder, exist_ok=True)
    paths = {p: os.path.join(folder, f"{prefix}{p}.onnx") for p in ("fp32", "int8")}
    names = output_names(model)
    export_onnx(fuse_batchnorm(model).eval(), paths["fp32"], input_size, names)
    export_onnx(quantize_int8(model, calibration), paths["int8"], input_size, names)
    return paths


def onnx_forward(path: str) -> Forward:
    import onnxruntime

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    return lambda batch: session.run(None, {INPUT_NAME: batch})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="a checkpoint written by python -m yolo.train")
    parser.add_argument("--data", required=True, help="a VOC-layout directory: calibration and evaluation images")
    parser.add_argument("--out", required=True, help="directory for fp32.onnx and int8.onnx")
    parser.add_argument("--calibration", type=int, default=32, help="calibration images (default 32)")
    parser.add_argument("--calibration-split", default="train", help="their image set (default train)")
    parser.add_argument("--split", default="test", help="image set for mAP (default test)")
    parser.add_argument("--no-eval", action="store_true", help="only write the ONNX files")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        model, input_size, _ = load_checkpoint(args.checkpoint)
        calibration_set = VOCDataset(args.data, args.calibration_split)
        test_set = None if args.no_eval else VOCDataset(args.data, args.split)
    except (OSError, KeyError, RuntimeError, ValueError) as err:
        print(f"yolo.quantize: error: {err}", file=sys.stderr)
        return 2
    calibration = calibration_inputs(calibration_set, args.calibration, input_size, np.random.default_rng(args.seed))
    paths = export_fp32_and_int8(model, calibration, args.out, input_size)
    for precision, path in paths.items():
        print(f"{precision}: {path} ({os.path.getsize(path) / 1e6:.1f} MB)")
    if test_set is None:
        return 0
    rows = []
    for label, runtime, forward in (("fp32", "PyTorch", torch_forward(model)),
                                    ("int8", "onnxruntime", onnx_forward(paths["int8"]))):
        all_point, eleven_point = evaluate(forward, test_set, input_size, model.num_classes)
        rows.append(f"| {label} | {runtime} | {all_point.map:.4f} | {eleven_point.map:.4f} |")
    print(f"mAP@0.5 on {args.split} ({len(test_set)} images), {args.calibration} calibration images:")
    print("| model | runtime | all-point | 11-point |\n|---|---|---|---|\n" + "\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

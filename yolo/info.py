"""Print a network's parameter count and GFLOPs, and YOLOv4-tiny's darknet layer table.

Usage: ``python -m yolo.info [--model yolov4-tiny|yolox-s] [--classes 20] [--size 416] [--cfg FILE]``.
GFLOPs are 2 x the multiply-adds of the convolutions (see :func:`yolo.model.conv_flops`). For
YOLOv4-tiny the table comes from the darknet cfg (the one generated for ``--classes`` unless
``--cfg`` is given), after checking that the cfg and the PyTorch model agree, so it doubles as a
quick sanity check of a cfg file; YOLOX-s has no darknet cfg, hence no table.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from yolo.darknet import LayerInfo, cfg_sections, check_cfg, describe_layers, parse_cfg
from yolo.model import ARCHITECTURES, DISPLAY_NAMES, YoloV4Tiny, build_model, complexity, thop_flops


def _shape(shape: tuple[int, int, int] | None) -> str:
    if shape is None:
        return ""
    channels, height, width = shape
    return f"{width}x{height}x{channels}"


def format_layer_table(layers: list[LayerInfo]) -> str:
    """Darknet-style table: one row per layer with shapes and per-conv GFLOPs."""
    rows = [f"{'layer':>5}  {'type':<13} {'detail':<20} {'input':>13}    {'output':>13}  {'GFLOPs':>7}"]
    for layer in layers:
        flops = f"{layer.flops / 1e9:7.3f}" if layer.flops else ""
        rows.append(
            f"{layer.index:>5}  {layer.kind:<13} {layer.detail:<20} {_shape(layer.input_shape):>13} -> "
            f"{_shape(layer.output_shape):>13}  {flops:>7}"
        )
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m yolo.info", description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=ARCHITECTURES, default="yolov4-tiny",
                        help="the network (default: yolov4-tiny)")
    parser.add_argument("--classes", type=int, default=20, help="number of object classes (default: 20, VOC)")
    parser.add_argument("--size", type=int, default=416, help="square input size in pixels (default: 416)")
    parser.add_argument("--cfg", help="darknet cfg to describe instead of the generated one (YOLOv4-tiny only)")
    args = parser.parse_args(argv)
    if args.size % 32:
        parser.error(f"--size must be a multiple of 32, got {args.size}")
    if args.classes < 1:
        parser.error(f"--classes must be positive, got {args.classes}")
    if args.cfg and args.model != "yolov4-tiny":
        parser.error(f"--cfg describes a darknet YOLOv4-tiny; {args.model} has no darknet cfg")

    model = build_model(args.model, args.classes)
    if isinstance(model, YoloV4Tiny):
        try:
            sections = parse_cfg(args.cfg) if args.cfg else cfg_sections(args.classes, args.size)
            check_cfg(model, sections)
            layers = describe_layers(sections, args.size)
        except (OSError, ValueError) as error:
            parser.error(str(error))
        print(format_layer_table(layers))
        print()
    size = complexity(model, args.size)

    print(f"{DISPLAY_NAMES[args.model]}, {args.classes} classes, {args.size}x{args.size} input")
    print(f"params: {size.params:,}")
    print(f"GFLOPs: {size.gflops:.3f} (2 x conv multiply-adds)")
    if not isinstance(model, YoloV4Tiny):
        print(f"GFLOPs as YOLOX reports them: {thop_flops(model, args.size) / 1e9:.3f} (thop, which also counts "
              "conv biases and batch norms)")


if __name__ == "__main__":
    main()

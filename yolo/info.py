"""Print YOLOv4-tiny's darknet layer table, parameter count and GFLOPs.

Usage: ``python -m yolo.info --classes 20 [--size 416] [--cfg FILE]``. The table comes from the
cfg (the one generated for ``--classes`` unless ``--cfg`` is given), after checking that the cfg
and the PyTorch model agree, so it doubles as a quick sanity check of a cfg file.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from yolo.darknet import LayerInfo, cfg_sections, check_cfg, describe_layers, parse_cfg
from yolo.model import YoloV4Tiny, complexity


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
    parser.add_argument("--classes", type=int, default=20, help="number of object classes (default: 20, VOC)")
    parser.add_argument("--size", type=int, default=416, help="square input size in pixels (default: 416)")
    parser.add_argument("--cfg", help="darknet cfg to describe instead of the generated one")
    args = parser.parse_args(argv)
    if args.size % 32:
        parser.error(f"--size must be a multiple of 32, got {args.size}")

    model = YoloV4Tiny(args.classes)
    try:
        sections = parse_cfg(args.cfg) if args.cfg else cfg_sections(args.classes, args.size)
        check_cfg(model, sections)
        layers = describe_layers(sections, args.size)
    except (OSError, ValueError) as error:
        parser.error(str(error))
    size = complexity(model, args.size)

    print(format_layer_table(layers))
    print()
    print(f"YOLOv4-tiny, {args.classes} classes, {args.size}x{args.size} input")
    print(f"params: {size.params:,}")
    print(f"GFLOPs: {size.gflops:.3f} (2 x conv multiply-adds)")


if __name__ == "__main__":
    main()

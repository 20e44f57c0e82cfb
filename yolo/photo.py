"""Detection on a real photograph, drawn to a PNG a person can look at.

    python -m yolo.photo --checkpoint runs/yolo/last.pt --out runs/yolo/photo.png

The default photograph is the portrait of Grace Hopper that ships with matplotlib. A detector
trained on the synthetic set knows its 20 shape classes, not people, so `--add-objects N` (default
6) first draws N synthetic objects onto the photo at random places: the picture then shows whether
the objects are found on a real, cluttered background, and the command counts the hits (right class,
IoU >= 0.5). Detections are drawn in their class colour with name and score; the pasted objects'
true boxes in thin white. `--onnx FILE` runs an exported model (e.g. int8.onnx of yolo.quantize)
in onnxruntime instead of the checkpoint in PyTorch.
"""

from __future__ import annotations

import argparse
import os
import sys

import matplotlib
import numpy as np
from PIL import Image, ImageDraw

from .data import SYNTHETIC_CLASSES, draw_random_objects
from .detect import detect_image
from .metrics import Detections, box_iou
from .model import load_checkpoint

DEFAULT_PHOTO = os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")
PALETTE = [tuple(int(255 * c) for c in matplotlib.colormaps["tab20"](i)[:3]) for i in range(20)]


def count_hits(detections: Detections, boxes: np.ndarray, classes: np.ndarray, iou_threshold: float = 0.5) -> int:
    """Ground-truth objects matched by a detection of the same class (each detection used once)."""
    if len(boxes) == 0 or len(detections.boxes) == 0:
        return 0
    iou = box_iou(boxes, detections.boxes)
    used: set[int] = set()
    hits = 0
    for t in range(len(boxes)):
        for d in np.argsort(-iou[t]):
            if iou[t, d] < iou_threshold:
                break
            if d not in used and detections.classes[d] == classes[t]:
                used.add(int(d))
                hits += 1
                break
    return hits


def draw_detections(image: Image.Image, detections: Detections, class_names: tuple[str, ...],
                    truth_boxes: np.ndarray) -> Image.Image:
    out = image.copy()
    draw = ImageDraw.Draw(out)
    for box in truth_boxes:
        draw.rectangle(tuple(float(v) for v in box), outline=(255, 255, 255), width=1)
    for box, score, cls in zip(detections.boxes, detections.scores, detections.classes):
        color = PALETTE[int(cls) % len(PALETTE)]
        x1, y1, x2, y2 = (float(v) for v in box)
        draw.rectangle((x1, y1, x2, y2), outline=color, width=3)
        label = f"{class_names[int(cls)]} {score:.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), label)
        text_y = y1 - bottom - 2 if y1 >= bottom + 2 else y1 + 2  # inside the box at the image's top edge
        draw.rectangle((x1, text_y, x1 + right + 2, text_y + bottom + 2), fill=color)
        draw.text((x1 + 1, text_y + 1), label, fill=(0, 0, 0))
    return out


def main(argv: list[str] | None = None) -> int:
    from .evaluate import torch_forward
    from .quantize import onnx_forward

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="a checkpoint written by python -m yolo.train")
    parser.add_argument("--image", default=DEFAULT_PHOTO, help="a photograph (default: grace_hopper.jpg of matplotlib)")
    parser.add_argument("--out", default="detections.png", help="the PNG to write (default detections.png)")
    parser.add_argument("--add-objects", type=int, default=6, metavar="N",
                        help="synthetic objects drawn onto the photo first (default 6; 0 for none)")
    parser.add_argument("--onnx", help="run this ONNX export in onnxruntime instead of the checkpoint")
    parser.add_argument("--conf", type=float, default=0.3, help="score threshold (default 0.3)")
    parser.add_argument("--nms-iou", type=float, default=0.45, help="NMS IoU threshold (default 0.45)")
    parser.add_argument("--seed", type=int, default=0, help="where the synthetic objects go")
    args = parser.parse_args(argv)
    try:
        model, input_size, names = load_checkpoint(args.checkpoint)
        photo = Image.open(args.image).convert("RGB")
        forward = onnx_forward(args.onnx) if args.onnx else torch_forward(model)
    except Exception as err:  # a missing or unreadable file of any of the three kinds
        print(f"yolo.photo: error: {str(err).splitlines()[0]}", file=sys.stderr)
        return 2
    if args.add_objects and names != SYNTHETIC_CLASSES:
        print("yolo.photo: error: --add-objects needs a checkpoint trained on the synthetic classes", file=sys.stderr)
        return 2
    objects = draw_random_objects(photo, args.add_objects, np.random.default_rng(args.seed), min_side=24)
    truth_boxes = np.array([box for _, box, _ in objects], np.float32).reshape(-1, 4)
    truth_classes = np.array([names.index(name) for name, _, _ in objects], np.int64)
    detections = detect_image(forward, np.asarray(photo), input_size, model.num_classes, args.conf, args.nms_iou)
    draw_detections(photo, detections, names, truth_boxes).save(args.out)
    for box, score, cls in zip(detections.boxes, detections.scores, detections.classes):
        print(f"{names[int(cls)]:>16} {score:.2f} at ({', '.join(f'{v:.0f}' for v in box)})")
    hits = count_hits(detections, truth_boxes, truth_classes)
    print(f"{len(detections.boxes)} detections; {hits} of {len(objects)} pasted objects found; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""VOC mAP@0.5 of a checkpoint (YOLOv4-tiny or YOLOX-s) on a split of a VOC-layout directory.

    python -m yolo.evaluate --data data/synthetic-voc --checkpoint runs/yolo/last.pt --split test

Predictions use the evaluation convention (confidence 0.001, NMS IoU 0.5) and are mapped back
from the letterboxed input to the original image pixels; both all-point and 11-point AP are
reported.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch
from tqdm import tqdm

from .data import VOCDataset
from .detect import Forward, detect_image
from .metrics import Detections, MapResult, mean_average_precision
from .model import load_checkpoint


def torch_forward(model: torch.nn.Module) -> Forward:
    model = model.eval()

    def forward(batch: np.ndarray) -> list[np.ndarray]:
        with torch.inference_mode():
            return [o.numpy() for o in model(torch.from_numpy(batch))]

    return forward


def predict(forward: Forward, dataset: VOCDataset, input_size: int, num_classes: int, conf_threshold: float = 0.001,
            nms_iou: float = 0.5, progress: bool = True) -> list[Detections]:
    """Detections for every image of `dataset`, in its original pixels."""
    return [detect_image(forward, dataset[i].image, input_size, num_classes, conf_threshold, nms_iou)
            for i in tqdm(range(len(dataset)), desc="predict", unit="image", disable=not progress, leave=False)]


def evaluate(forward: Forward, dataset: VOCDataset, input_size: int, num_classes: int,
             progress: bool = True) -> tuple[MapResult, MapResult]:
    """(all-point, 11-point) VOC mAP@0.5."""
    detections = predict(forward, dataset, input_size, num_classes, progress=progress)
    truths = [dataset[i].truth for i in range(len(dataset))]
    return (mean_average_precision(detections, truths, num_classes),
            mean_average_precision(detections, truths, num_classes, eleven_point=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="a VOC-layout directory (VOC2007 of a VOCdevkit works)")
    parser.add_argument("--checkpoint", required=True, help="a checkpoint written by python -m yolo.train")
    parser.add_argument("--split", default="test", help="image set to evaluate (default test)")
    args = parser.parse_args(argv)
    try:
        model, input_size, _ = load_checkpoint(args.checkpoint)
        dataset = VOCDataset(args.data, args.split)
    except (OSError, KeyError, RuntimeError, ValueError) as err:
        print(f"yolo.evaluate: error: {err}", file=sys.stderr)
        return 2
    all_point, eleven_point = evaluate(torch_forward(model), dataset, input_size, model.num_classes)
    for cls, ap in sorted(all_point.ap.items()):
        print(f"{dataset.classes[cls]:>20s}  AP {ap:.3f}  (11-point {eleven_point.ap[cls]:.3f})")
    print(f"mAP@0.5 on {args.split} ({len(dataset)} images): {all_point.map:.4f} all-point, "
          f"{eleven_point.map:.4f} 11-point")
    return 0


if __name__ == "__main__":
    sys.exit(main())

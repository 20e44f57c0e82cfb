"""Train YOLOv4-tiny or YOLOX-s with the reference recipe on a VOC-layout directory.

    python -m yolo.train --data data/synthetic-voc --synthetic 400 --out runs/yolo [--model yolox-s]

Both networks share the data pipeline, augmentations and schedules; each has its own loss
(yolo.loss for YOLOv4-tiny, yolo.yolox_loss with SimOTA for YOLOX-s). Two phases, each with its
own Adam optimizer (weight decay 5e-4) and cosine learning rate: the backbone frozen (its batch
norms too; for YOLOX-s backbone and neck, as the reference recipe), then everything. The study's
recipe starts from a pretrained backbone: --frozen-epochs 50 --frozen-batch 32 --frozen-lr 1e-3
--unfrozen-epochs 50 --unfrozen-batch 16 --unfrozen-lr 1e-4. Nothing pretrained can be fetched here, and freezing a
random backbone teaches nothing, so the defaults train everything from scratch at lr 1e-3.
Mosaic with probability 0.5, else letterbox + flip; HSV jitter always. A checkpoint is written after every
epoch (`OUT/last.pt`); running the same command again continues from it. With --synthetic N a
synthetic set of N images is generated in --data first if it is not there yet.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from .data import VOCDataset, augment, make_synthetic_voc
from .evaluate import evaluate, torch_forward
from .loss import yolo_loss
from .model import ARCHITECTURES, YoloV4Tiny, build_model
from .yolox import YoloX
from .yolox_loss import yolox_loss

Model = YoloV4Tiny | YoloX


class OtherModelError(ValueError):
    """OUT/last.pt holds another architecture than the one asked to train."""


@dataclass(frozen=True)
class TrainConfig:
    model: str = "yolov4-tiny"  # one of yolo.model.ARCHITECTURES
    input_size: int = 416
    frozen_epochs: int = 0
    unfrozen_epochs: int = 60
    frozen_batch: int = 16
    unfrozen_batch: int = 8
    frozen_lr: float = 1e-3
    unfrozen_lr: float = 1e-3
    min_lr_ratio: float = 0.01  # the cosine schedule ends at lr x this
    weight_decay: float = 5e-4
    mosaic_probability: float = 0.5
    label_smoothing: float = 0.01
    seed: int = 0

    @property
    def epochs(self) -> int:
        return self.frozen_epochs + self.unfrozen_epochs


def phase_of(epoch: int, config: TrainConfig) -> tuple[bool, int, int, float, int]:
    """(frozen, epoch within the phase, phase length, base lr, batch size) of an epoch."""
    if epoch < config.frozen_epochs:
        return True, epoch, config.frozen_epochs, config.frozen_lr, config.frozen_batch
    return False, epoch - config.frozen_epochs, config.unfrozen_epochs, config.unfrozen_lr, config.unfrozen_batch


def cosine_lr(base: float, step: int, total: int, min_ratio: float) -> float:
    return base * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * step / max(total, 1))))


def set_backbone_frozen(model: Model, frozen: bool) -> None:
    for part in model.frozen_parts():
        part.requires_grad_(not frozen)
        part.train(not frozen)  # frozen batch norms keep their statistics


def training_loss(model: Model):
    """The loss function of a model's architecture: (outputs, targets, num_classes, label_smoothing)
    -> (loss, parts)."""
    return yolo_loss if isinstance(model, YoloV4Tiny) else yolox_loss


def make_optimizer(model: Model, lr: float, config: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr,
                            weight_decay=config.weight_decay)


def batches(dataset: VOCDataset, batch_size: int, config: TrainConfig, rng: np.random.Generator):
    """One epoch of (images (B, 3, S, S), targets) in a random order, augmented."""
    order = rng.permutation(len(dataset))
    for start in range(0, len(order) - batch_size + 1 if len(order) >= batch_size else 1, batch_size):
        images, targets = [], []
        for index in order[start:start + batch_size]:
            extra = [dataset[int(i)] for i in rng.integers(0, len(dataset), 3)]
            image, boxes, classes = augment(dataset[int(index)], config.input_size, rng, extra,
                                            config.mosaic_probability)
            images.append(torch.from_numpy(image.transpose(2, 0, 1).copy()).float() / 255.0)
            targets.append((torch.from_numpy(boxes), torch.from_numpy(classes)))
        yield torch.stack(images), targets


def save_checkpoint(path: str, model: Model, optimizer: torch.optim.Optimizer, epoch: int,
                    config: TrainConfig, classes: tuple[str, ...]) -> None:
    tmp = path + ".tmp"
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
                "config": dataclasses.asdict(config), "classes": list(classes),
                "num_classes": model.num_classes, "architecture": model.architecture}, tmp)
    os.replace(tmp, path)  # a killed run never leaves a half-written checkpoint


def train(dataset: VOCDataset, config: TrainConfig, out_dir: str, val: VOCDataset | None = None,
          progress: bool = True) -> Model:
    """Train (or continue training from OUT/last.pt) and return the model."""
    os.makedirs(out_dir, exist_ok=True)
    last = os.path.join(out_dir, "last.pt")
    torch.manual_seed(config.seed)
    model = build_model(config.model, len(dataset.classes))
    loss_function = training_loss(model)
    state = torch.load(last, map_location="cpu", weights_only=False) if os.path.exists(last) else None
    held = state.get("architecture", YoloV4Tiny.architecture) if state else config.model  # old ones: v4-tiny
    if held != config.model:
        raise OtherModelError(f"{last} holds a {held}, not a {config.model}: choose another --out to train a new "
                              "model")
    start = state["epoch"] + 1 if state else 0
    if state:
        model.load_state_dict(state["model"])
    optimizer = None
    for epoch in range(start, config.epochs):
        frozen, phase_epoch, phase_length, base_lr, batch_size = phase_of(epoch, config)
        model.train()
        set_backbone_frozen(model, frozen)
        if optimizer is None or phase_epoch == 0:
            optimizer = make_optimizer(model, base_lr, config)
            if state and epoch == start and phase_of(state["epoch"], config)[0] == frozen:
                optimizer.load_state_dict(state["optimizer"])  # resumed inside the same phase
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(base_lr, phase_epoch, phase_length, config.min_lr_ratio)
        rng = np.random.default_rng([config.seed, epoch])
        steps = max(1, len(dataset) // batch_size)
        with tqdm(batches(dataset, batch_size, config, rng), total=steps, disable=not progress,
                  desc=f"epoch {epoch + 1}/{config.epochs} ({'frozen' if frozen else 'all'})", unit="batch") as bar:
            for images, targets in bar:
                loss, parts = loss_function(model(images), targets, model.num_classes, config.label_smoothing)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                loss = float(loss.detach())
                bar.set_postfix(loss=f"{loss:.2f}", **{k: f"{v:.2f}" for k, v in parts.items()})
        save_checkpoint(last, model, optimizer, epoch, config, dataset.classes)
        record = {"epoch": epoch, "loss": loss, **parts, "lr": optimizer.param_groups[0]["lr"]}
        if val is not None and ((epoch + 1) % 5 == 0 or epoch + 1 == config.epochs):
            record["val_map"] = evaluate(torch_forward(model), val, config.input_size, model.num_classes,
                                         progress=False)[0].map
        with open(os.path.join(out_dir, "history.jsonl"), "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
    return model.eval()


def main(argv: list[str] | None = None) -> int:
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/synthetic-voc", help="a VOC-layout directory (default "
                                                                     "data/synthetic-voc)")
    parser.add_argument("--synthetic", type=int, default=0, metavar="N",
                        help="generate a synthetic set of N images in --data if it has none")
    parser.add_argument("--split", default="train", help="training image set (default train); val is evaluated")
    parser.add_argument("--out", default="runs/yolo", help="checkpoints and history.jsonl (default runs/yolo)")
    for field in dataclasses.fields(TrainConfig):
        parser.add_argument("--" + field.name.replace("_", "-"), type=type(getattr(defaults, field.name)),
                            default=getattr(defaults, field.name), help=f"(default {getattr(defaults, field.name)})")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    config = TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)})
    if config.model not in ARCHITECTURES:
        parser.error(f"--model must be one of {', '.join(ARCHITECTURES)}, got {config.model!r}")
    if args.synthetic and not os.path.isdir(os.path.join(args.data, "Annotations")):
        make_synthetic_voc(args.data, images=args.synthetic, seed=config.seed)
    try:
        dataset = VOCDataset(args.data, args.split)
        val = VOCDataset(args.data, "val") if os.path.exists(os.path.join(args.data, "ImageSets", "Main",
                                                                           "val.txt")) else None
    except FileNotFoundError as err:
        print(f"yolo.train: error: {err}", file=sys.stderr)
        return 2
    try:
        train(dataset, config, args.out, val, progress=not args.no_progress)
    except OtherModelError as err:
        print(f"yolo.train: error: {err}", file=sys.stderr)
        return 2
    print(f"checkpoint: {os.path.join(args.out, 'last.pt')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The peer of ``src.tools.benchmark --peer torchvision``: torchvision's Mask R-CNN doing the same work, one step per
request, in its own process (torch and MindSpore are never loaded together).

    python -m src.tools.peer_torchvision --mode train|infer --size H W --batch B --arch JSON [--seed S]

Reads one line per request from stdin and answers each with one line: ``step`` runs one step and answers its
milliseconds; ``stages N`` times the step's stages (:mod:`src.tools.peer_torchvision_stages`), each once untimed then
N times, and answers a JSON object {stage: median ms}; anything else ends.

The model is torchvision's Mask R-CNN with random weights shaped like the benchmarked config
(:mod:`src.tools.peer_torchvision_model`: ResNet depth, frozen stages and BatchNorm, FPN, anchors, sampling, head
widths), images kept at H x W, the config's detections per image at inference (score threshold 0 so that the work
does not depend on the random scores), plus a MaskIoU head of the config's shape on the mask branch's RoI features
(the sampled positives when training, the detections at inference, as Mask Scoring R-CNN runs it), so that both sides
do the same work. A training step has 3 random instances per image, like the benchmark's own batches, and a learning
rate of 0: the update is computed and applied all the same, but the random weights stay put (with any positive rate
they diverge to NaN within a few steps, the NaN proposals are filtered out and later steps do much less work).
"""
import argparse
import json
import sys
import time
from typing import List, Optional

import numpy as np
import torch

from src.tools import peer_torchvision_stages
from src.tools.peer_torchvision_model import build_peer

INSTANCES = 3


def random_targets(batch: int, height: int, width: int, num_classes: int, rng: np.random.Generator) -> list:
    targets = []
    for _ in range(batch):
        boxes, masks = [], np.zeros((INSTANCES, height, width), np.uint8)
        for index in range(INSTANCES):
            x1, y1 = int(rng.integers(0, width // 2)), int(rng.integers(0, height // 2))
            x2, y2 = x1 + int(rng.integers(width // 8, width // 2)), y1 + int(rng.integers(height // 8, height // 2))
            boxes.append([x1, y1, x2, y2])
            masks[index, y1:y2, x1:x2] = 1
        targets.append({"boxes": torch.tensor(boxes, dtype=torch.float32),
                        "labels": torch.from_numpy(rng.integers(1, num_classes, INSTANCES)).long(),
                        "masks": torch.from_numpy(masks)})
    return targets


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("train", "infer"), required=True)
    parser.add_argument("--size", type=int, nargs=2, required=True)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--arch", required=True, help="the architecture, a JSON object (src.tools.benchmark)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    height, width = args.size
    model, mask_iou_head = build_peer(json.loads(args.arch), height, width)
    mask_features = {}
    model.roi_heads.mask_roi_pool.register_forward_hook(
        lambda module, inputs, output: mask_features.update(latest=output))

    def mask_iou() -> torch.Tensor:
        """The MaskIoU head on the RoI features of the mask branch just run (and random mask probabilities)."""
        return peer_torchvision_stages.mask_iou_on(mask_iou_head, mask_features["latest"])

    images = [torch.randn(3, height, width) for _ in range(args.batch if args.mode == "train" else 1)]
    if args.mode == "train":
        model.train()
        parameters = [p for p in list(model.parameters()) + list(mask_iou_head.parameters()) if p.requires_grad]
        optimizer = torch.optim.SGD(parameters, lr=0.0, momentum=0.9)
        targets = random_targets(args.batch, height, width, json.loads(args.arch)["num_classes"], rng)

        def forward() -> torch.Tensor:
            losses = model(images, targets)
            return sum(losses.values()) + mask_iou().square().mean()

        def step() -> None:
            loss = forward()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        def stage_times(steps: int) -> dict:
            return peer_torchvision_stages.train_stage_times(model, mask_iou_head, images, targets, steps, forward,
                                                             step)
    else:
        model.eval()

        def step() -> None:
            with torch.no_grad():
                model(images)
                mask_iou()

        def stage_times(steps: int) -> dict:
            return peer_torchvision_stages.infer_stage_times(model, mask_iou_head, images, steps)

    for line in sys.stdin:
        request = line.split()
        if request == ["step"]:
            start = time.perf_counter()
            step()
            print(f"{1000.0 * (time.perf_counter() - start):.3f}", flush=True)
        elif len(request) == 2 and request[0] == "stages":
            print(json.dumps(stage_times(int(request[1]))), flush=True)
        else:
            break
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Sanity check of the detector: train a config on a few fixed batches and report whether every loss falls.

Usage: ``python -m src.tools.overfit_check CONFIG --data DIR [--steps 300] [--num-batches 4] [--lr 0.01]
[--window 20] [--log-every 50] [--mode graph] [--key value ...]``. DIR is a train subset (model zoo or COCO
layout); the first ``num-batches`` batches of ``src.data.create_dataset`` are kept in memory and cycled. The steps
are the project's training steps (``TrainStep``: the config's optimiser, weight decay, gradient clipping, loss scale
and accumulation) at the constant learning rate ``--lr``. Prints, for each
loss, the mean of the first and of the last ``window`` steps and exits with status 1 if any of them did not fall;
every ``log-every`` steps it also prints the means of the last ``window`` steps, to show the course of each loss.

loss_bbox is averaged over all sampled RoIs, positives and negatives: while the RPN learns, the share of positive
RoIs grows (at first mostly the gt boxes themselves, whose targets are zero), so loss_bbox first rises, then falls.
"""
import argparse
import sys
import time
from typing import List, Optional, Tuple

import numpy as np
import mindspore as ms
from mindspore import Tensor

from src.blocks.ms_rcnn import MsRcnn
from src.data.pipeline import create_dataset
from src.model_utils.config import load_config
from src.network_define import LOSS_NAMES, TrainStep, build_optimizer


def _parse(argv: Optional[List[str]]) -> Tuple[argparse.Namespace, List[str]]:
    parser = argparse.ArgumentParser(description="Overfit a few batches and check that every loss falls.")
    parser.add_argument("config", help="YAML config file")
    parser.add_argument("--data", required=True, help="train subset folder")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--num-batches", type=int, default=4)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--window", type=int, default=20, help="steps averaged at the start and at the end")
    parser.add_argument("--log-every", type=int, default=50, help="steps between progress lines")
    parser.add_argument("--mode", choices=("graph", "pynative"), default="graph")
    return parser.parse_known_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    """Command line entry: trains on a few batches; returns 0 when every loss falls, 1 otherwise."""
    args, overrides = _parse(argv)
    if args.window * 2 > args.steps:
        raise ValueError(f"--window ({args.window}) must be at most half of --steps ({args.steps})")
    ms.set_context(mode=ms.GRAPH_MODE if args.mode == "graph" else ms.PYNATIVE_MODE, device_target="CPU")
    cfg = load_config(args.config, overrides)
    ms.set_seed(int(cfg.seed))
    dataset = create_dataset(cfg, args.data, mode="train")
    batches = [tuple(Tensor(column) for column in row)
               for _, row in zip(range(args.num_batches), dataset.create_tuple_iterator(output_numpy=True))]
    model = MsRcnn(cfg)
    model.set_train(True)
    trainer = TrainStep(model, build_optimizer(cfg, model.trainable_params(), np.full(args.steps, args.lr)), cfg)
    history = np.zeros((args.steps, len(LOSS_NAMES)))
    start = time.time()
    for step in range(args.steps):
        history[step] = trainer.step(batches[step % len(batches)], step).losses
        if step == 0:
            print(f"first step (compile included): {time.time() - start:.1f} s", flush=True)
            print("step  " + " ".join(f"{name:>13s}" for name in LOSS_NAMES), flush=True)
        if (step + 1) % args.log_every == 0:
            recent = history[max(step + 1 - args.window, 0):step + 1].mean(axis=0)
            print(f"{step + 1:<6d}" + " ".join(f"{value:>13.4f}" for value in recent), flush=True)
    print(f"{args.steps} steps in {time.time() - start:.1f} s on {len(batches)} batches of {cfg.batch_size}")
    first = history[:args.window].mean(axis=0)
    last = history[-args.window:].mean(axis=0)
    print(f"{'loss':<16s}{'first':>10s}{'last':>10s}")
    for name, first_value, last_value in zip(LOSS_NAMES, first, last):
        print(f"{name:<16s}{first_value:>10.4f}{last_value:>10.4f}")
    all_fell = bool(np.all(np.isfinite(history)) and np.all(last < first))
    print("every loss fell" if all_fell else "NOT every loss fell")
    return 0 if all_fell else 1


if __name__ == "__main__":
    sys.exit(main())

"""Speed and memory of a config with random weights, printed as ONE JSON line.

    python -m src.tools.benchmark CONFIG --mode train|infer --size H W [--batch B] [--steps N]
                                  [--peer torchvision] [--stages] [--exec_mode graph|pynative] [--key value ...]

train: milliseconds per training step (forward, backward, optimizer) on random images with random instances.
infer: milliseconds per image including pre-processing (resize, normalise, pad) and host post-processing (boxes back
to the image, mask pasting, RLE) with the box classifier zeroed and ``test_cfg.rcnn.score_thr`` 0 unless given: every
image keeps ``test_cfg.rcnn.max_per_img`` detections, as a trained model does, so the mask heads and the pasting do
the work they would (random weights otherwise leave about one detection). The first call (GRAPH compilation) is
reported separately as ``compile_s``; ``median_ms`` and ``min_ms`` are over the following ``--steps`` calls;
``peak_rss_mb`` is the process's maximum resident memory (host RAM, not device memory).

With ``--peer torchvision`` each step is followed by one step of torchvision's Mask R-CNN plus a MaskIoU head, shaped
like the config (:func:`peer_architecture`; a config whose ResNet is not 64 channels wide cannot be mirrored), on the
same work in another process (:mod:`src.tools.peer_torchvision`); ``peer_*`` are its numbers and ``ratio`` is ours /
peer of the median times.

With ``--stages``, ``stages_ms`` is {stage: median ms over ``--steps`` calls} (:mod:`src.tools.stage_timing`, each
stage its own graph fed with the previous stage's outputs) and ``stages_sum_ms`` their sum; in train mode the stages
are the forward ones, and ``stages_ms["backward_and_update"]`` is the median of (whole training step - whole forward
pass) over ``--steps`` pairs timed back to back (:func:`src.tools.stage_clock.time_backward`). Per-stage graphs lose
the cross-stage fusion of the whole network's graph, so ``stages_sum_ms`` is close to, not equal to, the fused step
time. With ``--peer torchvision`` too, ``peer_stages_ms`` and ``peer_stages_sum_ms`` are the same for torchvision
(:mod:`src.tools.peer_torchvision_stages`).
"""
import argparse
import importlib.util
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence

import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parents[2]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from src.model_utils.config import Config, load_config  # noqa: E402

TORCHVISION_BASE_CHANNELS = 64

if TYPE_CHECKING:
    from src.blocks.ms_rcnn import MsRcnn


def random_train_batch(cfg: Config, rng: np.random.Generator) -> list:
    """A train batch in the dataset layout with ``min(3, num_gts)`` random rectangular instances per image."""
    from mindspore import Tensor

    batch, height, width, num_gts = cfg.batch_size, cfg.img_height, cfg.img_width, cfg.num_gts
    img = rng.standard_normal((batch, 3, height, width)).astype(np.float32)
    meta = np.tile(np.array([height, width, height, width, 1.0, 1.0], np.float32), (batch, 1))
    boxes = np.zeros((batch, num_gts, 4), np.float32)
    labels = np.zeros((batch, num_gts), np.int32)
    valids = np.zeros((batch, num_gts), bool)
    masks = np.zeros((batch, num_gts, height // cfg.mask_divider, width // cfg.mask_divider), np.uint8)
    for image in range(batch):
        for index in range(min(3, num_gts)):
            x1, y1 = rng.integers(0, width // 2), rng.integers(0, height // 2)
            x2, y2 = x1 + rng.integers(width // 8, width // 2), y1 + rng.integers(height // 8, height // 2)
            boxes[image, index] = (x1, y1, x2, y2)
            labels[image, index] = rng.integers(1, cfg.num_classes)
            valids[image, index] = True
            divider = cfg.mask_divider
            masks[image, index, y1 // divider:y2 // divider, x1 // divider:x2 // divider] = 1
    return [Tensor(array) for array in (img, meta, boxes, labels, valids, masks)]


def peer_architecture(cfg: Config) -> dict:
    """What :func:`src.tools.peer_torchvision_model.build_peer` needs to shape torchvision's Mask R-CNN like
    ``cfg``."""
    rpn_sampler, rcnn_sampler = cfg.train_cfg.rpn.sampler, cfg.train_cfg.rcnn.sampler
    return {
        "num_classes": int(cfg.num_classes), "depth": int(cfg.backbone.depth),
        "num_stages": int(cfg.backbone.num_stages), "num_levels": int(cfg.neck.fpn.num_outs),
        "base_channels": int(cfg.backbone.base_channels), "frozen_stages": int(cfg.backbone.frozen_stages),
        "norm_eval": bool(cfg.backbone.norm_eval), "fpn_channels": int(cfg.neck.fpn.out_channels),
        "anchor_scales": list(cfg.rpn.anchor_generator.scales), "anchor_ratios": list(cfg.rpn.anchor_generator.ratios),
        "anchor_strides": list(cfg.rpn.anchor_generator.strides),
        "rpn_pre_train": int(cfg.train_cfg.rpn_proposal.nms_pre),
        "rpn_post_train": int(cfg.train_cfg.rpn_proposal.max_per_img), "rpn_pre_test": int(cfg.test_cfg.rpn.nms_pre),
        "rpn_post_test": int(cfg.test_cfg.rpn.max_per_img), "rpn_samples": int(rpn_sampler.num),
        "rpn_pos_fraction": float(rpn_sampler.pos_fraction), "rcnn_samples": int(rcnn_sampler.num),
        "rcnn_pos_fraction": float(rcnn_sampler.pos_fraction), "roi_size": int(cfg.roi.roi_layer.out_size),
        "mask_roi_size": int(cfg.mask_roi.roi_layer.out_size), "fc_channels": int(cfg.bbox_head.fc_out_channels),
        "mask_convs": int(cfg.mask_head.num_convs), "mask_channels": int(cfg.mask_head.conv_out_channels),
        "mask_iou_convs": int(cfg.mask_iou_head.num_convs),
        "mask_iou_channels": int(cfg.mask_iou_head.conv_out_channels), "mask_iou_fcs": int(cfg.mask_iou_head.num_fcs),
        "mask_iou_fc_channels": int(cfg.mask_iou_head.fc_out_channels),
        "detections": int(cfg.test_cfg.rcnn.max_per_img),
    }


class TorchvisionPeer:
    """torchvision's Mask R-CNN doing the same work in its own process (:mod:`src.tools.peer_torchvision`), one step
    per :meth:`step` call, so that the two are timed interleaved in one run."""

    def __init__(self, cfg: Config, mode: str) -> None:
        if importlib.util.find_spec("torch") is None or importlib.util.find_spec("torchvision") is None:
            raise RuntimeError("--peer torchvision needs torch and torchvision (pip install torch torchvision); "
                               "nothing else in this project uses them")
        if int(cfg.backbone.base_channels) != TORCHVISION_BASE_CHANNELS:
            raise RuntimeError(f"--peer torchvision: backbone.base_channels is {cfg.backbone.base_channels}, "
                               f"torchvision's ResNet has {TORCHVISION_BASE_CHANNELS}: the peer cannot mirror it")
        every_stage = list(range(cfg.backbone.num_stages))
        if list(cfg.backbone.out_indices) != every_stage:
            raise RuntimeError(f"--peer torchvision: backbone.out_indices is {list(cfg.backbone.out_indices)}, the "
                               f"peer's FPN takes every stage ({every_stage}): it cannot mirror it")
        batch = cfg.batch_size if mode == "train" else 1
        self.process = subprocess.Popen(
            [sys.executable, "-m", "src.tools.peer_torchvision", "--mode", mode, "--size", str(cfg.img_height),
             str(cfg.img_width), "--batch", str(batch), "--arch", json.dumps(peer_architecture(cfg)), "--seed",
             str(cfg.seed)], cwd=PROJECT_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def _ask(self, request: str) -> str:
        self.process.stdin.write(request + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        if not answer:
            raise RuntimeError(f"the torchvision peer stopped (exit code {self.process.wait()})")
        return answer

    def step(self) -> float:
        """Seconds of one peer step."""
        return float(self._ask("step")) / 1000.0

    def stages(self, steps: int) -> Dict[str, float]:
        """{stage: median ms over ``steps`` calls} of the peer's step."""
        return json.loads(self._ask(f"stages {steps}"))

    def close(self) -> None:
        self.process.stdin.write("quit\n")
        self.process.stdin.close()
        self.process.wait(timeout=60)


def equal_class_scores(model: "MsRcnn") -> None:
    """Zero the box classifier so that every class scores 1 / num_classes: random weights otherwise saturate the
    softmax and leave about one detection per image, far less work than a trained model's ``max_per_img``."""
    from mindspore import Tensor

    for parameter in model.bbox_head.fc_cls.get_parameters():
        parameter.set_data(Tensor(np.zeros(parameter.shape, np.float32)))


def summary(times: Sequence[float]) -> dict:
    """compile_s (the first call), median_ms and min_ms of the others."""
    steady = [1000.0 * value for value in times[1:]]
    return {"compile_s": round(times[0], 3), "median_ms": round(statistics.median(steady), 2),
            "min_ms": round(min(steady), 2)}


def stage_results(stages: Dict[str, float]) -> dict:
    """``stages_ms`` and ``stages_sum_ms`` (the sum of the forward stages, without ``backward_and_update``)."""
    forward_sum = round(sum(value for name, value in stages.items() if name != "backward_and_update"), 2)
    return {"stages_ms": stages, "stages_sum_ms": forward_sum}


def benchmark(cfg: Config, mode: str, steps: int, peer: Optional[str] = None, stages: bool = False) -> dict:
    """Run the benchmark (with ``peer`` 'torchvision', interleaved with the peer's steps; with ``stages``, then the
    per-stage times); returns the JSON-able result."""
    from src.eval_utils import detect_image, encode_mask
    from src.lr_schedule import get_lr
    from src.model_utils.device_adapter import init_env
    from src.network_define import TrainStep, build_detector, build_optimizer
    from src.tools import stage_timing

    init_env(cfg)
    model, infer_net = build_detector(cfg)
    rng = np.random.default_rng(cfg.seed)
    if mode == "train":
        optimizer = build_optimizer(cfg, model.trainable_params(), get_lr(cfg, steps + 1))
        trainer = TrainStep(model, optimizer, cfg)
        batch = random_train_batch(cfg, rng)

        def run(index: int) -> None:
            trainer.step(batch, index)

        def stage_times() -> Dict[str, float]:
            return stage_timing.train_stage_times(trainer, batch, steps)
    else:
        from src.data.transforms import TransformParams

        infer_net.set_train(False)
        equal_class_scores(model)
        params = TransformParams.from_config(cfg)
        image = rng.integers(0, 256, (cfg.img_height, cfg.img_width, 3), dtype=np.uint8)

        def run(index: int) -> None:
            for detection in detect_image(infer_net, image, params, cfg.test_cfg.rcnn.mask_thr_binary,
                                          cfg.test_cfg.rcnn.mask_paste):
                encode_mask(detection["mask"])

        def stage_times() -> Dict[str, float]:
            return stage_timing.infer_stage_times(infer_net, image, params, cfg.test_cfg.rcnn.mask_thr_binary,
                                                  cfg.test_cfg.rcnn.mask_paste, steps)
    peer_runner = TorchvisionPeer(cfg, mode) if peer == "torchvision" else None
    times, peer_times = [], []
    for index in range(steps + 1):
        start = time.perf_counter()
        run(index)
        times.append(time.perf_counter() - start)
        if peer_runner is not None:
            peer_times.append(peer_runner.step())
    result = {
        "mode": mode, "device_target": cfg.device_target, "exec_mode": cfg.mode,
        "size": [cfg.img_height, cfg.img_width], "batch": cfg.batch_size if mode == "train" else 1,
        "steps": steps, **summary(times),
    }
    if stages:
        result.update(stage_results(stage_times()))
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)
    if peer_runner is not None:
        peer_summary = summary(peer_times)
        result.update({f"peer_{key}": value for key, value in peer_summary.items()}, peer=peer,
                      ratio=round(result["median_ms"] / peer_summary["median_ms"], 3))
        if stages:
            peer_stages = stage_results(peer_runner.stages(steps))
            result.update({f"peer_{key}": value for key, value in peer_stages.items()})
        peer_runner.close()
    return result


def main(argv: Optional[List[str]] = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="config YAML")
    parser.add_argument("--mode", choices=("train", "infer"), required=True)
    parser.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), required=True, help="input height width")
    parser.add_argument("--batch", type=int, default=None, help="train batch size (default: the config's)")
    parser.add_argument("--steps", type=int, default=5, help="timed calls after the first (default 5)")
    parser.add_argument("--peer", choices=("torchvision",), default=None,
                        help="also time torchvision's Mask R-CNN (+ a MaskIoU head) on the same work, interleaved, "
                             "and print the ratio (needs torch and torchvision)")
    parser.add_argument("--stages", action="store_true",
                        help="also time each stage of the step on its own (and the peer's with --peer)")
    parser.add_argument("--exec_mode", choices=("graph", "pynative"), default=None,
                        help="MindSpore execution mode (the config key 'mode'; default: the config's)")
    args, overrides = parser.parse_known_args(argv)
    if args.steps < 1:
        parser.error("--steps must be >= 1")
    pairs = {"img_height": args.size[0], "img_width": args.size[1]}
    if args.batch is not None:
        pairs["batch_size"] = args.batch
    if args.exec_mode is not None:
        pairs["mode"] = args.exec_mode
    defaults = ["--test_cfg.rcnn.score_thr", "0"] if args.mode == "infer" else []
    cfg = load_config(args.config, defaults + overrides + [token for key, value in pairs.items()
                                                           for token in (f"--{key}", str(value))])
    try:
        print(json.dumps(benchmark(cfg, args.mode, args.steps, args.peer, args.stages)))
    except RuntimeError as error:
        print(f"benchmark: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

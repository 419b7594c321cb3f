"""Benchmark of MultiLevelRoIAlign on CPU: custom kernels vs MindSpore's ops.ROIAlign (through the atlas workaround).

Sizes are the detector's: FPN levels of a 1024 x 1024 image (strides 4, 8, 16, 32), C=256, batch 1, 512 and 1000
RoIs with sizes log-uniform in [16, 800] px (aspect 1:2..2:1, clipped to the image), assigned to levels by the
finest_scale=56 rule; 7x7 and 14x14 outputs; sampling_ratio 0 and 2. Forward and forward+backward are timed in jit
functions; the two implementations alternate every repeat so that load from other processes hits both alike.
The built-in op cannot do adaptive sampling (sampling_ratio=0), so those rows time the custom kernels only.

Run: python -m src.tools.bench_roi_align [--repeats R] [--rois 512 1000] [--out-sizes 7 14] [--sampling-ratios 0 2]
Prints one row per case with median times in ms and speedup = builtin time / custom time.
"""
import argparse
import statistics
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import mindspore as ms
from mindspore import Tensor

from src.blocks.roi_extractors.roi_align import MultiLevelRoIAlign, resolve_impl

IMAGE_SIZE = 1024
STRIDES = (4, 8, 16, 32)
CHANNELS = 256
FINEST_SCALE = 56


def make_rois(num_rois: int, seed: int) -> Dict[str, np.ndarray]:
    """RoIs [K, 5] (batch 0, x1, y1, x2, y2) and their FPN levels [K] int32."""
    rng = np.random.default_rng(seed)
    side = np.exp(rng.uniform(np.log(16), np.log(800), num_rois))
    aspect = np.exp(rng.uniform(np.log(0.5), np.log(2.0), num_rois))
    width, height = side * np.sqrt(aspect), side / np.sqrt(aspect)
    center_x, center_y = rng.uniform(0, IMAGE_SIZE, num_rois), rng.uniform(0, IMAGE_SIZE, num_rois)
    x1 = np.clip(center_x - width / 2, 0, IMAGE_SIZE)
    y1 = np.clip(center_y - height / 2, 0, IMAGE_SIZE)
    x2 = np.clip(center_x + width / 2, 0, IMAGE_SIZE)
    y2 = np.clip(center_y + height / 2, 0, IMAGE_SIZE)
    scale = np.sqrt((x2 - x1) * (y2 - y1))
    levels = np.clip(np.floor(np.log2(scale / FINEST_SCALE + 1e-6)), 0, len(STRIDES) - 1).astype(np.int32)
    rois = np.stack([np.zeros(num_rois), x1, y1, x2, y2], axis=1).astype(np.float32)
    return {"rois": rois, "levels": levels}


def make_step_functions(cell: MultiLevelRoIAlign, rois: Tensor, levels: Tensor,
                        grad_weights: Tensor) -> Tuple[Callable, Callable]:
    """jit forward and jit forward+backward of sum(output * grad_weights) w.r.t. all feature levels."""

    def forward(features: Tuple[Tensor, ...]) -> Tensor:
        return cell(features, rois, levels)

    def weighted_sum(feature_0: Tensor, feature_1: Tensor, feature_2: Tensor, feature_3: Tensor) -> Tensor:
        return (cell((feature_0, feature_1, feature_2, feature_3), rois, levels) * grad_weights).sum()

    return ms.jit(forward), ms.jit(ms.value_and_grad(weighted_sum, grad_position=(0, 1, 2, 3)))


def time_call(step: Callable[[], object]) -> float:
    """Milliseconds of one call of ``step``, waiting for every output tensor to be computed."""
    start = time.perf_counter()
    result = step()
    leaves = result if isinstance(result, (tuple, list)) else (result,)
    for leaf in leaves:
        for tensor in (leaf if isinstance(leaf, (tuple, list)) else (leaf,)):
            tensor.asnumpy()
    return (time.perf_counter() - start) * 1000.0


def run_case(features: Sequence[Tensor], num_rois: int, out_size: int, sampling_ratio: int, repeats: int) -> Dict:
    """Median fwd and fwd+bwd milliseconds over ``repeats`` runs: {impl: {"fwd": ms, "fwd+bwd": ms}}."""
    data = make_rois(num_rois, seed=num_rois)
    rois, levels = Tensor(data["rois"]), Tensor(data["levels"])
    grad_weights = Tensor(np.ones((num_rois, CHANNELS, out_size, out_size), np.float32))
    impls = ["custom"] + (["builtin"] if sampling_ratio > 0 else [])
    steps = {}
    for impl in impls:
        cell = MultiLevelRoIAlign(out_size, STRIDES, sampling_ratio, False, impl=impl)
        forward, forward_backward = make_step_functions(cell, rois, levels, grad_weights)
        steps[impl] = {"fwd": lambda f=forward: f(tuple(features)),
                       "fwd+bwd": lambda f=forward_backward: f(*features)}
        for step in steps[impl].values():
            time_call(step)
    times: Dict[str, Dict[str, List[float]]] = {impl: {"fwd": [], "fwd+bwd": []} for impl in impls}
    for _ in range(repeats):
        for kind in ("fwd", "fwd+bwd"):
            for impl in impls:
                times[impl][kind].append(time_call(steps[impl][kind]))
    return {impl: {kind: statistics.median(values) for kind, values in per_kind.items()}
            for impl, per_kind in times.items()}


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Command line entry: times every (RoI count, output size, sampling ratio) case and prints a table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per case and implementation")
    parser.add_argument("--rois", type=int, nargs="+", default=[512, 1000], help="RoI counts")
    parser.add_argument("--out-sizes", type=int, nargs="+", default=[7, 14], help="output sides")
    parser.add_argument("--sampling-ratios", type=int, nargs="+", default=[0, 2], help="sampling ratios")
    args = parser.parse_args(argv)

    ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")
    resolve_impl("custom")
    rng = np.random.default_rng(0)
    features = [Tensor(rng.standard_normal((1, CHANNELS, IMAGE_SIZE // stride, IMAGE_SIZE // stride))
                       .astype(np.float32)) for stride in STRIDES]
    print(f"MultiLevelRoIAlign on CPU, C={CHANNELS}, image {IMAGE_SIZE}x{IMAGE_SIZE}, strides {STRIDES}, "
          f"median of {args.repeats} interleaved repeats (ms)")
    header = (f"{'rois':>5} {'out':>4} {'sr':>3} | {'custom fwd':>10} {'builtin fwd':>11} {'speedup':>7} | "
              f"{'custom f+b':>10} {'builtin f+b':>11} {'speedup':>7}")
    print(header)
    print("-" * len(header))
    for num_rois in args.rois:
        for out_size in args.out_sizes:
            for sampling_ratio in args.sampling_ratios:
                result = run_case(features, num_rois, out_size, sampling_ratio, args.repeats)
                cells = []
                for kind in ("fwd", "fwd+bwd"):
                    custom = result["custom"][kind]
                    if "builtin" in result:
                        builtin = result["builtin"][kind]
                        cells.append(f"{custom:10.1f} {builtin:11.1f} {builtin / custom:7.2f}")
                    else:
                        cells.append(f"{custom:10.1f} {'n/a':>11} {'n/a':>7}")
                print(f"{num_rois:5d} {out_size:4d} {sampling_ratio:3d} | {cells[0]} | {cells[1]}", flush=True)


if __name__ == "__main__":
    main()

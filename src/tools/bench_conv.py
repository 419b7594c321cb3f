"""Benchmark of one 3x3 convolution on CPU: MindSpore's Conv2D and the project's own kernels (``src/blocks/conv``)
on 1 and 2 cores against torch with 1 and 2 threads.

Where the damage model's training step went (MindSpore's profiler): convolutions forward and backward were more
than half of it. This tool tells whether they use the machine's cores: each case is a 3x3, stride-1, bias-free
convolution with C in and C out channels on a batch [N, C, H, W] (defaults: the damage config's three backbone stages
on its 128 x 128 crops, batch 8), timed as forward alone and as forward + backward (gradients of the input and the
weight), in GRAPH mode (``mindspore.jit``). Each MindSpore setting runs in a process of its own, limited to its
number of cores (CPU affinity; for the built-in op also MindSpore's kernel thread count, which can only be set
before its first kernel runs); torch (optional: ``pip install torch``) is timed in this one.

Run: python -m src.tools.bench_conv [--threads 1 2] [--shapes 8x64x32 8x128x16 8x256x8] [--repeats 10] [--no-peer]
Prints one row per implementation, thread count and shape with median times in ms: "ms-builtin" (MindSpore's
Conv2D), "ms-own" (the own kernels, when built) and "torch".
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np

Shape = Tuple[int, int, int]
REPO_ROOT = Path(__file__).resolve().parents[2]


def parse_shape(text: str) -> Shape:
    """'NxCxS' -> (N, C, S): batch, channels, side of a square feature map."""
    try:
        batch, channels, side = (int(value) for value in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"shape '{text}': expected NxCxS, e.g. 8x64x32") from None
    if min(batch, channels, side) < 1:
        raise argparse.ArgumentTypeError(f"shape '{text}': every value must be >= 1")
    return batch, channels, side


def median_ms(function: Callable[[], None], repeats: int) -> float:
    """Median wall time of ``function`` in ms after two warm-up calls."""
    for _ in range(2):
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def time_mindspore(threads: int, impl: str, shapes: Sequence[Shape], repeats: int) -> List[Dict[str, float]]:
    """Times every shape with ``impl`` ("builtin" or "custom") limited to the first ``threads`` cores of this process
    (and MindSpore to as many kernel threads)."""
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:threads])
    import mindspore as ms
    from mindspore import Tensor

    from src.blocks.conv import Conv2d

    ms.device_context.cpu.op_tuning.threads_num(threads)
    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_device("CPU")
    rows = []
    for batch, channels, side in shapes:
        conv = Conv2d(channels, channels, 3, pad_mode="pad", padding=1, has_bias=False, impl=impl)
        inputs = Tensor(np.random.default_rng(0).random((batch, channels, side, side), np.float32))

        def forward(x):
            return conv(x)

        def loss(x):
            return conv(x).sum()

        forward_jit = ms.jit(forward)
        backward_jit = ms.jit(ms.value_and_grad(loss, 0, conv.trainable_params()))
        rows.append({"forward_ms": median_ms(lambda: forward_jit(inputs).asnumpy(), repeats),
                     "forward_backward_ms": median_ms(lambda: backward_jit(inputs)[1][0].asnumpy(), repeats)})
    return rows


def time_torch(threads: int, shapes: Sequence[Shape], repeats: int) -> List[Dict[str, float]]:
    """The same cases with torch limited to ``threads`` intra-op threads."""
    import torch

    torch.set_num_threads(threads)
    rows = []
    for batch, channels, side in shapes:
        conv = torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        inputs = torch.from_numpy(np.random.default_rng(0).random((batch, channels, side, side), np.float32))
        inputs.requires_grad_(True)

        def forward():
            with torch.no_grad():
                conv(inputs)

        def forward_backward():
            conv(inputs).sum().backward()

        rows.append({"forward_ms": median_ms(forward, repeats),
                     "forward_backward_ms": median_ms(forward_backward, repeats)})
    return rows


def run_mindspore_worker(threads: int, impl: str, shapes: Sequence[Shape], repeats: int) -> List[Dict[str, float]]:
    """Runs :func:`time_mindspore` in a fresh process and returns its rows."""
    command = [sys.executable, "-m", "src.tools.bench_conv", "--worker", str(threads), "--impl", impl,
               "--repeats", str(repeats), "--shapes", *[f"{b}x{c}x{s}" for b, c, s in shapes]]
    result = subprocess.run(command, capture_output=True, text=True, check=False, cwd=REPO_ROOT)
    if result.returncode != 0:
        raise RuntimeError(f"MindSpore worker ({impl}, {threads} thread(s)) failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: Sequence[str] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts to compare")
    parser.add_argument("--shapes", type=parse_shape, nargs="+",
                        default=[(8, 64, 32), (8, 128, 16), (8, 256, 8)], help="NxCxS cases")
    parser.add_argument("--repeats", type=int, default=10, help="timed repeats per case")
    parser.add_argument("--no-peer", action="store_true", help="skip torch")
    parser.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--impl", default="builtin", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(time_mindspore(args.worker, args.impl, args.shapes, args.repeats)))
        return
    from src.blocks.conv.conv2d import LIBRARY

    impls = ["builtin"] + (["custom"] if LIBRARY.is_file() else [])
    if not LIBRARY.is_file():
        print(f"{LIBRARY} not built (bash scripts/build_custom.sh): no ms-own rows")
    results = {(f"ms-{'own' if impl == 'custom' else impl}", threads):
               run_mindspore_worker(threads, impl, args.shapes, args.repeats)
               for impl in impls for threads in args.threads}
    if not args.no_peer:
        try:
            results.update({("torch", threads): time_torch(threads, args.shapes, args.repeats)
                            for threads in args.threads})
        except ImportError:
            print("torch is not installed: MindSpore rows only (pip install torch for the peer rows)")
    print(f"{'impl':>10} {'threads':>7} {'shape NxCxS':>12} | {'forward ms':>10} {'fwd+bwd ms':>10}")
    print("-" * 58)
    for (framework, threads), rows in results.items():
        for (batch, channels, side), row in zip(args.shapes, rows):
            print(f"{framework:>10} {threads:>7} {f'{batch}x{channels}x{side}':>12} | "
                  f"{row['forward_ms']:>10.2f} {row['forward_backward_ms']:>10.2f}")


if __name__ == "__main__":
    main()

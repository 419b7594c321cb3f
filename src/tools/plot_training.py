"""Training curves of an experiment folder as PNGs.

    python src/tools/plot_training.py EXPERIMENT_DIR [--out DIR]

Reads ``losses.csv`` (one row per log line) and ``metrics.csv`` (one row per epoch) written by train.py and writes
``losses.png`` (each loss component and the total vs global step, log scale), ``lr.png`` (learning rate vs step) and
``map.png`` (bbox and segm mAP vs epoch, when evaluated) into ``--out`` (default: EXPERIMENT_DIR/plots).
After a resume, the last row logged for a global step wins.
"""
import argparse
import sys
from pathlib import Path
from typing import List, Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parents[2]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from src.network_define import LOSS_NAMES  # noqa: E402


def _save(figure: plt.Figure, path: Path) -> Path:
    """Lay out, write ``figure`` to ``path`` (PNG, 100 dpi), close it; returns ``path``."""
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def plot_experiment(experiment_dir: Path, out_dir: Optional[Path] = None) -> List[Path]:
    """Write the PNG curves of ``experiment_dir``; returns their paths. FileNotFoundError without losses.csv."""
    experiment_dir = Path(experiment_dir)
    out_dir = Path(out_dir) if out_dir is not None else experiment_dir / "plots"
    losses_path = experiment_dir / "losses.csv"
    if not losses_path.is_file():
        raise FileNotFoundError(f"{losses_path}: no losses file; is {experiment_dir} a training experiment folder?")
    out_dir.mkdir(parents=True, exist_ok=True)
    losses = pd.read_csv(losses_path).drop_duplicates("global_step", keep="last").sort_values("global_step")
    written = []

    figure, axis = plt.subplots(figsize=(9, 5))
    for name in (*LOSS_NAMES, "loss"):
        axis.plot(losses["global_step"], losses[name], label=name, linewidth=2.0 if name == "loss" else 1.0)
    axis.set_xlabel("global step")
    axis.set_ylabel("loss (mean over the log interval)")
    axis.set_yscale("log")
    axis.grid(True, alpha=0.3)
    axis.legend()
    written.append(_save(figure, out_dir / "losses.png"))

    figure, axis = plt.subplots(figsize=(9, 3))
    axis.plot(losses["global_step"], losses["lr"])
    axis.set_xlabel("global step")
    axis.set_ylabel("learning rate")
    axis.grid(True, alpha=0.3)
    written.append(_save(figure, out_dir / "lr.png"))

    metrics_path = experiment_dir / "metrics.csv"
    if metrics_path.is_file():
        metrics = pd.read_csv(metrics_path).drop_duplicates("epoch", keep="last").dropna(subset=["seg_mAP"])
        if len(metrics):
            figure, axis = plt.subplots(figsize=(9, 4))
            axis.plot(metrics["epoch"], metrics["bbox_mAP"], marker="o", label="bbox mAP@[.5:.95]")
            axis.plot(metrics["epoch"], metrics["seg_mAP"], marker="o", label="segm mAP@[.5:.95]")
            axis.set_xlabel("epoch")
            axis.set_ylabel("mAP")
            axis.grid(True, alpha=0.3)
            axis.legend()
            written.append(_save(figure, out_dir / "map.png"))
    return written


def main(argv: Optional[List[str]] = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description="Plot the training curves of an experiment folder")
    parser.add_argument("experiment_dir", type=Path, help="folder written by train.py")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default EXPERIMENT_DIR/plots)")
    args = parser.parse_args(argv)
    try:
        paths = plot_experiment(args.experiment_dir, args.out)
    except FileNotFoundError as error:
        parser.error(str(error))
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

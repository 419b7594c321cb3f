"""Train the demo recipes on several generated datasets and training seeds, and report whether training stayed stable.

    python -m src.tools.stability_sweep --out DIR [--data-seeds 0 1 2] [--train-seeds 42 7] [--num-images 300]
        [--configs configs/demo_parts_cpu.yaml:parts:6 configs/demo_damage_cpu.yaml:damage:10]

Each ``--configs`` entry is ``CONFIG:TASK:EPOCHS`` (TASK is the dataset folder: parts or damage; EPOCHS shortens the
schedule). For every data seed the synthetic car-damage set is generated into ``DIR/data-<seed>`` (kept between
runs), then every config is trained with every training seed by ``train.py`` (evaluation after the last epoch only).
Per run the table gives the validation segm and bbox mAP, the steps the divergence guard rejected (with how many had a
non-finite loss) and its rollbacks, and the minutes taken; it is printed and written to ``DIR/stability.csv``. Exit
code 1 when a run failed or diverged for good.
"""
import argparse
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import pandas as pd

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIGS = ["configs/demo_parts_cpu.yaml:parts:6", "configs/demo_damage_cpu.yaml:damage:10"]


def generate(data_dir: Path, seed: int, num_images: int) -> None:
    """The synthetic set of ``seed`` in ``data_dir`` unless already there."""
    if (data_dir / "claims.csv").is_file():
        return
    subprocess.run([sys.executable, "-m", "src.tools.make_synthetic_car_damage", "--out", str(data_dir), "--seed",
                    str(seed), "--num-images", str(num_images)], cwd=PROJECT_ROOT, check=True)


def read_run(experiment: Path) -> Dict[str, object]:
    """segm/bbox mAP of the last epoch and the guard's counts, from an experiment folder."""
    metrics = pd.read_csv(experiment / "metrics.csv")
    log = (experiment / "train.log").read_text()
    return {"segm_mAP": float(metrics["seg_mAP"].iloc[-1]), "bbox_mAP": float(metrics["bbox_mAP"].iloc[-1]),
            "rejected": len(re.findall(r"step rejected, nothing updated", log)),
            "non_finite": len(re.findall(r"is not finite; step rejected", log)),
            "rollbacks": len(re.findall(r"rolled back to", log))}


def train_once(config: str, data: Path, seed: int, epochs: int, out: Path) -> Dict[str, object]:
    """One train.py run; its results (``failed`` set when it did not finish)."""
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "train.py", "--config_path", config, "--train_dataset", str(data / "train"),
         "--val_dataset", str(data / "validation"), "--train_outputs", str(out), "--seed", str(seed),
         "--epoch_size", str(epochs), "--eval_every", str(epochs)],
        cwd=PROJECT_ROOT, capture_output=True, text=True)
    row: Dict[str, object] = {"minutes": round((time.perf_counter() - start) / 60.0, 1),
                              "failed": "" if result.returncode == 0 else result.stderr.strip()[-300:]}
    experiments = sorted(out.iterdir()) if out.is_dir() else []
    if experiments and (experiments[-1] / "metrics.csv").is_file():
        row.update(read_run(experiments[-1]))
    return row


def main(argv: Optional[List[str]] = None) -> int:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the data sets, runs and stability.csv")
    parser.add_argument("--data-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--train-seeds", type=int, nargs="+", default=[42, 7])
    parser.add_argument("--num-images", type=int, default=300)
    parser.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS, help="CONFIG:TASK:EPOCHS entries")
    args = parser.parse_args(argv)
    runs = []
    for entry in args.configs:
        config, task, epochs = entry.rsplit(":", 2)
        runs.append((config, task, int(epochs)))
    rows = []
    for data_seed in args.data_seeds:
        data_dir = args.out.resolve() / f"data-{data_seed}"
        generate(data_dir, data_seed, args.num_images)
        for config, task, epochs in runs:
            for train_seed in args.train_seeds:
                name = f"{Path(config).stem}-data{data_seed}-seed{train_seed}"
                row = {"config": Path(config).stem, "data_seed": data_seed, "train_seed": train_seed,
                       "epochs": epochs, **train_once(config, data_dir / task, train_seed, epochs,
                                                      args.out.resolve() / "runs" / name)}
                rows.append(row)
                print(", ".join(f"{key}={value}" for key, value in row.items()), flush=True)
                pd.DataFrame(rows).to_csv(args.out / "stability.csv", index=False)
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))
    return 1 if (table["failed"] != "").any() else 0


if __name__ == "__main__":
    sys.exit(main())

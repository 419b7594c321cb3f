"""One training step of the stand-in detector on a fixed global batch of 2 images, written to OUT/step-<mode>.npz.

    msrun --worker_num=2 --local_worker_num=2 ... python tests/helpers/distributed_step.py OUT      (2 processes)
    python tests/helpers/distributed_step.py OUT --single                                            (1 process)

With 2 processes each takes one image of the batch (rank r: image r) and the gradients are averaged by the project's
training step; alone, the process takes both images. Rank 0 (or the single process) saves the updated weights and
the total loss; every process also writes OUT/rank-<r>-<mode>.txt, to show which processes ran.
"""
import sys
from pathlib import Path

import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(PROJECT_ROOT))

import src  # noqa: E402,F401  sets MindSpore's log level before MindSpore is imported
from mindspore import Tensor  # noqa: E402

from src.model_utils.config import load_config  # noqa: E402
from src.model_utils.device_adapter import init_env  # noqa: E402
from src.network_define import TrainStep, build_optimizer  # noqa: E402
from tests.helpers.toy_detector import ToyDetector  # noqa: E402


def global_batch(cfg) -> list:
    """Two images with 1 and 3 valid gt slots (the stand-in regresses that share)."""
    rng = np.random.default_rng(0)
    g, h, w = cfg.num_gts, cfg.img_height, cfg.img_width
    valids = np.zeros((2, g), bool)
    valids[0, :1], valids[1, :3] = True, True
    return [rng.standard_normal((2, 3, h, w)).astype(np.float32),
            np.tile(np.array([h, w, h, w, 1, 1], np.float32), (2, 1)), np.zeros((2, g, 4), np.float32),
            np.ones((2, g), np.int32), valids, np.zeros((2, g, h // 2, w // 2), np.uint8)]


def main(out: Path, single: bool) -> None:
    cfg = load_config(PROJECT_ROOT / "configs" / "tiny_parts.yaml",
                      ["--img_width", "64", "--img_height", "64", "--run_distribute", str(int(not single)),
                       "--loss_scale", "1", "--weight_decay", "0", "--batch_size", "2" if single else "1"])
    init_env(cfg)
    model = ToyDetector(cfg)
    trainer = TrainStep(model, build_optimizer(cfg, model.trainable_params(), np.full(4, 0.5)), cfg)
    batch = global_batch(cfg)
    mine = batch if single else [column[cfg.rank_id:cfg.rank_id + 1] for column in batch]
    result = trainer.step([Tensor(column) for column in mine], 0)
    mode = "single" if single else "distributed"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"rank-{cfg.rank_id}-{mode}.txt").write_text(f"{cfg.rank_id} of {cfg.device_num}\n")
    if cfg.rank_id == 0:
        np.savez(out / f"step-{mode}.npz", weight=model.conv.weight.asnumpy(), bias=model.conv.bias.asnumpy(),
                 total_loss=result.total_loss)


if __name__ == "__main__":
    main(Path(sys.argv[1]), "--single" in sys.argv[2:])

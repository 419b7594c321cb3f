"""Device, execution mode, seeds and distributed initialisation shared by train.py, eval.py and infer.py."""
import random
from typing import Optional

import mindspore as ms
import numpy as np

from src.model_utils.config import Config


def init_env(cfg: Config) -> None:
    """Set the MindSpore context from ``cfg`` (mode, device_target, device_id, graph kernel), seed every RNG and,
    when ``cfg.run_distribute`` is on, initialise the collective backend and write ``rank_id`` and ``device_num``
    back into ``cfg`` (data parallel, gradients averaged over devices).

    GPU processes are launched by ``mpirun`` (NCCL); CPU processes by ``msrun`` (plain ``mpirun`` does not initialise
    MindSpore 2.x's CPU collectives; there AllReduce supports only SUM).
    """
    mode = ms.GRAPH_MODE if cfg.mode == "graph" else ms.PYNATIVE_MODE
    ms.set_context(mode=mode)
    if cfg.run_distribute:
        _select_device(cfg.device_target, None)
        from mindspore.communication import get_group_size, get_rank, init
        init()
        cfg.rank_id = get_rank()
        cfg.device_num = get_group_size()
        ms.reset_auto_parallel_context()
        ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL, gradients_mean=True,
                                     device_num=cfg.device_num)
    else:
        _select_device(cfg.device_target, cfg.device_id)
        cfg.rank_id = 0
        cfg.device_num = 1
    if cfg.device_target == "GPU" and cfg.enable_graph_kernel:
        ms.set_context(enable_graph_kernel=True)
    seed_everything(cfg.seed)


def _select_device(device_target: str, device_id: Optional[int]) -> None:
    """``mindspore.set_device``; tolerated when this process already runs kernels on ``device_target`` (a second
    entry point in the same process, e.g. evaluation after training), since the device cannot change any more."""
    try:
        ms.set_device(device_target, device_id)
    except RuntimeError as error:
        if ms.get_context("device_target") == device_target:
            return
        if "Unsupported device target" in str(error):
            raise RuntimeError(f"device_target: '{device_target}' is not available in this MindSpore installation "
                               f"(it supports '{ms.get_context('device_target')}'); set --device_target "
                               f"{ms.get_context('device_target')} or install MindSpore for {device_target}") from None
        raise


def seed_everything(seed: int) -> None:
    """Seed python ``random``, numpy and MindSpore with ``seed``."""
    random.seed(seed)
    np.random.seed(seed)
    ms.set_seed(seed)

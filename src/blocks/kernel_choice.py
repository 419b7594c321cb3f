"""Choosing between an own CPU kernel (a MindSpore AOT custom op built by ``scripts/build_custom.sh``) and the
op-by-op MindSpore implementation of the same block."""
import logging
from pathlib import Path
from typing import Dict

import mindspore as ms

LOGGER = logging.getLogger(__name__)

IMPLS = ("auto", "custom", "builtin")
_AUTO_CHOICES_LOGGED: Dict[str, str] = {}


def resolve_kernel_impl(impl: str, library: Path, block: str) -> str:
    """``impl`` ("auto", "custom", "builtin") of ``block`` (a name for messages) -> the implementation that runs,
    "custom" or "builtin"; "custom" needs device_target CPU and the compiled ``library`` (a RuntimeError names the
    build script otherwise); "auto" takes it when both hold and logs its choice once."""
    if impl not in IMPLS:
        raise ValueError(f"{block} impl: expected one of {IMPLS}, got '{impl}'")
    if impl == "builtin":
        return impl
    on_cpu = ms.get_context("device_target") == "CPU"
    if impl == "custom":
        if not on_cpu or not library.is_file():
            raise RuntimeError(f"{block} impl 'custom' runs on CPU with the kernel {library} "
                               "(build it with `bash scripts/build_custom.sh`)")
        return impl
    chosen = "custom" if on_cpu and library.is_file() else "builtin"
    key = f"{block}:{on_cpu}:{library.is_file()}"
    if _AUTO_CHOICES_LOGGED.get(key) != chosen:
        _AUTO_CHOICES_LOGGED[key] = chosen
        if chosen == "custom":
            LOGGER.info("%s impl 'auto': using the custom CPU kernel in %s", block, library)
        elif on_cpu:
            LOGGER.info("%s impl 'auto': %s not found, using MindSpore's ops "
                        "(run `bash scripts/build_custom.sh` for the faster kernel)", block, library)
    return chosen

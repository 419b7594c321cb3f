"""Choosing between an own CPU kernel (a MindSpore AOT custom op built by ``scripts/build_custom.sh``) and the
op-by-op MindSpore implementation of the same block."""
import logging
from pathlib import Path
from typing import Dict, Tuple

import mindspore as ms

LOGGER = logging.getLogger(__name__)

IMPLS = ("auto", "custom", "builtin")
_AUTO_CHOICES_LOGGED: Dict[str, str] = {}


def resolve_kernel_impl(impl: str, library: Path, block: str, device_targets: Tuple[str, ...] = ("CPU",)) -> str:
    """``impl`` ("auto", "custom", "builtin") of ``block`` (a name for messages) -> the implementation that runs,
    "custom" or "builtin". "custom" needs the current device_target to be one of ``device_targets`` and the compiled
    ``library`` for it (a RuntimeError names the build script otherwise); "auto" takes it when both hold and logs
    its choice once."""
    if impl not in IMPLS:
        raise ValueError(f"{block} impl: expected one of {IMPLS}, got '{impl}'")
    if impl == "builtin":
        return impl
    supported = ms.get_context("device_target") in device_targets
    if impl == "custom":
        if not supported or not library.is_file():
            raise RuntimeError(f"{block} impl 'custom' runs on {' or '.join(device_targets)} with the kernel "
                               f"{library} (build it with `bash scripts/build_custom.sh`)")
        return impl
    chosen = "custom" if supported and library.is_file() else "builtin"
    key = f"{block}:{library}:{supported}:{library.is_file()}"
    if _AUTO_CHOICES_LOGGED.get(key) != chosen:
        _AUTO_CHOICES_LOGGED[key] = chosen
        if chosen == "custom":
            LOGGER.info("%s impl 'auto': using the custom kernel in %s", block, library)
        elif supported:
            LOGGER.info("%s impl 'auto': %s not found, using MindSpore's ops "
                        "(run `bash scripts/build_custom.sh` for the faster kernel)", block, library)
    return chosen

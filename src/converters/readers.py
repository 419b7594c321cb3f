"""Source files -> ``{name: float32/int numpy array}``.

* ``.pth`` / ``.pt`` (PyTorch): ``torch.load(path, map_location="cpu", weights_only=True)``, which refuses to run
  code from the file; torch is needed only here (``pip install torch``) and its absence is a clear error. A checkpoint
  that wraps its weights (``{"state_dict": ...}`` as mmdetection saves them, or ``{"model": ...}``) is unwrapped.
* ``.pkl`` (detectron2 / caffe2): read by an unpickler that builds only dicts, lists, strings, numbers and numpy
  arrays; anything else in the file is an error. ``{"model": ...}`` or ``{"blobs": ...}`` is unwrapped.
* ``.ckpt`` (MindSpore): ``mindspore.load_checkpoint``.
"""
import pickle
from pathlib import Path
from typing import Dict

import numpy as np

Weights = Dict[str, np.ndarray]
WRAPPERS = ("state_dict", "model", "blobs")
SAFE_GLOBALS = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
                ("numpy._core.multiarray", "scalar"), ("collections", "OrderedDict")}


class _ArraysOnly(pickle.Unpickler):
    """Unpickles dicts, lists, strings, numbers and numpy arrays; refuses every other class."""

    def find_class(self, module: str, name: str) -> object:
        if (module, name) in SAFE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only numpy arrays and plain containers are "
                                     "read from a .pkl weights file")


def _unwrap(data: object, path: Path) -> Weights:
    """The ``{name: array}`` mapping of a loaded file (unwrapping ``state_dict``/``model``/``blobs``; torch
    tensors become numpy arrays)."""
    while isinstance(data, dict) and not any(hasattr(value, "shape") for value in data.values()):
        key = next((key for key in WRAPPERS if key in data), None)
        if key is None:
            break
        data = data[key]
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of parameter names to arrays, got {type(data).__name__}")
    weights = {str(name): value.detach().numpy() if hasattr(value, "detach") else np.asarray(value)
               for name, value in data.items() if hasattr(value, "shape")}
    if not weights:
        raise ValueError(f"{path}: holds no arrays")
    return weights


def read_torch(path: Path) -> Weights:
    """A PyTorch state dict (see the module docstring)."""
    try:
        import torch
    except ImportError:
        raise RuntimeError(f"{path}: reading PyTorch files needs torch (pip install torch); it is not needed "
                           "anywhere else in this project") from None
    return _unwrap(torch.load(str(path), map_location="cpu", weights_only=True), path)


def read_pickle(path: Path) -> Weights:
    """A detectron2/caffe2 ``.pkl`` of numpy arrays (see the module docstring)."""
    with open(path, "rb") as stream:
        return _unwrap(_ArraysOnly(stream, encoding="latin1").load(), path)


def read_mindspore(path: Path) -> Weights:
    """A MindSpore checkpoint's parameters."""
    import mindspore as ms

    return {name: value.asnumpy() for name, value in ms.load_checkpoint(str(path)).items()
            if hasattr(value, "asnumpy")}


def read_weights(path: Path) -> Weights:
    """Read a weights file by its extension (.pth/.pt, .pkl, .ckpt); FileNotFoundError / ValueError naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such weights file")
    suffix = path.suffix.lower()
    if suffix in (".pth", ".pt"):
        return read_torch(path)
    if suffix == ".pkl":
        return read_pickle(path)
    if suffix == ".ckpt":
        return read_mindspore(path)
    raise ValueError(f"{path}: unknown weights file type '{suffix}' (expected .pth, .pt, .pkl or .ckpt)")

"""Convert weights of other projects into a MindSpore checkpoint with this project's parameter names.

    python -m src.tools.convert_weights --from FORMAT SRC --out DST.ckpt [--config CONFIG]

FORMAT is one of torchvision-resnet, mindspore-resnet, detectron2 (backbones, for ``backbone.pretrained``) or mmdet
(whole detectors, for ``pre_trained``; see :mod:`src.converters.formats`). Prints how many tensors were converted,
the source names left out, and the config keys the weights need. With ``--config`` the result is checked against
the model of that config: every converted tensor must be one of its parameters with the same shape, and the model
parameters the file does not cover are listed. Exit code 2 on an unreadable source or a failed check.
"""
import argparse
import sys
from pathlib import Path
from typing import List, Optional

import numpy as np

from src.converters.formats import FORMATS
from src.converters.readers import read_weights

MAX_LISTED = 12


def listing(names: List[str]) -> str:
    shown = ", ".join(names[:MAX_LISTED])
    return f"{shown}, ... ({len(names)} in all)" if len(names) > MAX_LISTED else shown


def check_against_config(converted: dict, config_path: str, backbone: bool) -> List[str]:
    """Problems of the converted tensors against the model of ``config_path`` (empty when they fit); prints the
    model parameters they leave uncovered."""
    import mindspore as ms

    from src.blocks.ms_rcnn import MsRcnn
    from src.model_utils.config import load_config

    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    model = MsRcnn(load_config(config_path))
    prefix = "backbone." if backbone else ""
    shapes = {parameter.name[len(prefix):]: tuple(parameter.shape) for parameter in model.get_parameters()
              if parameter.name.startswith(prefix)}
    unknown = sorted(set(converted) - set(shapes))
    mismatched = [f"{name} {tuple(value.shape)} vs {shapes[name]}" for name, value in converted.items()
                  if name in shapes and tuple(value.shape) != shapes[name]]
    uncovered = sorted(set(shapes) - set(converted))
    print(f"Against {config_path}: {len(shapes) - len(uncovered)} of {len(shapes)} "
          f"{'backbone' if backbone else 'model'} parameters covered"
          + (f"; not covered (stay freshly initialised): {listing(uncovered)}" if uncovered else ""))
    problems = []
    if unknown:
        problems.append(f"{len(unknown)} converted tensor(s) are not parameters of this model: {listing(unknown)}")
    if mismatched:
        problems.append(f"{len(mismatched)} tensor(s) have another shape: {listing(mismatched)}")
    return problems


def main(argv: Optional[List[str]] = None) -> int:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m src.tools.convert_weights", description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="source_format", required=True, choices=sorted(FORMATS))
    parser.add_argument("source", type=Path, help="the weights file to convert")
    parser.add_argument("--out", type=Path, required=True, help="MindSpore checkpoint to write (.ckpt)")
    parser.add_argument("--config", help="check the result against the model of this config")
    args = parser.parse_args(argv)
    source_format = FORMATS[args.source_format]
    try:
        weights = read_weights(args.source)
    except (FileNotFoundError, ValueError, RuntimeError) as error:
        print(f"convert_weights: error: {error}", file=sys.stderr)
        return 2
    converted, left_out = source_format.rename(weights)
    if not converted:
        print(f"convert_weights: error: no tensor of {args.source} has a {args.source_format} name "
              f"({listing(sorted(weights))}); is it another format?", file=sys.stderr)
        return 2
    print(f"{args.source} ({source_format.description}): {len(converted)} tensors converted"
          + (f"; left out: {listing(left_out)}" if left_out else ""))
    if args.config:
        problems = check_against_config(converted, args.config, source_format.backbone)
        if problems:
            print("convert_weights: error: " + "; ".join(problems), file=sys.stderr)
            return 2
    import mindspore as ms

    args.out.parent.mkdir(parents=True, exist_ok=True)
    ms.save_checkpoint([{"name": name, "data": ms.Tensor(np.ascontiguousarray(value))}
                        for name, value in converted.items()], str(args.out))
    target = "backbone.pretrained" if source_format.backbone else "pre_trained (with finetune: 1 for other classes)"
    print(f"Wrote {args.out}: use it as {target}. The weights need these config keys:")
    for condition, keys in source_format.config.items():
        print(f"  {condition}: " + ", ".join(f"{key}: {value}" for key, value in keys.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

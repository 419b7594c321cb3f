"""Convert weights of other projects into a MindSpore checkpoint with this project's parameter names.

    python -m src.tools.convert_weights --from FORMAT SRC --out DST.ckpt [--config CONFIG] [--drop-class-layers]

FORMAT is one of torchvision-resnet, mindspore-resnet, detectron2 (backbones, for ``backbone.pretrained``),
torchvision-maskrcnn or mmdet (whole detectors, for ``pre_trained``; see :mod:`src.converters.formats`). Prints how
many tensors were converted, the source names left out, and the config keys the weights need. With ``--config`` the
result is checked against the model of that config: every converted tensor must be one of its parameters with the
same shape, and the model parameters the file does not cover are listed.

Class-dependent layers of a COCO detector (classifier, box regression, mask logits, MaskIoU output): with
``--config`` they are taken for the config's ``coco_classes`` by name, in the config's order
(:func:`src.converters.classes.select_classes`), so the file loads as ``pre_trained`` without ``finetune``. A class
COCO does not have is an error naming it; ``--drop-class-layers`` leaves those layers out instead (they start
freshly initialised, what ``finetune: 1`` does with a file of other classes). Exit code 2 on an unreadable source,
an unknown class or a failed check.
"""
import argparse
import sys
from pathlib import Path
from typing import List, Optional

import numpy as np

from src.converters.classes import UnknownClassesError, drop_class_layers, select_classes
from src.converters.formats import FORMATS, SourceFormat
from src.converters.readers import Weights, read_weights
from src.model_utils.config import Config, load_config

MAX_LISTED = 12


def listing(names: List[str]) -> str:
    shown = ", ".join(names[:MAX_LISTED])
    return f"{shown}, ... ({len(names)} in all)" if len(names) > MAX_LISTED else shown


def fit_classes(converted: Weights, source_format: SourceFormat, cfg: Optional[Config], config_path: str,
                drop: bool) -> Weights:
    """The converted detector's class-dependent layers for the config's classes: left out with ``drop``, taken by
    name when the detector's classifier has a row per known source class (after the background); unchanged
    otherwise. Prints what was done; raises UnknownClassesError for names the detector was not trained on."""
    if drop:
        kept, dropped = drop_class_layers(converted)
        print(f"Class-dependent layers left out (they start freshly initialised): {listing(dropped)}")
        return kept
    classifier = converted.get("bbox_head.fc_cls.bias")
    classes = list(source_format.classes)
    if cfg is None or not classes or classifier is None or classifier.shape[0] != len(classes) + 1:
        return converted
    wanted = list(cfg.coco_classes)
    selected = select_classes(converted, wanted, classes)
    if wanted[1:] != classes:
        print(f"Class-dependent layers taken by name for the {len(wanted) - 1} classes of {config_path}: "
              + listing(wanted[1:]))
    return selected


def check_against_config(converted: dict, cfg: Config, config_path: str, backbone: bool) -> List[str]:
    """Problems of the converted tensors against the model of ``cfg`` (read from ``config_path``; empty when they
    fit); prints the model parameters they leave uncovered."""
    import mindspore as ms

    from src.blocks.ms_rcnn import MsRcnn

    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    model = MsRcnn(cfg)
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
    parser.add_argument("--config", help="check the result against the model of this config (and, for a detector, "
                                          "take its class-dependent layers for the config's classes by name)")
    parser.add_argument("--drop-class-layers", action="store_true",
                        help="detectors: leave the class-dependent layers out (for classes the detector was not "
                             "trained on; they start freshly initialised)")
    args = parser.parse_args(argv)
    source_format = FORMATS[args.source_format]
    if args.drop_class_layers and source_format.backbone:
        print(f"convert_weights: error: --drop-class-layers: {args.source_format} is a backbone, it has no "
              "class-dependent layers", file=sys.stderr)
        return 2
    try:
        weights = read_weights(args.source)
        cfg = load_config(args.config) if args.config else None
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
    if not source_format.backbone:
        try:
            converted = fit_classes(converted, source_format, cfg, args.config, args.drop_class_layers)
        except UnknownClassesError as error:
            print(f"convert_weights: error: coco_classes of {args.config}: {error}: not among the "
                  f"{len(source_format.classes)} COCO classes of this detector, so its class-dependent layers "
                  "cannot be taken by name. To fine-tune them from scratch (finetune: 1), convert with "
                  "--drop-class-layers: they are left out and start freshly initialised", file=sys.stderr)
            return 2
    if cfg is not None:
        problems = check_against_config(converted, cfg, args.config, source_format.backbone)
        if problems:
            print("convert_weights: error: " + "; ".join(problems), file=sys.stderr)
            return 2
    import mindspore as ms

    args.out.parent.mkdir(parents=True, exist_ok=True)
    ms.save_checkpoint([{"name": name, "data": ms.Tensor(np.ascontiguousarray(value))}
                        for name, value in converted.items()], str(args.out))
    if source_format.backbone:
        target = "backbone.pretrained"
    elif cfg is not None or args.drop_class_layers:
        target = "pre_trained"
    else:
        target = "pre_trained (with finetune: 1 for other classes; or convert with --config to take them by name)"
    print(f"Wrote {args.out}: use it as {target}. The weights need these config keys:")
    for condition, keys in source_format.config.items():
        print(f"  {condition}: " + ", ".join(f"{key}: {value}" for key, value in keys.items()))
    classifier = converted.get("bbox_head.fc_cls.bias")
    if classifier is not None:
        if cfg is not None:
            classes = f"coco_classes of {args.config}"
        elif classifier.shape[0] == len(source_format.classes) + 1:
            classes = "coco_classes: 'background' and the COCO classes in id order (the default)"
        else:
            classes = "coco_classes of the source model"
        print(f"  class-dependent layers: num_classes: {classifier.shape[0]}, {classes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

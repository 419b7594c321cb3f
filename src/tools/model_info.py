"""Print the parameter count of the detector a config describes, in total and per block.

Usage: ``python -m src.tools.model_info CONFIG [--key value ...]``. Counts every MindSpore Parameter of the six
blocks (BatchNorm moving mean and variance included, as MindSpore stores them as Parameters).
"""
import argparse
import sys
from typing import Dict, List, Optional

import mindspore as ms

from src.model_utils.config import Config, load_config

BLOCKS = ("backbone", "neck", "rpn_head", "bbox_head", "mask_head", "mask_iou_head")
BLOCK_NAMES = {"backbone": "backbone", "neck": "neck", "rpn_head": "rpn", "bbox_head": "bbox_head",
               "mask_head": "mask_head", "mask_iou_head": "mask_iou_head"}


def block_parameter_counts(cfg: Config) -> Dict[str, int]:
    """Build the detector of ``cfg`` and return {block name: number of parameter values} for the six blocks."""
    from src.blocks.ms_rcnn import MsRcnn
    from src.network_define import count_parameters

    model = MsRcnn(cfg)
    return {BLOCK_NAMES[block]: count_parameters(getattr(model, block))[0] for block in BLOCKS}


def main(argv: Optional[List[str]] = None) -> int:
    """Command line entry: prints the parameter count of a config, in total and per block; returns 0."""
    parser = argparse.ArgumentParser(description="Number of parameters of a Mask Scoring R-CNN config.")
    parser.add_argument("config", help="YAML config file")
    args, overrides = parser.parse_known_args(argv)
    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    cfg = load_config(args.config, overrides)
    counts = block_parameter_counts(cfg)
    print(f"Number of parameters: {sum(counts.values())}")
    for name, count in counts.items():
        print(f"  {name:<14s}{count:>12d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

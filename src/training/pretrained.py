"""Starting a training run from pretrained weights, loudly: ``backbone.pretrained`` (a backbone, e.g. converted by
``python -m src.tools.convert_weights``) and ``pre_trained`` (a whole detector, ``finetune: 1`` dropping the layers
whose shape depends on the classes) each print one summary line, and a file that matches nothing, or too little of
what it should cover, stops the run with a message instead of leaving random weights behind.

A backbone that is neither pretrained nor trained (frozen stages or frozen BatchNorm over random values) is refused
unless ``backbone.allow_frozen_random_init`` says it is meant.
"""
from pathlib import Path
from typing import List

import mindspore as ms
from mindspore import nn

from src.model_utils.config import Config
from src.network_define import load_weights

MIN_COVERAGE = 0.9  # share of the covered scope's parameters a pretrained file must provide
MAX_NAMED = 8


def _names(names: List[str]) -> str:
    return ", ".join(names[:MAX_NAMED]) + (f", ... ({len(names)} in all)" if len(names) > MAX_NAMED else "")


def load_pretrained(model: nn.Cell, path: str, key: str, backbone_only: bool, finetune: bool = False) -> str:
    """Load ``path`` into ``model`` (its backbone when ``backbone_only``); returns the summary line. Raises
    FileNotFoundError / ValueError naming ``key`` and the file when it is missing, holds parameters of the model's
    modules that the model does not have (another architecture), has other shapes (unless ``finetune``), matches no
    parameter, or leaves more than 10 % of the scope's parameters at their initial values."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{key}: no checkpoint at '{path}' (convert other projects' weights with "
                                "python -m src.tools.convert_weights)")
    param_dict = {name: value for name, value in ms.load_checkpoint(str(path)).items() if hasattr(value, "asnumpy")}
    scope = [parameter.name for parameter in model.get_parameters()
             if not backbone_only or parameter.name.startswith("backbone.")]
    targets = {parameter.name for parameter in model.get_parameters()}
    modules = {name.split(".")[0] for name in targets}
    backbone_modules = {name.split(".")[1] for name in targets if name.startswith("backbone.")}
    named = param_dict if set(param_dict) & targets else {
        f"backbone.{name}" if name.split(".")[0] in backbone_modules else name: value
        for name, value in param_dict.items()}
    foreign = sorted(name for name in named if name.split(".")[0] in modules and name not in targets)
    if foreign:
        raise ValueError(f"{key} {path}: {len(foreign)} of its parameters have no place in this model "
                         f"({_names(foreign)}): it was written for another architecture (backbone.depth, "
                         "number of convolutions or layers)")
    missing, unexpected = load_weights(model, param_dict, finetune, f"{key} {path}")
    missing_in_scope = [name for name in missing if name in set(scope)]
    loaded = len(scope) - len(missing_in_scope)
    what = "backbone" if backbone_only else "model"
    summary = (f"{key} {path}: loaded {loaded} of {len(scope)} {what} parameters; missing {len(missing_in_scope)}"
               + (f" ({_names(missing_in_scope)})" if missing_in_scope else "")
               + f"; unexpected or shape-mismatched entries skipped {len(unexpected)}"
               + (f" ({_names(unexpected)})" if unexpected else ""))
    if loaded == 0:
        raise ValueError(f"{summary}. Nothing matched: is it a checkpoint of another model? Convert it with python "
                         "-m src.tools.convert_weights")
    if loaded < MIN_COVERAGE * len(scope):
        raise ValueError(f"{summary}. Less than {MIN_COVERAGE:.0%} of the {what} would start from these weights; "
                         "was the file written for another architecture (backbone.depth, num_classes)?")
    return summary


def check_backbone_start(cfg: Config) -> None:
    """Refuse frozen stages or frozen BatchNorm over a random backbone (no backbone.pretrained, no pre_trained)."""
    backbone = cfg.backbone
    if cfg.pre_trained or backbone.pretrained or backbone.allow_frozen_random_init:
        return
    frozen = []
    if backbone.frozen_stages >= 0:
        frozen.append(f"frozen_stages: {backbone.frozen_stages}")
    if backbone.norm_eval:
        frozen.append("norm_eval: True")
    if frozen:
        raise ValueError(f"backbone: {' and '.join(frozen)} would keep random weights frozen for the whole run, since "
                         "neither backbone.pretrained nor pre_trained is set. Set backbone.pretrained (see python -m "
                         "src.tools.convert_weights), or train from scratch with backbone.frozen_stages: -1 and "
                         "backbone.norm_eval: False, or set backbone.allow_frozen_random_init: True if this is meant")

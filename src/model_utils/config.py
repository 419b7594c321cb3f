"""Configuration: YAML files with inheritance, command-line overrides and validation.

Every key lives in ``configs/default_config.yaml``. A specific config names only what it changes and may inherit from
other configs with ``_base_: other.yaml`` (a path relative to the file, or a list of them, merged in order); the
default config is always the root. Command-line arguments ``--key value`` or ``--key=value`` override any key, nested
ones with dots (``--train_cfg.rcnn.sampler.num 256``); values are parsed as YAML (``--lr_steps [8,11]``).

Importing this module has no side effects: nothing reads ``sys.argv`` until :func:`parse_cli` is called.
"""
from __future__ import annotations

import argparse
import copy
import difflib
import math
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import yaml

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parents[2] / "configs" / "default_config.yaml"
BASE_KEY = "_base_"
MASK_PASTE_MODES = ("box", "subpixel", "torchvision")  # test_cfg.rcnn.mask_paste, see src/eval_utils.py paste_mask


class ConfigError(ValueError):
    """A configuration file or override is malformed, names an unknown key, or holds an impossible value."""


class Config(dict):
    """A nested dictionary whose keys are also attributes: ``cfg.train_cfg.rcnn.sampler.num``."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"config has no key '{name}'") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __deepcopy__(self, memo: dict) -> "Config":
        return Config.from_dict(self.to_dict())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Config":
        """Build a Config from a plain (nested) mapping; nested mappings become Configs too."""
        return cls({key: cls.from_dict(value) if isinstance(value, Mapping) else value for key, value in data.items()})

    def to_dict(self) -> dict:
        """Plain nested dictionaries (what ``yaml.safe_dump`` accepts)."""
        return {key: value.to_dict() if isinstance(value, Config) else value for key, value in self.items()}


def read_yaml(path: str | os.PathLike) -> dict:
    """Read one YAML mapping; missing, malformed or non-mapping files raise :class:`ConfigError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        with open(path, encoding="utf-8") as stream:
            data = yaml.safe_load(stream)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: malformed YAML: {error}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level, got {type(data).__name__}")
    return data


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number_from_text(text: str) -> Any:
    """``float(text)`` when the text is a finite number (e.g. '1e-3'), else the text unchanged."""
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


def _coerce(key: str, value: Any, default: Any, source: str) -> Any:
    """Return ``value`` converted to the type of ``default`` or raise ConfigError naming the key."""

    def fail(expected: str) -> ConfigError:
        return ConfigError(f"{source}: '{key}' expects {expected}, got {value!r} ({type(value).__name__})")

    if default is None:
        return value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise fail("a boolean (True/False)")
    if isinstance(value, str) and _is_number(default):
        value = _number_from_text(value)  # YAML 1.1 reads 1e-3 (no dot) as a string
    if isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise fail("an integer")
    if isinstance(default, float):
        if _is_number(value):
            return float(value)
        raise fail("a number")
    if isinstance(default, str):
        if isinstance(value, str):
            return value
        if _is_number(value) or isinstance(value, bool):
            return str(value)
        raise fail("a string")
    if isinstance(default, list):
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise fail("a list")
        if default and all(_is_number(item) for item in default):
            if not all(_is_number(item) for item in value):
                raise fail("a list of numbers")
            if all(isinstance(item, int) for item in default):
                if not all(float(item).is_integer() for item in value):
                    raise fail("a list of integers")
                return [int(item) for item in value]
            return [float(item) for item in value]
        if default and all(isinstance(item, str) for item in default):
            if not all(isinstance(item, str) for item in value):
                raise fail("a list of strings")
        return value
    return value


def _unknown_key_error(key: str, known: Iterable[str], source: str) -> ConfigError:
    leaf = key.rsplit(".", 1)[-1]
    prefix = key[: -len(leaf)]
    close = difflib.get_close_matches(leaf, list(known), n=1)
    hint = f"; did you mean '{prefix}{close[0]}'?" if close else ""
    return ConfigError(f"{source}: unknown config key '{key}'{hint}")


def _merge(base: dict, override: Mapping[str, Any], schema: Mapping[str, Any], source: str, prefix: str = "") -> None:
    """Merge ``override`` into ``base`` in place, checking keys and types against ``schema`` (the defaults)."""
    for key, value in override.items():
        dotted = f"{prefix}{key}"
        if key not in schema:
            raise _unknown_key_error(dotted, schema.keys(), source)
        default = schema[key]
        if isinstance(default, dict):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{source}: '{dotted}' expects a mapping of sub-keys, got {value!r}")
            _merge(base[key], value, default, source, f"{dotted}.")
        else:
            base[key] = _coerce(dotted, value, default, source)


def _resolve_chain(path: Path, seen: tuple[Path, ...] = ()) -> list[tuple[Path, dict]]:
    """Files to merge for ``path``, bases first, each as (path, data without the _base_ key)."""
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"{path}: circular '{BASE_KEY}' chain: {' -> '.join(str(p) for p in seen + (path,))}")
    data = read_yaml(path)
    bases = data.pop(BASE_KEY, [])
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(base, str) for base in bases):
        raise ConfigError(f"{path}: '{BASE_KEY}' expects a path or a list of paths, got {bases!r}")
    chain: list[tuple[Path, dict]] = []
    for base in bases:
        base_path = (path.parent / base).resolve()
        if base_path == DEFAULT_CONFIG_PATH.resolve():
            continue
        chain.extend(_resolve_chain(base_path, seen + (path,)))
    chain.append((path, data))
    return chain


def parse_overrides(args: Sequence[str]) -> list[tuple[str, Any]]:
    """Turn ``['--a.b', '1', '--c=[1,2]']`` into ``[('a.b', 1), ('c', [1, 2])]`` (values parsed as YAML)."""
    pairs: list[tuple[str, Any]] = []
    index = 0
    while index < len(args):
        token = args[index]
        if not token.startswith("--") or len(token) == 2:
            raise ConfigError(f"command line: expected '--key value', got '{token}'")
        if "=" in token:
            key, raw = token[2:].split("=", 1)
            index += 1
        else:
            key = token[2:]
            if index + 1 >= len(args):
                raise ConfigError(f"command line: '--{key}' has no value")
            raw = args[index + 1]
            index += 2
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        pairs.append((key, value))
    return pairs


def _apply_override(cfg: dict, schema: Mapping[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node, node_schema = cfg, schema
    for depth, part in enumerate(parts):
        dotted = ".".join(parts[: depth + 1])
        if not isinstance(node_schema, Mapping) or part not in node_schema:
            known = node_schema.keys() if isinstance(node_schema, Mapping) else []
            raise _unknown_key_error(dotted, known, "command line")
        if depth == len(parts) - 1:
            _merge(node, {part: value}, node_schema, "command line", ".".join(parts[:depth]) + "." if depth else "")
        else:
            node, node_schema = node[part], node_schema[part]


def load_config(path: str | os.PathLike | None = None,
                overrides: Sequence[str] | Mapping[str, Any] | None = None) -> Config:
    """Load the default config, merge ``path`` (and its bases) over it, apply ``overrides``, validate.

    Args:
        path: a config YAML; None loads the defaults alone.
        overrides: command-line style tokens (``['--lr', '0.01']``) or a mapping of dotted keys to values.

    Returns:
        The validated :class:`Config`.

    Raises:
        ConfigError: naming the file or command line, the key and what was expected.
    """
    schema = read_yaml(DEFAULT_CONFIG_PATH)
    schema.pop(BASE_KEY, None)
    cfg = copy.deepcopy(schema)
    source = str(DEFAULT_CONFIG_PATH)
    if path is not None:
        for file_path, data in _resolve_chain(Path(path)):
            _merge(cfg, data, schema, str(file_path))
        source = str(path)
    pairs = list(overrides.items()) if isinstance(overrides, Mapping) else parse_overrides(overrides or [])
    for key, value in pairs:
        _apply_override(cfg, schema, key, value)
    if pairs:
        source = f"{source} with command-line overrides"
    config = Config.from_dict(cfg)
    validate(config, source)
    return config


def parse_cli(argv: Sequence[str] | None = None, description: str | None = None) -> Config:
    """Parse ``--config_path PATH`` plus any ``--key value`` overrides (from ``sys.argv`` when argv is None)."""
    parser = argparse.ArgumentParser(
        description=description,
        epilog="Any config key can be overridden: --key value (nested keys with dots, e.g. --train_cfg.rcnn.sampler.num 256).",
    )
    parser.add_argument("--config_path", default=None, help="config YAML (default: configs/default_config.yaml)")
    known, rest = parser.parse_known_args(argv)
    try:
        return load_config(known.config_path, rest)
    except ConfigError as error:
        parser.error(str(error))
        raise


# --------------------------------------------------------------------------------------------------------------------
# validation

def _get(cfg: Mapping[str, Any], dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        node = node[part]
    return node


def validate(cfg: Config, source: str = "config") -> None:
    """Reject impossible values, naming the key and the expected value (raises :class:`ConfigError`)."""

    def check(key: str, ok: Callable[[Any], bool], expected: str) -> None:
        value = _get(cfg, key)
        if not ok(value):
            raise ConfigError(f"{source}: '{key}' must be {expected}, got {value!r}")

    def one_of(*choices: Any) -> Callable[[Any], bool]:
        return lambda value: value in choices

    positive = lambda value: value > 0  # noqa: E731
    non_negative = lambda value: value >= 0  # noqa: E731
    unit = lambda value: 0 <= value <= 1  # noqa: E731

    check("device_target", one_of("GPU", "CPU"), "'GPU' or 'CPU'")
    check("mode", one_of("graph", "pynative"), "'graph' or 'pynative'")
    check("detector", one_of("ms_rcnn"), "'ms_rcnn'")
    check("conv_impl", one_of("auto", "custom", "builtin"), "'auto', 'custom' or 'builtin'")
    check("backbone.type", one_of("resnet"), "'resnet'")
    check("backbone.depth", one_of(18, 34, 50, 101), "one of 18, 34, 50, 101")
    check("backbone.base_channels", positive, "> 0")
    check("backbone.style", one_of("caffe", "pytorch"), "'caffe' or 'pytorch'")
    check("backbone.num_stages", lambda v: 1 <= v <= 4, "between 1 and 4")
    num_stages = cfg.backbone.num_stages
    check("backbone.frozen_stages", lambda v: -1 <= v <= num_stages, f"between -1 and num_stages={num_stages}")
    check("backbone.out_indices",
          lambda v: len(v) > 0 and list(v) == sorted(set(v)) and all(0 <= i < num_stages for i in v),
          f"increasing stage indices in [0, {num_stages - 1}]")
    expansion = 4 if cfg.backbone.depth >= 50 else 1
    stage_channels = [cfg.backbone.base_channels * 2 ** i * expansion for i in cfg.backbone.out_indices]
    check("neck.fpn.in_channels", lambda v: list(v) == stage_channels,
          f"the backbone's output channels {stage_channels} (depth {cfg.backbone.depth}, "
          f"base_channels {cfg.backbone.base_channels}, out_indices {cfg.backbone.out_indices})")
    check("neck.fpn.out_channels", positive, "> 0")
    num_outs = cfg.neck.fpn.num_outs
    check("neck.fpn.num_outs", lambda v: v >= len(cfg.neck.fpn.in_channels),
          f">= the number of FPN inputs ({len(cfg.neck.fpn.in_channels)})")
    check("rpn.in_channels", lambda v: v == cfg.neck.fpn.out_channels,
          f"neck.fpn.out_channels ({cfg.neck.fpn.out_channels})")
    check("rpn.num_classes", one_of(1), "1 (sigmoid objectness)")
    check("rpn.anchor_generator.strides", lambda v: len(v) == num_outs and all(s > 0 for s in v),
          f"{num_outs} positive strides (one per FPN level, neck.fpn.num_outs)")
    check("rpn.anchor_generator.scales", lambda v: len(v) > 0 and all(s > 0 for s in v), "a list of positive scales")
    check("rpn.anchor_generator.ratios", lambda v: len(v) > 0 and all(r > 0 for r in v), "a list of positive ratios")
    for head in ("rpn", "bbox_head"):
        check(f"{head}.bbox_coder.target_means", lambda v: len(v) == 4, "4 numbers")
        check(f"{head}.bbox_coder.target_stds", lambda v: len(v) == 4 and all(s > 0 for s in v), "4 positive numbers")
        check(f"{head}.loss_cls.loss_weight", non_negative, ">= 0")
        check(f"{head}.loss_bbox.loss_weight", non_negative, ">= 0")
    check("bbox_head.in_channels", lambda v: v == cfg.roi.out_channels, f"roi.out_channels ({cfg.roi.out_channels})")
    check("bbox_head.roi_feat_size", lambda v: v == cfg.roi.roi_layer.out_size,
          f"roi.roi_layer.out_size ({cfg.roi.roi_layer.out_size})")
    check("mask_head.in_channels", lambda v: v == cfg.mask_roi.out_channels,
          f"mask_roi.out_channels ({cfg.mask_roi.out_channels})")
    check("mask_head.num_convs", non_negative, ">= 0")
    check("mask_head.loss_mask.loss_weight", non_negative, ">= 0")
    check("mask_iou_head.in_channels", lambda v: v == cfg.mask_head.conv_out_channels,
          f"mask_head.conv_out_channels ({cfg.mask_head.conv_out_channels})")
    check("mask_iou_head.roi_feat_size", lambda v: v == cfg.mask_roi.roi_layer.out_size,
          f"mask_roi.roi_layer.out_size ({cfg.mask_roi.roi_layer.out_size})")
    check("mask_iou_head.num_convs", positive, ">= 1")
    check("mask_iou_head.num_fcs", positive, ">= 1")
    check("mask_iou_head.loss_iou.loss_weight", non_negative, ">= 0")
    check("train_cfg.rcnn.mask_size", lambda v: v == 2 * cfg.mask_roi.roi_layer.out_size,
          f"2 * mask_roi.roi_layer.out_size ({2 * cfg.mask_roi.roi_layer.out_size}): the mask head upsamples by 2")
    for roi_key in ("roi", "mask_roi"):
        check(f"{roi_key}.roi_layer.type", one_of("RoIAlign"), "'RoIAlign'")
        check(f"{roi_key}.roi_layer.out_size", positive, "> 0")
        check(f"{roi_key}.roi_layer.sampling_ratio", non_negative, ">= 0 (0 = adaptive)")
        check(f"{roi_key}.roi_layer.impl", one_of("auto", "custom", "builtin"), "'auto', 'custom' or 'builtin'")
        check(f"{roi_key}.out_channels", lambda v: v == cfg.neck.fpn.out_channels,
              f"neck.fpn.out_channels ({cfg.neck.fpn.out_channels})")
        strides = list(cfg.rpn.anchor_generator.strides)
        check(f"{roi_key}.featmap_strides", lambda v: 0 < len(v) <= num_outs and list(v) == strides[: len(v)],
              f"a prefix of the FPN strides {strides}")
        check(f"{roi_key}.finest_scale", positive, "> 0")
        check(f"{roi_key}.scale_factor", positive, "> 0 (1 = the RoI itself)")
        check(f"{roi_key}.sample_num", positive, "> 0")
    check("mask_roi.chunk_size", non_negative, ">= 0 (0 = the mask heads run on every RoI slot)")
    rcnn_sampler = cfg.train_cfg.rcnn.sampler
    min_mask_rois = int(rcnn_sampler.num * rcnn_sampler.pos_fraction)
    check("mask_roi.sample_num", lambda v: min_mask_rois <= v <= rcnn_sampler.num,
          f"in [int(train_cfg.rcnn.sampler.num * pos_fraction), train_cfg.rcnn.sampler.num] = "
          f"[{min_mask_rois}, {rcnn_sampler.num}] (every sampled positive gets a mask target)")
    for stage in ("rpn", "rcnn"):
        prefix = f"train_cfg.{stage}"
        check(f"{prefix}.assigner.pos_iou_thr", unit, "in [0, 1]")
        check(f"{prefix}.assigner.neg_iou_thr", lambda v: 0 <= v <= _get(cfg, f"{prefix}.assigner.pos_iou_thr"),
              f"in [0, {prefix}.assigner.pos_iou_thr]")
        check(f"{prefix}.assigner.min_pos_iou", unit, "in [0, 1]")
        check(f"{prefix}.sampler.num", positive, "> 0")
        check(f"{prefix}.sampler.pos_fraction", lambda v: 0 < v <= 1, "in (0, 1]")
        check(f"{prefix}.sampler.neg_pos_ub", lambda v: v == -1 or v >= 0, "-1 (no bound) or >= 0")
    for prefix in ("train_cfg.rpn_proposal", "test_cfg.rpn"):
        check(f"{prefix}.nms_pre", positive, "> 0")
        check(f"{prefix}.max_per_img", positive, "> 0")
        check(f"{prefix}.iou_threshold", lambda v: 0 < v <= 1, "in (0, 1]")
        check(f"{prefix}.min_bbox_size", non_negative, ">= 0")
    check("train_cfg.rcnn.mask_thr_binary", unit, "in [0, 1]")
    check("test_cfg.rcnn.score_thr", unit, "in [0, 1]")
    check("test_cfg.rcnn.iou_threshold", lambda v: 0 < v <= 1, "in (0, 1]")
    check("test_cfg.rcnn.max_per_img", positive, "> 0")
    check("test_cfg.rcnn.max_candidates", lambda v: v == 0 or v >= cfg.test_cfg.rcnn.max_per_img,
          f"0 (roi.sample_num) or >= test_cfg.rcnn.max_per_img ({cfg.test_cfg.rcnn.max_per_img})")
    check("test_cfg.rcnn.min_bbox_size", non_negative, ">= 0 (0 = no size filter)")
    check("test_cfg.rcnn.mask_thr_binary", unit, "in [0, 1]")
    paste_modes = [f"'{mode}'" for mode in MASK_PASTE_MODES]
    check("test_cfg.rcnn.mask_paste", one_of(*MASK_PASTE_MODES), f"{', '.join(paste_modes[:-1])} or {paste_modes[-1]}")

    check("opt_type", one_of("sgd", "adam", "adamw"), "'sgd', 'adam' or 'adamw'")
    check("lr", positive, "> 0")
    check("min_lr", lambda v: 0 <= v <= cfg.lr, f"in [0, lr={cfg.lr}]")
    check("momentum", lambda v: 0 <= v < 1, "in [0, 1)")
    check("weight_decay", non_negative, ">= 0")
    check("warmup_step", non_negative, ">= 0")
    check("warmup_ratio", lambda v: 0 < v <= 1, "in (0, 1]")
    check("lr_type", one_of("multistep", "cosine"), "'multistep' or 'cosine'")
    check("lr_steps", lambda v: list(v) == sorted(v) and all(s > 0 for s in v), "increasing positive epoch numbers")
    check("grad_clip", non_negative, ">= 0 (0 = off)")
    check("divergence_guard.loss_jump", lambda v: v > 1, "> 1")
    check("divergence_guard.running_momentum", lambda v: 0 <= v < 1, "in [0, 1)")
    check("divergence_guard.warmup_steps", non_negative, ">= 0")
    check("divergence_guard.max_rejected", positive, ">= 1")
    check("divergence_guard.lr_factor", lambda v: 0 < v < 1, "in (0, 1)")
    check("divergence_guard.max_rollbacks", non_negative, ">= 0")
    for key in ("dynamic_loss_scale", "run_eval", "enable_graph_kernel", "finetune", "run_distribute",
                "python_multiprocessing", "to_rgb", "keep_ratio"):
        check(key, lambda v: v in (0, 1), "0 or 1")
    check("accumulate_step", positive, ">= 1")
    for key, channels in (("neck.fpn.norm_groups", "neck.fpn.out_channels"),
                          ("mask_head.norm_groups", "mask_head.conv_out_channels")):
        width = _get(cfg, channels)
        check(key, lambda v, width=width: isinstance(v, int) and (v == 0 or (v > 0 and width % v == 0)),
              f"0 (none) or a positive divisor of {channels} = {width}")
    check("gt_buckets", lambda v: all(isinstance(size, int) and size > 0 for size in v), "a list of positive integers")
    check("auto_scale_lr.base_batch_size", positive, "> 0")
    for key in ("num_gts", "batch_size", "test_batch_size", "loss_scale", "epoch_size", "eval_every", "log_interval",
                "device_num", "num_parallel_workers", "save_every", "keep_checkpoint_max", "keep_best_checkpoints_max"):
        check(key, positive, "> 0")
    check("rank_id", lambda v: 0 <= v < cfg.device_num, f"in [0, device_num={cfg.device_num})")
    for key in ("train_dataset_num", "train_dataset_divider"):
        check(key, non_negative, ">= 0")

    classes = cfg.coco_classes
    check("coco_classes", lambda v: len(v) >= 2 and v[0] == "background",
          "a list starting with 'background' followed by at least one class")
    check("coco_classes", lambda v: len(set(v)) == len(v), "a list of distinct names")
    check("num_classes", lambda v: v == len(classes), f"len(coco_classes) = {len(classes)}")
    check("divider", positive, "> 0")
    check("img_width", lambda v: v > 0 and v % cfg.divider == 0, f"a positive multiple of divider={cfg.divider}")
    check("img_height", lambda v: v > 0 and v % cfg.divider == 0, f"a positive multiple of divider={cfg.divider}")
    check("mask_divider", lambda v: v in (1, 2, 4) and cfg.divider % v == 0, "1, 2 or 4 (and a divisor of divider)")
    check("resize_rule", one_of("fit", "short_long"), "'fit' or 'short_long'")
    check("resize_short_side", positive, "> 0")
    check("resize_long_side", positive, "> 0")
    if cfg.resize_rule == "short_long":
        check("keep_ratio", lambda v: v == 1, "1 with resize_rule 'short_long' (it keeps the aspect ratio)")
        long_side = cfg.resize_long_side
        canvas = -(-long_side // cfg.divider) * cfg.divider
        for key in ("img_height", "img_width"):
            check(key, lambda v: v >= long_side,
                  f">= resize_long_side ({long_side}) so that the canvas holds every image resized by 'short_long' "
                  f"in either orientation: img_height: {canvas}, img_width: {canvas} (multiples of "
                  f"divider={cfg.divider})")
    check("img_mean", lambda v: len(v) == 3, "3 numbers (one per channel)")
    check("img_std", lambda v: len(v) == 3 and all(s > 0 for s in v), "3 positive numbers")
    check("flip_ratio", unit, "in [0, 1]")
    crop_on = cfg.crop_height > 0 or cfg.crop_width > 0
    check("crop_height", lambda v: v == 0 if not crop_on else 0 < v <= cfg.img_height and v % cfg.divider == 0,
          f"0 together with crop_width, or a positive multiple of divider={cfg.divider} <= img_height")
    check("crop_width", lambda v: v == 0 if not crop_on else 0 < v <= cfg.img_width and v % cfg.divider == 0,
          f"0 together with crop_height, or a positive multiple of divider={cfg.divider} <= img_width")
    check("crop_min_visible", lambda v: 0 < v <= 1, "in (0, 1]")
    check("crop_scale_range", lambda v: len(v) == 2 and 0 < v[0] <= v[1] and (crop_on or v[0] == v[1] == 1),
          "[low, high] with 0 < low <= high, and [1.0, 1.0] without crops (the whole image must fit the canvas)")
    check("crop_rotate90", lambda v: not v or cfg.crop_height == cfg.crop_width,
          "False unless crop_height == crop_width (a turned crop must keep the training shape)")
    check("crop_background_fraction", lambda v: 0 <= v <= 1 and (crop_on or v == 0),
          "in [0, 1], and 0 without crops")
    check("visualize_score_thr", unit, "in [0, 1]")

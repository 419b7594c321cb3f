"""The MindSpore dataset pipeline: sharded, shuffled, batched training and evaluation data (:func:`create_dataset`)."""
from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

import numpy as np

from src.data.annotations import DatasetError
from src.data.batching import prepare_train_sample
from src.data.coco import CocoDataset, ImageRecord, decode_masks, read_image
from src.data.transforms import TransformParams, prepare_image

if TYPE_CHECKING:
    from mindspore.dataset import Dataset

LOGGER = logging.getLogger(__name__)

TRAIN_COLUMNS = ["img", "img_meta", "gt_bboxes", "gt_labels", "gt_valids", "gt_masks"]
EVAL_COLUMNS = ["img", "img_meta", "image_id"]


class ShardSampler:
    """Sample keys ``2 * (epoch * num_items + item_index) + flip_flag`` for one shard, in a new seeded order every
    epoch (epoch counts this sampler's passes from 0; the source reads the item as ``(key // 2) % num_items`` and
    may seed per-sample randomness, such as a crop window, from (epoch, item)).

    The split into shards is fixed at construction (a seeded permutation when shuffling, cut round-robin), so
    shards never overlap whatever each process does with the dataset. With ``pad`` every shard gets
    ceil(n / num_shards) items (the first items of the permutation fill the last slots, so the union is
    everything and every shard runs the same number of steps); without it shard k gets items k, k+S, ...
    Each epoch the shard's items are reshuffled and the flip flags drawn from ``(seed, shard_id, epoch)``.
    """

    def __init__(self, num_items: int, seed: int, shuffle: bool, flip_ratio: float,
                 num_shards: int = 1, shard_id: int = 0, pad: bool = True):
        if not 0 <= shard_id < num_shards:
            raise ValueError(f"shard_id must be in [0, num_shards={num_shards}), got {shard_id}")
        order = np.random.default_rng(seed).permutation(num_items) if shuffle else np.arange(num_items)
        if pad and num_items:
            order = np.resize(order, math.ceil(num_items / num_shards) * num_shards)
        self.items = order[shard_id::num_shards]
        self.num_items = num_items
        self.seed, self.shard_id, self.shuffle, self.flip_ratio = seed, shard_id, shuffle, flip_ratio
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[int]:
        epoch = self.epoch
        rng = np.random.default_rng([self.seed, self.shard_id, epoch])
        self.epoch += 1
        items = rng.permutation(self.items) if self.shuffle else self.items
        flips = rng.random(len(items)) < self.flip_ratio
        return iter([int(2 * (epoch * self.num_items + item) + flip) for item, flip in zip(items, flips)])


class TrainSource:
    """Random-access source: key ``2 * (epoch * len(records) + index) + flip`` (see :class:`ShardSampler`) -> one
    training sample (see :func:`prepare_train_sample`); its crop window is drawn from (seed, epoch, index)."""

    def __init__(self, records: Sequence[ImageRecord], params: TransformParams, seed: int = 0):
        self.records = list(records)
        self.params = params
        self.seed = seed

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: int) -> tuple[np.ndarray, ...]:
        position, flip = divmod(int(key), 2)
        epoch, index = divmod(position, len(self.records))
        record = self.records[index]
        image = read_image(record.path, record.height, record.width)
        rng = np.random.default_rng([self.seed, epoch, index]) if self.params.crops else None
        return prepare_train_sample(image, record.boxes, record.labels, decode_masks(record), self.params, bool(flip),
                                    rng)


class EvalSource:
    """Random-access source: key ``2 * index`` -> (img [3,H,W] f32, img_meta [6] f32, image_id int32)."""

    def __init__(self, paths: Sequence[tuple[int, Path, int, int]], params: TransformParams):
        self.paths = list(paths)
        self.params = params

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        image_id, path, height, width = self.paths[(int(key) // 2) % len(self.paths)]
        img, meta = prepare_image(read_image(path, height, width), self.params)
        return img, meta, np.array(image_id, np.int32)


def train_records(coco: CocoDataset, num_gts: int, dataset_num: int = 0, dataset_divider: int = 0) -> list[ImageRecord]:
    """Records of the images with at least one valid instance (first ``dataset_num``, then every
    ``dataset_divider``-th when set); warns once how many images hold more than ``num_gts`` instances."""
    records = [record for record in map(coco.record, coco.image_ids) if len(record.labels)]
    if dataset_num:
        records = records[:dataset_num]
    if dataset_divider:
        records = records[::dataset_divider]
    crowded = [len(record.labels) for record in records if len(record.labels) > num_gts]
    if crowded:
        LOGGER.warning("%s: %d image(s) have more than num_gts=%d instances (up to %d); the %d largest by mask area "
                       "are kept", coco.annotation_file, len(crowded), num_gts, max(crowded), num_gts)
    return records


def create_dataset(cfg: Mapping[str, Any], data_dir: str | os.PathLike, mode: str = "train", num_shards: int = 1,
                   shard_id: int = 0, shuffle: bool | None = None) -> Dataset:
    """Batched ``mindspore.dataset`` of a COCO subset.

    Args:
        cfg: the config (image geometry, normalisation, coco_classes, num_gts, batch sizes, seed, workers,
            flip_ratio, train_dataset_num/divider).
        data_dir: dataset path (see :func:`resolve_dataset`).
        mode: "train": images with valid instances, flip, batches of ``batch_size`` (remainder dropped), columns
            img, img_meta, gt_bboxes, gt_labels, gt_valids, gt_masks. "eval": every image in file order, no flip,
            batches of ``test_batch_size`` (last one may be smaller), columns img, img_meta, image_id.
        num_shards, shard_id: this process's part of the data (distributed training / evaluation).
        shuffle: default True for train, False for eval.

    Returns:
        a ``mindspore.dataset.Dataset``. Train: img [B,3,H,W] f32, img_meta [B,6] f32, gt_bboxes [B,num_gts,4] f32,
        gt_labels [B,num_gts] int32, gt_valids [B,num_gts] bool, gt_masks [B,num_gts,H/d,W/d] uint8 (d =
        mask_divider). Eval: img, img_meta, image_id [B] int32.
    """
    import mindspore.dataset as ds

    if mode not in ("train", "eval"):
        raise ValueError(f"mode must be 'train' or 'eval', got {mode!r}")
    ds.config.set_seed(int(cfg["seed"]))
    params = TransformParams.from_config(cfg)
    coco = CocoDataset(data_dir, cfg["coco_classes"])
    is_train = mode == "train"
    shuffle = is_train if shuffle is None else shuffle
    if is_train:
        records = train_records(coco, params.num_gts, int(cfg["train_dataset_num"]),
                                int(cfg["train_dataset_divider"]))
        if not records:
            raise DatasetError(f"{coco.annotation_file}: no image has a valid annotation to train on")
        source, columns = TrainSource(records, params, int(cfg["seed"])), TRAIN_COLUMNS
        flip_ratio, batch_size = float(cfg["flip_ratio"]), int(cfg["batch_size"])
    else:
        paths = [(image_id, coco.image_path(image_id), *coco.image_size(image_id)) for image_id in coco.image_ids]
        source, columns = EvalSource(paths, params), EVAL_COLUMNS
        flip_ratio, batch_size = 0.0, int(cfg["test_batch_size"])
    sampler = ShardSampler(len(source), int(cfg["seed"]), shuffle, flip_ratio, num_shards, shard_id, pad=is_train)
    dataset = ds.GeneratorDataset(source, column_names=columns, sampler=sampler,
                                  num_parallel_workers=int(cfg["num_parallel_workers"]),
                                  python_multiprocessing=bool(cfg["python_multiprocessing"]))
    return dataset.batch(batch_size, drop_remainder=is_train)

"""The MindSpore dataset pipeline: sharded, shuffled, batched training and evaluation data (:func:`create_dataset`)."""
from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, List, Mapping, Sequence

import numpy as np

from src.data.annotations import DatasetError
from src.data.batching import prepare_train_sample
from src.data.coco import CocoDataset, ImageRecord, decode_masks, read_image
from src.data.image_check import check_images
from src.data.transforms import TransformParams, prepare_image

if TYPE_CHECKING:
    from mindspore.dataset import Dataset

LOGGER = logging.getLogger(__name__)

TRAIN_COLUMNS = ["img", "img_meta", "gt_bboxes", "gt_labels", "gt_valids", "gt_masks"]
EVAL_COLUMNS = ["img", "img_meta", "image_id"]


class ShardSampler:
    """Sample keys ``2 * (epoch * num_items + item_index) + flip_flag`` for one shard, epoch after epoch: the 0-based
    epochs ``first_epoch`` .. ``first_epoch + num_epochs - 1``, each in a new seeded order (the source reads the item
    as ``(key // 2) % num_items`` and may seed per-sample randomness, such as a crop window, from (epoch, item)).

    The split into shards is fixed at construction (a seeded permutation when shuffling, cut round-robin), so
    shards never overlap whatever each process does with the dataset. With ``pad`` every shard gets
    ceil(n / num_shards) items (the first items of the permutation fill the last slots, so the union is
    everything and every shard runs the same number of steps); without it shard k gets items k, k+S, ...
    Each epoch the shard's items are reshuffled and the flip flags drawn from ``(seed, shard_id, epoch)``.
    ``epoch_length`` keeps the first items of each epoch (whole batches: a batch never straddles two epochs); a
    resumed run leaves out the first ``skip`` keys of its first epoch, which the interrupted run had trained on,
    without reading them.

    Iterating has no side effect: every pass yields the same stream (MindSpore iterates a sampler more than once
    while it builds a pipeline).
    """

    def __init__(self, num_items: int, seed: int, shuffle: bool, flip_ratio: float, num_shards: int = 1,
                 shard_id: int = 0, pad: bool = True, first_epoch: int = 0, num_epochs: int = 1, skip: int = 0,
                 epoch_length: int | None = None):
        if not 0 <= shard_id < num_shards:
            raise ValueError(f"shard_id must be in [0, num_shards={num_shards}), got {shard_id}")
        order = np.random.default_rng(seed).permutation(num_items) if shuffle else np.arange(num_items)
        if pad and num_items:
            order = np.resize(order, math.ceil(num_items / num_shards) * num_shards)
        self.items = order[shard_id::num_shards]
        self.num_items = num_items
        self.seed, self.shard_id, self.shuffle, self.flip_ratio = seed, shard_id, shuffle, flip_ratio
        self.epoch_length = len(self.items) if epoch_length is None else min(int(epoch_length), len(self.items))
        if not 0 <= skip <= self.epoch_length:
            raise ValueError(f"skip must be in [0, {self.epoch_length}], got {skip}")
        self.first_epoch, self.num_epochs, self.skip = first_epoch, num_epochs, skip

    def __len__(self) -> int:
        return self.num_epochs * self.epoch_length - self.skip

    def epoch_keys(self, epoch: int) -> List[int]:
        """The keys of one 0-based epoch, in order."""
        rng = np.random.default_rng([self.seed, self.shard_id, epoch])
        items = rng.permutation(self.items) if self.shuffle else self.items
        flips = rng.random(len(items)) < self.flip_ratio
        return [int(2 * (epoch * self.num_items + item) + flip)
                for item, flip in zip(items[:self.epoch_length], flips[:self.epoch_length])]

    def __iter__(self) -> Iterator[int]:
        for epoch in range(self.first_epoch, self.first_epoch + self.num_epochs):
            keys = self.epoch_keys(epoch)
            yield from keys[self.skip:] if epoch == self.first_epoch else keys


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
        record, image = self._readable(index)
        rng = np.random.default_rng([self.seed, epoch, index]) if self.params.crops else None
        return prepare_train_sample(image, record.boxes, record.labels, decode_masks(record), self.params, bool(flip),
                                    rng)

    def _readable(self, index: int) -> tuple[ImageRecord, np.ndarray]:
        """(record, image) of ``index``, or of the next readable record when this image cannot be read any more (a
        file that broke after the start-up check: logged, and the run goes on)."""
        for offset in range(len(self.records)):
            record = self.records[(index + offset) % len(self.records)]
            try:
                return record, read_image(record.path, record.height, record.width)
            except DatasetError as error:
                LOGGER.warning("%s; training on the next image in its place", error)
        raise DatasetError("no training image can be read any more")


class EvalSource:
    """Random-access source: key ``2 * index`` -> (img [3,H,W] f32, img_meta [6] f32, image_id int64)."""

    def __init__(self, paths: Sequence[tuple[int, Path, int, int]], params: TransformParams):
        self.paths = list(paths)
        self.params = params

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        image_id, path, height, width = self.paths[(int(key) // 2) % len(self.paths)]
        img, meta = prepare_image(read_image(path, height, width), self.params)
        return img, meta, np.array(image_id, np.int64)


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


def report_bad_images(annotation_file: Path, images: Sequence[tuple[Path, int, int]], skip: bool) -> set[Path]:
    """Check the (path, height, width) image files (:func:`check_images`); returns the bad paths when ``skip``
    (after a warning naming each), raises DatasetError naming each otherwise."""
    bad = check_images(images)
    if not bad:
        return set()
    listing = "\n".join(f"  {path}: {reason}" for path, reason in bad)
    if not skip:
        raise DatasetError(f"{annotation_file}: {len(bad)} of {len(images)} image file(s) are unusable:\n{listing}\n"
                           "Fix or remove them, or set skip_bad_images: 1 to go on without them.")
    LOGGER.warning("%s: leaving out %d of %d image file(s) (skip_bad_images: 1):\n%s", annotation_file, len(bad),
                   len(images), listing)
    return {path for path, _ in bad}


def create_dataset(cfg: Mapping[str, Any], data_dir: str | os.PathLike, mode: str = "train", num_shards: int = 1,
                   shard_id: int = 0, shuffle: bool | None = None, first_epoch: int = 0, num_epochs: int = 1,
                   skip_batches: int = 0) -> Dataset:
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
        first_epoch, num_epochs, skip_batches: train only: the epochs of the stream (first_epoch counts the finished
            epochs) one after the other, as one pass of the dataset; ``skip_batches`` batches of the first one left
            out unread (to resume, see :class:`ShardSampler`). The last incomplete batch of each epoch is dropped.

    Returns:
        a ``mindspore.dataset.Dataset``. Train: img [B,3,H,W] f32, img_meta [B,6] f32, gt_bboxes [B,num_gts,4] f32,
        gt_labels [B,num_gts] int32, gt_valids [B,num_gts] bool, gt_masks [B,num_gts,H/d,W/d] uint8 (d =
        mask_divider). Eval: img, img_meta, image_id [B] int64 (COCO ids may exceed 32 bits).
    """
    import mindspore.dataset as ds

    if mode not in ("train", "eval"):
        raise ValueError(f"mode must be 'train' or 'eval', got {mode!r}")
    ds.config.set_seed(int(cfg["seed"]))
    params = TransformParams.from_config(cfg)
    coco = CocoDataset(data_dir, cfg["coco_classes"])
    is_train = mode == "train"
    shuffle = is_train if shuffle is None else shuffle
    skip_bad = bool(cfg["skip_bad_images"])
    if is_train:
        records = train_records(coco, params.num_gts, int(cfg["train_dataset_num"]),
                                int(cfg["train_dataset_divider"]))
        bad = report_bad_images(coco.annotation_file, [(r.path, r.height, r.width) for r in records], skip_bad)
        records = [record for record in records if record.path not in bad]
        if not records:
            raise DatasetError(f"{coco.annotation_file}: no image has a valid annotation to train on")
        source, columns = TrainSource(records, params, int(cfg["seed"])), TRAIN_COLUMNS
        flip_ratio, batch_size = float(cfg["flip_ratio"]), int(cfg["batch_size"])
    else:
        paths = [(image_id, coco.image_path(image_id), *coco.image_size(image_id)) for image_id in coco.image_ids]
        bad = report_bad_images(coco.annotation_file, [entry[1:] for entry in paths], skip_bad)
        paths = [entry for entry in paths if entry[1] not in bad]
        if not paths:
            raise DatasetError(f"{coco.annotation_file}: no image left to evaluate on")
        source, columns = EvalSource(paths, params), EVAL_COLUMNS
        flip_ratio, batch_size = 0.0, int(cfg["test_batch_size"])
    if is_train:
        epoch_length = math.ceil(len(source) / num_shards) // batch_size * batch_size
        if not epoch_length:
            raise DatasetError(f"{coco.annotation_file}: fewer training images ({len(source)} over {num_shards} "
                               f"process(es)) than batch_size={batch_size}")
        sampler = ShardSampler(len(source), int(cfg["seed"]), shuffle, flip_ratio, num_shards, shard_id,
                               first_epoch=first_epoch, num_epochs=num_epochs, skip=skip_batches * batch_size,
                               epoch_length=epoch_length)
    else:
        sampler = ShardSampler(len(source), int(cfg["seed"]), shuffle, flip_ratio, num_shards, shard_id, pad=False)
    dataset = ds.GeneratorDataset(source, column_names=columns, sampler=sampler,
                                  num_parallel_workers=int(cfg["num_parallel_workers"]),
                                  python_multiprocessing=bool(cfg["python_multiprocessing"]))
    return dataset.batch(batch_size, drop_remainder=is_train)

"""A stand-in detector for training-loop tests: the MsRcnn / MsRcnnInfer interfaces (six losses; inference outputs)
on a 1x1 convolution, compiled in seconds, with losses that can be made to spike or turn NaN at chosen calls."""
from typing import Sequence

import mindspore as ms
import numpy as np
from mindspore import Parameter, Tensor, nn, ops

from src.model_utils.config import Config


class ToyDetector(nn.Cell):
    """Six losses of a 1x1 convolution regressing each image's share of valid gt slots (a mean over the images, so
    that a batch split over processes has the same mean gradient). ``factors[i]`` multiplies the losses of call
    i + 1 (the last factor holds for the calls after it; e.g. ``[1, 1, nan]``: NaN from the third call on)."""

    def __init__(self, cfg, factors: Sequence[float] = (1.0,)):
        super().__init__()
        self.cfg = cfg
        self.conv = nn.Conv2d(3, 1, 1, has_bias=True, weight_init="zeros", bias_init="zeros")
        self.frozen = Parameter(Tensor(np.ones(3), ms.float32), name="frozen", requires_grad=False)
        self.calls = Parameter(Tensor(0, ms.int32), name="calls", requires_grad=False)
        self.factors = Tensor(np.asarray(factors, np.float32))
        self.last = len(factors) - 1

    def construct(self, img, img_meta, gt_bboxes, gt_labels, gt_valids, gt_masks):
        ops.assign_add(self.calls, Tensor(1, ms.int32))
        prediction = self.conv(img[:, :, ::8, ::8] / 100.0).mean(axis=(1, 2, 3))
        target = ops.cast(gt_valids, ms.float32).mean(axis=1)
        loss = (ops.square(prediction - target).mean() + 0.01) * self.factors[ops.minimum(self.calls - 1, self.last)]
        return loss, loss * 0.5, loss * 0.25, loss * 0.125, loss * 2.0, loss * 0.1


class ToyInfer(nn.Cell):
    """One detection per image: the whole scaled content, label 1, full mask, score 0.9, predicted IoU 0.8."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.max_per_img = model.cfg.test_cfg.rcnn.max_per_img

    def construct(self, img, img_meta):
        batch = img.shape[0]
        boxes = ops.zeros((batch, self.max_per_img, 4), ms.float32)
        boxes[:, 0, 2] = img_meta[:, 3]
        boxes[:, 0, 3] = img_meta[:, 2]
        labels = ops.ones((batch, self.max_per_img), ms.int32)
        scores = ops.ones((batch, self.max_per_img), ms.float32) * 0.9 + self.model.conv.bias * 0.0
        masks = ops.ones((batch, self.max_per_img, 28, 28), ms.float32)
        ious = ops.ones((batch, self.max_per_img), ms.float32) * 0.8
        valids = ops.zeros((batch, self.max_per_img), ms.bool_)
        valids[:, 0] = True
        return boxes, labels, scores, masks, ious, valids


def make_cfg(tiny_cfg, tmp_path, data_dir, **overrides) -> Config:
    values = {**tiny_cfg.to_dict(), "train_dataset": str(data_dir), "val_dataset": str(data_dir),
              "train_outputs": str(tmp_path / "experiments"), "brief": "test", "lr": 0.05, "warmup_step": 0,
              "lr_steps": [100], "epoch_size": 2, "log_interval": 1, "save_every": 1, "keep_checkpoint_max": 2,
              "run_eval": 1, "eval_every": 1, "loss_scale": 1.0, "weight_decay": 0.0, "resume": ""}
    values.update(overrides)
    return Config.from_dict(values)

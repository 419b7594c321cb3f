"""Training wrappers: the optimizer and one training step (loss, gradients, loss scale, clipping, accumulation).

The detector returns six losses, each already multiplied by its ``loss_weight``; the training loss is their sum.
Gradients are taken of ``loss * loss_scale`` and divided back by the scale (no division with a fixed scale of 1: one
small operation per parameter saved). A step whose gradients hold inf/NaN is an overflow (checked on all gradients
at once: one check instead of one per parameter): the update is skipped (and, with ``dynamic_loss_scale``, the scale
is halved; it doubles after 1000 clean steps). A step whose loss is not finite or above the ``max_loss`` the host
passes in (the divergence guard's bound) is rejected: nothing is updated, and the host decides what follows.
``grad_clip > 0`` clips the global gradient norm. With ``accumulate_step = k > 1`` every batch adds its
gradients to buffers and every k-th batch applies their mean (:class:`ApplyAccumulatedGradients`), so the effective
batch is ``k * batch_size``. In distributed runs gradients are averaged over devices before they are applied.

Weight decay: parameters with at most one dimension (biases, normalisation gamma/beta) are not decayed; every
convolution and fully connected weight is. Frozen parameters (``requires_grad=False``) never reach the optimizer.
"""
import math
from typing import Dict, List, NamedTuple, Sequence, Tuple

import mindspore as ms
import numpy as np
from mindspore import Parameter, ParameterTuple, Tensor, nn, ops

from src.model_utils.config import Config

LOSS_NAMES = ("loss_rpn_cls", "loss_rpn_bbox", "loss_cls", "loss_bbox", "loss_mask", "loss_mask_iou")
LOSS_SCALE_FACTOR = 2
LOSS_SCALE_WINDOW = 1000


def split_weight_decay(params: Sequence[Parameter]) -> Tuple[List[Parameter], List[Parameter]]:
    """Split trainable parameters into (decayed: ndim > 1, not decayed: biases and norm affine, ndim <= 1)."""
    trainable = [param for param in params if param.requires_grad]
    decayed = [param for param in trainable if len(param.shape) > 1]
    not_decayed = [param for param in trainable if len(param.shape) <= 1]
    return decayed, not_decayed


class AdamW(nn.Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter, "Decoupled Weight Decay Regularization", 2019).

    ``nn.Adam`` adds ``weight_decay * w`` to the gradient, which its normalisation then rescales per weight; here
    every weight of the ``"weight_decay"`` groups is instead multiplied by ``1 - lr * weight_decay`` before the Adam
    update of the same step (the order of PyTorch's ``AdamW``), so the decay is the same for every weight whatever
    its gradients. ``groups``: ``nn.Optimizer`` parameter groups, each with its ``weight_decay``; ``learning_rate``:
    one rate per update ([steps] float32 tensor).
    """

    def __init__(self, groups: Sequence[dict], learning_rate: Tensor):
        super().__init__([dict(group, weight_decay=0.0) for group in groups], learning_rate=learning_rate)
        self.decay_factors = tuple(float(group["weight_decay"]) for group in groups for _ in group["params"])
        self.assign = ops.Assign()

    def construct(self, gradients: Tuple[Tensor, ...]) -> Tensor:
        lr = self.get_lr()
        for param, decay in zip(self._parameters, self.decay_factors):
            if decay > 0.0:
                self.assign(param, param * (1.0 - lr * decay))
        return super().construct(gradients)


def build_optimizer(cfg: Config, params: Sequence[Parameter], lr: np.ndarray) -> nn.Optimizer:
    """Momentum SGD (``opt_type: sgd``), Adam (``adam``: weight decay added to the gradient) or :class:`AdamW`
    (``adamw``: decoupled weight decay) over the trainable ``params`` with the per-update ``lr`` array.

    ``weight_decay`` applies to weights only (see :func:`split_weight_decay`).
    """
    decayed, not_decayed = split_weight_decay(params)
    if not decayed and not not_decayed:
        raise ValueError("optimizer: the model has no trainable parameters")
    groups = [group for group in ({"params": decayed, "weight_decay": cfg.weight_decay},
                                  {"params": not_decayed, "weight_decay": 0.0}) if group["params"]]
    learning_rate = Tensor(np.asarray(lr, dtype=np.float32))
    if cfg.opt_type == "sgd":
        return nn.Momentum(groups, learning_rate=learning_rate, momentum=cfg.momentum)
    if cfg.opt_type == "adam":
        return nn.Adam(groups, learning_rate=learning_rate)
    if cfg.opt_type == "adamw":
        return AdamW(groups, learning_rate)
    raise ValueError(f"opt_type: expected 'sgd', 'adam' or 'adamw', got '{cfg.opt_type}'")


def _gradient_reducer(weights: ParameterTuple, run_distribute: bool) -> nn.Cell:
    """Averages gradients over devices in distributed runs; identity otherwise."""
    if not run_distribute:
        return nn.Identity()
    from mindspore.communication import get_group_size
    from mindspore.communication.management import GlobalComm
    return nn.DistributedGradReducer(weights, mean=True, degree=get_group_size(), group=GlobalComm.WORLD_COMM_GROUP)


class AllReduceSum(nn.Cell):
    """Element-wise sum of a float32 tensor over all processes (the AllReduce MindSpore's CPU and GPU backends both
    support)."""

    def __init__(self) -> None:
        super().__init__()
        self.all_reduce = ops.AllReduce()

    def construct(self, values: Tensor) -> Tensor:
        return self.all_reduce(values)


class _MeanOverDevices(nn.Cell):
    """Mean of a scalar over the devices of a distributed run."""

    def __init__(self, group_size: int):
        super().__init__()
        self.sum = AllReduceSum()
        self.inverse_size = 1.0 / group_size

    def construct(self, value: Tensor) -> Tensor:
        return self.sum(value) * self.inverse_size


def _loss_mean(run_distribute: bool) -> nn.Cell:
    """The total loss every device sees: its own, or in distributed runs the mean over devices (so that every device
    takes the same reject decision and keeps the same running mean)."""
    if not run_distribute:
        return nn.Identity()
    from mindspore.communication import get_group_size
    return _MeanOverDevices(get_group_size())


class TrainOneStepCell(nn.Cell):
    """One training step of ``network`` (a detector returning the six weighted losses).

    ``construct(max_loss, *inputs)``, where ``inputs`` are the network's (the train batch layout, then optionally the
    sampling priorities) and ``max_loss`` a float32 scalar (inf: no bound), returns ``(total_loss scalar f32, losses
    [6] f32 in LOSS_NAMES order, overflow scalar bool, loss_scale scalar f32, rejected scalar bool)``; ``rejected``
    (overflow, a non-finite total or one above ``max_loss``) means nothing was updated or accumulated. In
    distributed runs ``total_loss`` is the mean over devices and the six losses are this device's.
    With ``accumulate_step == 1`` the optimizer is applied here; otherwise gradients go to ``accu_grads`` and
    :class:`ApplyAccumulatedGradients` applies them.
    """

    def __init__(self, network: nn.Cell, optimizer: nn.Optimizer, loss_scale: float, dynamic_loss_scale: bool,
                 grad_clip: float, accumulate_step: int, run_distribute: bool):
        super().__init__(auto_prefix=False)
        self.network = network
        self.optimizer = optimizer
        self.weights = optimizer.parameters
        self.grad_clip = float(grad_clip)
        self.accumulate = accumulate_step > 1
        self.dynamic_loss_scale = bool(dynamic_loss_scale)
        self.unscale = self.dynamic_loss_scale or float(loss_scale) != 1.0
        self.scale_sense = Parameter(Tensor(loss_scale, ms.float32), name="scale_sense", requires_grad=False)
        if self.dynamic_loss_scale:
            self.loss_scale_updater = nn.DynamicLossScaleUpdateCell(loss_scale, LOSS_SCALE_FACTOR, LOSS_SCALE_WINDOW)
        if self.accumulate:
            self.accu_grads = self.weights.clone(prefix="accu_grads", init="zeros")
            self.grad_reducer = nn.Identity()
        else:
            self.grad_reducer = _gradient_reducer(self.weights, run_distribute)
        self.loss_mean = _loss_mean(run_distribute)
        self.grad_fn = ops.value_and_grad(self.scaled_loss, None, self.weights, has_aux=True)

    def scaled_loss(self, *inputs: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """(total * loss_scale, total, six losses): the first output is differentiated, the others are reported."""
        losses = self.network(*inputs)
        total = losses[0] + losses[1] + losses[2] + losses[3] + losses[4] + losses[5]
        return total * self.scale_sense, total, ops.stack(losses)

    def construct(self, max_loss: Tensor, *inputs: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        (_, total, losses), grads = self.grad_fn(*inputs)
        total = self.loss_mean(total)
        scale = self.scale_sense.value()
        if self.unscale:
            grads = tuple(grad / scale for grad in grads)
        grads = self.grad_reducer(grads)
        finite = ops.isfinite(ops.concat([ops.reshape(grad, (-1,)) for grad in grads])).all()
        overflow = ops.logical_not(finite)
        if self.dynamic_loss_scale:
            overflow = self.loss_scale_updater(self.scale_sense, overflow)
        rejected = ops.logical_or(overflow, ops.logical_not(ops.logical_and(ops.isfinite(total), total <= max_loss)))
        if self.accumulate:
            if not rejected:
                for accumulator, grad in zip(self.accu_grads, grads):
                    ops.assign_add(accumulator, grad)
        else:
            if self.grad_clip > 0:
                grads = ops.clip_by_global_norm(grads, self.grad_clip)
            if not rejected:
                self.optimizer(grads)
        return total, losses, overflow, scale, rejected


class ApplyAccumulatedGradients(nn.Cell):
    """Applies the mean of the gradients accumulated by ``train_cell`` over ``accumulate_step`` batches, then zeroes
    the buffers. ``construct()`` takes nothing and returns the global norm of the applied (unclipped) gradients."""

    def __init__(self, train_cell: TrainOneStepCell, accumulate_step: int, grad_clip: float, run_distribute: bool):
        super().__init__(auto_prefix=False)
        self.optimizer = train_cell.optimizer
        self.accu_grads = train_cell.accu_grads
        self.inverse_steps = 1.0 / accumulate_step
        self.grad_clip = float(grad_clip)
        self.grad_reducer = _gradient_reducer(train_cell.weights, run_distribute)

    def construct(self) -> Tensor:
        grads = tuple(accumulator * self.inverse_steps for accumulator in self.accu_grads)
        grads = self.grad_reducer(grads)
        norm = ops.sqrt(ops.stack([ops.square(grad).sum() for grad in grads]).sum())
        if self.grad_clip > 0:
            grads = ops.clip_by_global_norm(grads, self.grad_clip)
        self.optimizer(grads)
        for accumulator in self.accu_grads:
            ops.assign(accumulator, ops.zeros_like(accumulator))
        return norm


class StepResult(NamedTuple):
    """What one batch reports: summed loss, the six losses, whether the gradients overflowed, the loss scale,
    whether the optimizer was applied after this batch and whether the batch was rejected (nothing updated)."""
    total_loss: float
    losses: np.ndarray
    overflow: bool
    loss_scale: float
    updated: bool
    rejected: bool


class TrainStep:
    """Host-side driver of a training step: ``step(batch, batch_index_in_epoch)`` runs the compiled cell(s) and
    returns a :class:`StepResult`. ``cell`` holds every parameter to checkpoint (model, optimizer state, loss scale,
    accumulation buffers).

    For a network with ``priority_shapes`` (the detector) the samplers' priorities are drawn here, from
    ``(cfg.seed, cfg.rank_id, steps_taken)``: the stream depends only on how many steps were taken, so a run resumed
    with ``steps_taken`` set to its checkpoint's global step draws exactly what the interrupted run would have.

    ``cfg.gt_buckets`` (sizes below ``num_gts``): a batch whose valid ground truths all sit in the first k slots, k
    the smallest bucket that holds them, runs with its ground-truth columns cut to k, so the anchor and proposal
    assignment do not work through padding; one graph is compiled per bucket used. The priorities are those of the
    full batch, cut the same way, so the losses and updates are those of the uncut batch.
    """

    def __init__(self, network: nn.Cell, optimizer: nn.Optimizer, cfg: Config):
        self.network = network
        self.seed, self.rank = int(cfg.seed), int(cfg.rank_id)
        self.steps_taken = 0
        self.gt_buckets = sorted({int(size) for size in cfg.gt_buckets if 0 < int(size) < int(cfg.num_gts)})
        self.accumulate_step = cfg.accumulate_step
        self.cell = TrainOneStepCell(network, optimizer, cfg.loss_scale, cfg.dynamic_loss_scale, cfg.grad_clip,
                                     cfg.accumulate_step, bool(cfg.run_distribute))
        self.cell.set_train(True)
        self.apply_cell = None
        if self.accumulate_step > 1:
            self.apply_cell = ApplyAccumulatedGradients(self.cell, cfg.accumulate_step, cfg.grad_clip,
                                                        bool(cfg.run_distribute))

    def set_train(self, mode: bool = True) -> None:
        """Switch the wrapped network between training and inference behaviour."""
        self.cell.set_train(mode)

    def priorities(self, batch_size: int, num_gts: int, used_gts: int) -> Tuple[Tensor, ...]:
        """The samplers' priorities for the next step, drawn for ``num_gts`` ground-truth slots and cut to
        ``used_gts`` (none for a network without ``priority_shapes``)."""
        if not hasattr(self.network, "priority_shapes"):
            return ()
        rng = np.random.default_rng([self.seed, self.rank, self.steps_taken])
        full = [rng.random(shape, dtype=np.float32) for shape in self.network.priority_shapes(batch_size, num_gts)]
        used = self.network.priority_shapes(batch_size, used_gts)
        return tuple(Tensor(np.ascontiguousarray(values[:, :shape[1]])) for values, shape in zip(full, used))

    def fit_gts(self, batch: Sequence[Tensor]) -> List[Tensor]:
        """The batch with its ground-truth columns (gt_bboxes, gt_labels, gt_valids, gt_masks) cut to the smallest
        bucket holding every valid one (the batch itself without buckets or when none is small enough)."""
        if not self.gt_buckets or not hasattr(self.network, "priority_shapes"):
            return list(batch)
        valids = batch[4].asnumpy()
        used = int(np.flatnonzero(valids.any(axis=0)).max()) + 1 if valids.any() else 1
        bucket = next((size for size in self.gt_buckets if size >= used), None)
        if bucket is None:
            return list(batch)
        return [*batch[:2], *(Tensor(np.ascontiguousarray(column.asnumpy()[:, :bucket])) for column in batch[2:6])]

    def step(self, batch: Sequence[Tensor], batch_index: int, max_loss: float = math.inf) -> StepResult:
        """Run one batch; with accumulation the update happens after batches ``k-1, 2k-1, ...`` of the epoch. A total
        loss above ``max_loss`` (or not finite) rejects the batch: nothing is updated."""
        fitted = self.fit_gts(batch)
        priorities = self.priorities(int(batch[0].shape[0]), int(batch[2].shape[1]), int(fitted[2].shape[1]))
        total, losses, overflow, scale, rejected = self.cell(Tensor(max_loss, ms.float32), *fitted, *priorities)
        self.steps_taken += 1
        rejected = bool(rejected.asnumpy())
        updated = not rejected
        if self.apply_cell is not None:
            updated = (batch_index + 1) % self.accumulate_step == 0
            if updated:
                self.apply_cell()
        return StepResult(float(total.asnumpy()), losses.asnumpy().astype(np.float64), bool(overflow.asnumpy()),
                          float(scale.asnumpy()), updated, rejected)

    def discard_accumulated(self) -> None:
        """Zero the accumulation buffers (at an epoch end that does not close an accumulation window)."""
        if self.apply_cell is not None:
            for accumulator in self.cell.accu_grads:
                accumulator.set_data(ops.zeros_like(accumulator))


def count_parameters(cell: nn.Cell) -> Tuple[int, int]:
    """(number of parameter values, of which trainable) of ``cell``."""
    total = trainable = 0
    for parameter in cell.get_parameters():
        total += int(parameter.size)
        trainable += int(parameter.size) if parameter.requires_grad else 0
    return total, trainable


def build_detector(cfg: Config) -> Tuple[nn.Cell, nn.Cell]:
    """(MsRcnn for the training input size (the crop window with crop training), MsRcnnInfer for img_height x
    img_width sharing its parameters; both use the same parameter names)."""
    from src.blocks.ms_rcnn import MsRcnn, MsRcnnInfer

    model = MsRcnn(cfg)
    return model, MsRcnnInfer(model)


def load_weights(model: nn.Cell, param_dict: Dict[str, Parameter], finetune: bool = False,
                 source: str = "checkpoint") -> Tuple[List[str], List[str]]:
    """Copy matching weights of ``param_dict`` into ``model`` (a backbone-only checkpoint may name parameters
    without the ``backbone.`` prefix).

    With ``finetune`` the entries whose shape differs from the model's (the class-dependent layers when
    ``num_classes`` differs: bbox head classifier/regressor, mask logits, MaskIoU output) are skipped; without it a
    shape mismatch is a ValueError naming the parameters. Returns (model parameters not loaded, skipped entries).
    """
    targets = {param.name: param for param in model.get_parameters()}
    entries = dict(param_dict)
    if not set(entries) & set(targets):
        entries = {f"backbone.{name}": value for name, value in entries.items()}
    mismatched = [name for name, value in entries.items()
                  if name in targets and tuple(value.shape) != tuple(targets[name].shape)]
    if mismatched and not finetune:
        details = ", ".join(f"{name} {tuple(entries[name].shape)} vs {tuple(targets[name].shape)}"
                            for name in mismatched[:6])
        raise ValueError(f"{source}: {len(mismatched)} parameter(s) have another shape than the model ({details}); "
                         f"set finetune: 1 to drop class-dependent layers when num_classes differs")
    loaded = set()
    for name, value in entries.items():
        if name in targets and name not in mismatched:
            targets[name].set_data(Tensor(value.asnumpy(), targets[name].dtype))
            loaded.add(name)
    skipped = sorted(set(entries) - loaded)
    return sorted(set(targets) - loaded), skipped

"""MaskIoU head of Mask Scoring R-CNN (Huang et al., 2019): predicts the IoU of each predicted mask with its gt."""
import mindspore as ms
from mindspore import Tensor, nn, ops

from src.blocks.conv import Conv2d
from src.blocks.initialization import kaiming_init, normal_init
from src.blocks.utils import masked_mean, select_class
from src.model_utils.config import Config

MIN_AREA = 1e-7


class MaskIoUHead(nn.Cell):
    """concat(mask_feats [P, C, S, S], max_pool 2x2 stride 2 of mask_prob [P, 1, 2S, 2S]) -> num_convs x (3x3 conv,
    padding 1, ReLU; the last with stride 2) -> flatten -> num_fcs x (fc, ReLU) -> fc to num_classes - 1 IoUs.

    Args: head_cfg (the ``mask_iou_head`` config: num_convs, num_fcs, roi_feat_size (S), in_channels (C),
    conv_out_channels, fc_out_channels, loss_iou.loss_weight), num_classes (with background).
    Initialisation: convs Kaiming normal (fan_out, ReLU); hidden fcs Kaiming uniform (fan_in, leaky ReLU slope 1);
    output fc N(0, 0.01^2); zero biases.
    """

    def __init__(self, head_cfg: Config, num_classes: int):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes: expected >= 2 (background and at least one class), got {num_classes}")
        if head_cfg.num_convs < 1:
            raise ValueError(f"mask_iou_head.num_convs: expected >= 1 (the last conv halves the size), "
                             f"got {head_cfg.num_convs}")
        self.num_classes = num_classes
        self.loss_weight = float(head_cfg.loss_iou.loss_weight)
        channels = head_cfg.conv_out_channels
        layers = []
        for index in range(head_cfg.num_convs):
            in_channels = head_cfg.in_channels + 1 if index == 0 else channels
            stride = 2 if index == head_cfg.num_convs - 1 else 1
            layers.append(kaiming_init(Conv2d(in_channels, channels, 3, stride=stride, pad_mode="pad", padding=1,
                                              has_bias=True)))
            layers.append(nn.ReLU())
        self.convs = nn.SequentialCell(layers)
        pooled_size = (head_cfg.roi_feat_size + 1) // 2
        fcs = []
        in_features = channels * pooled_size * pooled_size
        for _ in range(head_cfg.num_fcs):
            fcs.append(kaiming_init(nn.Dense(in_features, head_cfg.fc_out_channels), mode="fan_in",
                                    nonlinearity="leaky_relu", negative_slope=1.0, distribution="uniform"))
            fcs.append(nn.ReLU())
            in_features = head_cfg.fc_out_channels
        self.fcs = nn.SequentialCell(fcs) if fcs else nn.Identity()
        self.fc_mask_iou = normal_init(nn.Dense(in_features, num_classes - 1), std=0.01)
        self.max_pool = nn.MaxPool2d(kernel_size=2, stride=2)

    def construct(self, mask_feats: Tensor, mask_prob: Tensor) -> Tensor:
        """mask_feats [P, C, S, S], mask_prob [P, 1, 2S, 2S] (predicted mask probabilities of the chosen class)
        -> mask_iou_pred [P, num_classes - 1]."""
        hidden = ops.concat((mask_feats, self.max_pool(mask_prob)), axis=1)
        hidden = self.convs(hidden)
        hidden = self.fcs(ops.reshape(hidden, (hidden.shape[0], -1)))
        return self.fc_mask_iou(hidden)

    def get_targets(self, mask_prob: Tensor, mask_targets: Tensor, area_ratio: Tensor, thr: float) -> Tensor:
        """IoU targets [P] (not differentiated).

        Inputs: mask_prob [P, M, M] (probability of the gt class), mask_targets [P, M, M] in {0, 1} (gt inside the
        RoI), area_ratio [P] = gt mask area inside the RoI / whole gt mask area, thr (binarises mask_prob).
        IoU = overlap / (pred_area + gt_area - overlap), with overlap and pred_area counted on the M x M crop and
        gt_area = mask_targets.sum() / area_ratio the area of the whole instance in crop pixels (as in the paper).
        Divisions are guarded: a zero area_ratio or an empty union gives IoU 0.
        """
        mask_prob = ops.stop_gradient(mask_prob)
        mask_targets = ops.stop_gradient(ops.cast(mask_targets, ms.float32))
        area_ratio = ops.stop_gradient(ops.cast(area_ratio, ms.float32))
        pred_masks = ops.cast(mask_prob > thr, ms.float32)
        pred_areas = pred_masks.sum(axis=(1, 2))
        overlaps = (pred_masks * mask_targets).sum(axis=(1, 2))
        gt_areas = mask_targets.sum(axis=(1, 2)) / ops.maximum(area_ratio, MIN_AREA)
        unions = pred_areas + gt_areas - overlaps
        return ops.stop_gradient(overlaps / ops.maximum(unions, MIN_AREA))

    def loss(self, mask_iou_pred: Tensor, iou_targets: Tensor, labels: Tensor, weights: Tensor) -> Tensor:
        """L2 loss of the gt-class IoU prediction, linear beyond an error of 1.

        Inputs: mask_iou_pred [P, num_classes - 1], iou_targets [P], labels [P] int32 (1..), weights [P] f32 (1 for
        valid positives). Returns e^2 for |e| <= 1 and 2|e| - 1 beyond (e = prediction - target), averaged over the
        valid positives, times loss_iou.loss_weight; exactly 0 without valid positives. Targets lie in [0, 1], so a
        sane prediction always has |e| <= 1 and the loss is the paper's L2; a wild one (a diverging step can push
        predictions to 1e6) gets a gradient of at most 2 instead of 2|e|, which would feed the divergence back into
        the shared features.
        """
        error = select_class(mask_iou_pred, labels) - ops.stop_gradient(iou_targets)
        abs_error = ops.abs(error)
        bounded = ops.where(abs_error <= 1.0, ops.square(error), 2.0 * abs_error - 1.0)
        return masked_mean(bounded, weights) * self.loss_weight

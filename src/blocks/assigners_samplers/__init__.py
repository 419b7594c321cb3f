"""Assignment of boxes to ground truth and sampling of training boxes."""
from src.blocks.assigners_samplers.assigner_sampler import AssignerSampler
from src.blocks.assigners_samplers.mask_assigner_sampler import MaskAssignerSampler
from src.blocks.assigners_samplers.max_iou_assigner import MaxIoUAssigner, bbox_overlaps
from src.blocks.assigners_samplers.random_sampler import RandomSampler

__all__ = ["AssignerSampler", "MaskAssignerSampler", "MaxIoUAssigner", "RandomSampler", "bbox_overlaps"]

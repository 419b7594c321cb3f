"""Shared operations of the detector heads."""
from src.blocks.utils.utils import grouped_nms_keep, masked_mean, multiclass_nms, select_class, sorted_nms_keep

__all__ = ["grouped_nms_keep", "masked_mean", "multiclass_nms", "select_class", "sorted_nms_keep"]

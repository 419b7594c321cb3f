"""Shared operations of the detector heads."""
from src.blocks.utils.utils import grouped_nms_keep, masked_mean, multiclass_nms, select_class
from src.blocks.utils.valid_chunks import run_on_valid_chunks, valid_first_order

__all__ = ["grouped_nms_keep", "masked_mean", "multiclass_nms", "run_on_valid_chunks", "select_class",
           "valid_first_order"]

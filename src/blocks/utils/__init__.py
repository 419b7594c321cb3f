"""Shared operations of the detector heads."""
from src.blocks.utils.utils import masked_mean, multiclass_nms

__all__ = ["masked_mean", "multiclass_nms"]

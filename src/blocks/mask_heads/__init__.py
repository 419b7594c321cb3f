"""Mask heads: the FCN mask predictor and the MaskIoU scorer."""
from src.blocks.mask_heads.fcn_mask_head import FCNMaskHead
from src.blocks.mask_heads.maskiou_head import MaskIoUHead

__all__ = ["FCNMaskHead", "MaskIoUHead"]

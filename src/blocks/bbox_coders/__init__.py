"""Box coders."""
from src.blocks.bbox_coders.bbox_coder import DEFAULT_MAX_RATIO, DeltaXYWHBBoxCoder

__all__ = ["DEFAULT_MAX_RATIO", "DeltaXYWHBBoxCoder"]

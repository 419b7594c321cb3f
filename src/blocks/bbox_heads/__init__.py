"""Second-stage box heads."""
from src.blocks.bbox_heads.shared_2fc_bbox_head import Shared2FCBBoxHead

__all__ = ["Shared2FCBBoxHead"]

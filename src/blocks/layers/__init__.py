"""Basic layers shared by the blocks."""
from src.blocks.layers.conv_module import ConvModule, freeze_batch_norm

__all__ = ["ConvModule", "freeze_batch_norm"]

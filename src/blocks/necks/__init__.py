"""Necks."""
from src.blocks.necks.fpn import FPN

__all__ = ["FPN"]

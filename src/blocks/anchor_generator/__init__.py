"""Anchor generation."""
from src.blocks.anchor_generator.anchor_generator import AnchorGenerator

__all__ = ["AnchorGenerator"]

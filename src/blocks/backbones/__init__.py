"""Backbones."""
from src.blocks.backbones.resnet import ResNet, build_backbone

__all__ = ["ResNet", "build_backbone"]

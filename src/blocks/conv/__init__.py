"""2-D convolution: ``nn.Conv2d`` with the own multi-threaded oneDNN kernels on CPU."""
from src.blocks.conv.conv2d import Conv2d, conv_impl

__all__ = ["Conv2d", "conv_impl"]

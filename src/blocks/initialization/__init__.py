"""Weight initialisation schemes."""
from src.blocks.initialization.initialization import constant_init, kaiming_init, normal_init, xavier_init

__all__ = ["constant_init", "kaiming_init", "normal_init", "xavier_init"]

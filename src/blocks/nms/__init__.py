"""Greedy NMS of score-sorted boxes (own CPU kernel or MindSpore's NMSWithMask)."""
from src.blocks.nms.sorted_nms import SortedNms

__all__ = ["SortedNms"]

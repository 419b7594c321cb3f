"""Dense (per-anchor) heads."""
from src.blocks.dense_heads.proposal_generator import ProposalGenerator
from src.blocks.dense_heads.rpn import RPNHead

__all__ = ["ProposalGenerator", "RPNHead"]

"""RoI feature extractors: RoIAlign (own C++/CUDA kernels or MindSpore's op) and the FPN-level RoI extractor."""
from src.blocks.roi_extractors.roi_align import MultiLevelRoIAlign, RoIAlign, roi_align
from src.blocks.roi_extractors.single_layer_roi_extractor import SingleLayerRoIExtractor

__all__ = ["MultiLevelRoIAlign", "RoIAlign", "SingleLayerRoIExtractor", "roi_align"]

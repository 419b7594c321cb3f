"""The source formats of ``python -m src.tools.convert_weights``: what each file holds, how its names map, and the
config keys its weights need to compute what they computed in their own project.

ImageNet-trained backbones expect the input normalisation they were trained with: torchvision's and the MindSpore
model zoo's ResNets RGB with ImageNet mean and std and the stride on the 3x3 convolution (``style: pytorch``);
detectron2's MSRA caffe ResNets BGR with the caffe means, unit std and the stride on the first 1x1 convolution
(``style: caffe``). mmdetection detectors use the same two conventions (``_caffe_`` in a config name means the second)
and the half-pixel RoIAlign (``aligned: True``) with adaptive sampling; torchvision's Mask R-CNN the first, with the
legacy RoIAlign (``aligned: False``) and 2 samples per bin side.
"""
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Tuple

from src.converters.classes import COCO_CLASSES
from src.converters.detector_keys import rename_mmdet
from src.converters.resnet_keys import Weights, rename_detectron2_caffe, rename_mindspore_zoo, rename_torchvision
from src.converters.torchvision_keys import rename_torchvision_maskrcnn

PYTORCH_STYLE = {"backbone.style": "pytorch", "to_rgb": 1, "img_mean": [123.675, 116.28, 103.53],
                 "img_std": [58.395, 57.12, 57.375]}
CAFFE_STYLE = {"backbone.style": "caffe", "to_rgb": 0, "img_mean": [103.53, 116.28, 123.675],
               "img_std": [1.0, 1.0, 1.0]}
TORCHVISION_ROI = {"roi.roi_layer.aligned": False, "roi.roi_layer.sampling_ratio": 2,
                   "mask_roi.roi_layer.aligned": False, "mask_roi.roi_layer.sampling_ratio": 2}
MMDET_ROI = {"roi.roi_layer.aligned": True, "roi.roi_layer.sampling_ratio": 0, "mask_roi.roi_layer.aligned": True,
             "mask_roi.roi_layer.sampling_ratio": 0}


@dataclass(frozen=True)
class SourceFormat:
    """A convertible source: ``rename`` maps its names (``backbone`` True: backbone-only names, written without the
    ``backbone.`` prefix, for ``backbone.pretrained``), ``config`` lists the keys its weights need (alternatives
    as separate dicts, with the condition that picks each), ``classes`` names the classes of a detector's
    class-dependent rows in order (after the background), when known."""

    description: str
    rename: Callable[[Weights], Tuple[Weights, List[str]]]
    backbone: bool
    config: Dict[str, Dict[str, object]] = field(default_factory=dict)
    classes: Tuple[str, ...] = ()


FORMATS: Dict[str, SourceFormat] = {
    "torchvision-resnet": SourceFormat("torchvision ResNet-50/101 ImageNet weights (.pth)", rename_torchvision, True,
                                       {"always": PYTORCH_STYLE}),
    "mindspore-resnet": SourceFormat("MindSpore model zoo ResNet-50/101 ImageNet checkpoint (.ckpt)",
                                     rename_mindspore_zoo, True, {"always": PYTORCH_STYLE}),
    "detectron2": SourceFormat("detectron2 MSRA caffe ResNet-50/101 ImageNet weights (.pkl)", rename_detectron2_caffe,
                               True, {"always": CAFFE_STYLE}),
    "torchvision-maskrcnn": SourceFormat(
        "torchvision maskrcnn_resnet50_fpn COCO detector (.pth; the MaskIoU head stays freshly initialised)",
        rename_torchvision_maskrcnn, False, {"always": {**PYTORCH_STYLE, **TORCHVISION_ROI}}, COCO_CLASSES),
    "mmdet": SourceFormat("mmdetection Mask Scoring R-CNN / Mask R-CNN detector (.pth)", rename_mmdet, False,
                          {"caffe-style model (_caffe_ in its config name)": {**CAFFE_STYLE, **MMDET_ROI},
                           "pytorch-style model": {**PYTORCH_STYLE, **MMDET_ROI}}, COCO_CLASSES),
}

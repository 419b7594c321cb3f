"""Weights of other projects in this project's parameter names.

``readers`` loads a source file into ``{name: numpy array}`` (PyTorch ``.pth`` with ``torch.load(weights_only=True)``,
detectron2 ``.pkl`` through an unpickler that builds only dicts and numpy arrays, MindSpore ``.ckpt``);
``resnet_keys`` renames ResNet backbones (torchvision, mmdetection, MindSpore model zoo, detectron2/MSRA caffe);
``detector_keys`` renames whole mmdetection Mask (Scoring) R-CNN detectors, ``torchvision_keys`` torchvision's
Mask R-CNN (category slots mapped to classes); ``classes`` takes a COCO detector's class-dependent rows for a
config's classes by name; ``formats`` ties each source format to its reader, its renaming and the config keys its
weights need. ``python -m src.tools.convert_weights`` is the command line.
"""

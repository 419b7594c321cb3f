"""Reference outputs of a torchvision ``maskrcnn_resnet50_fpn`` with random weights, for the parity test.

    python tests/helpers/torchvision_reference.py OUT_DIR

Writes OUT_DIR/maskrcnn.pth (the state dict, with non-trivial FrozenBatchNorm statistics) and OUT_DIR/reference.npz:
the normalised input image ``x`` [1,3,256,320], the fixed RoIs ``rois`` [R,4] (x1,y1,x2,y2, one per FPN level pair),
the ResNet stage outputs ``c2..c5``, the FPN outputs ``p2..p6``, per level the RPN ``objectness<l>`` [A,H,W] and
``deltas<l>`` [4A,H,W], and for the RoIs the box head's ``class_logits`` [R,91] and ``box_regression`` [R,364] and
the mask head's ``mask_logits`` [R,91,28,28]. Run in its own process: torch is kept out of the MindSpore test process.
"""
import sys
from pathlib import Path

import numpy as np
import torch
import torchvision

HEIGHT, WIDTH = 256, 320
ROIS = [[10.0, 12.0, 60.0, 70.0], [40.0, 30.0, 180.0, 170.0], [5.0, 20.0, 300.0, 250.0], [100.0, 90.0, 130.0, 110.0]]


def main(out: Path) -> None:
    torch.manual_seed(0)
    model = torchvision.models.detection.maskrcnn_resnet50_fpn(weights=None, weights_backbone=None)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torchvision.ops.FrozenBatchNorm2d):
                channels = module.weight.shape[0]
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
                assert module.running_var.shape[0] == channels
        for name, parameter in model.named_parameters():
            if name.endswith("bias") and parameter.abs().sum() == 0:
                parameter.uniform_(-0.05, 0.05)  # zero-initialised biases would not test their mapping
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out / "maskrcnn.pth")
    x = torch.from_numpy(np.random.default_rng(1).standard_normal((1, 3, HEIGHT, WIDTH)).astype(np.float32))
    rois = torch.tensor(ROIS)
    arrays = {"x": x.numpy(), "rois": rois.numpy()}
    with torch.no_grad():
        body = model.backbone.body(x)
        for index, value in enumerate(body.values()):
            arrays[f"c{index + 2}"] = value[0].numpy()
        features = model.backbone(x)
        for index, value in enumerate(features.values()):
            arrays[f"p{index + 2}"] = value[0].numpy()
        objectness, deltas = model.rpn.head(list(features.values()))
        for level, (logits, regression) in enumerate(zip(objectness, deltas)):
            arrays[f"objectness{level}"], arrays[f"deltas{level}"] = logits[0].numpy(), regression[0].numpy()
        image_shapes = [(HEIGHT, WIDTH)]
        box_features = model.roi_heads.box_head(model.roi_heads.box_roi_pool(features, [rois], image_shapes))
        arrays["class_logits"], arrays["box_regression"] = (value.numpy() for value in
                                                            model.roi_heads.box_predictor(box_features))
        mask_features = model.roi_heads.mask_head(model.roi_heads.mask_roi_pool(features, [rois], image_shapes))
        arrays["mask_logits"] = model.roi_heads.mask_predictor(mask_features).numpy()
    np.savez(out / "reference.npz", **arrays)


if __name__ == "__main__":
    main(Path(sys.argv[1]))

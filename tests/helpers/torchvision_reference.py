"""Reference outputs of a torchvision ``maskrcnn_resnet50_fpn`` with random weights, for the parity test.

    python tests/helpers/torchvision_reference.py OUT_DIR

Writes OUT_DIR/maskrcnn.pth (the state dict, with non-trivial FrozenBatchNorm statistics; the RPN deltas and the
mask logits scaled down and the unused category slots silenced, see the constants below) and
OUT_DIR/reference.npz:

* layers: the normalised input image ``x`` [1,3,256,320], the fixed RoIs ``rois`` [R,4] (x1,y1,x2,y2, one per FPN
  level pair), the ResNet stage outputs ``c2..c5``, the FPN outputs ``p2..p6``, per level the RPN
  ``objectness<l>`` [A,H,W] and ``deltas<l>`` [4A,H,W], and for the RoIs the box head's ``class_logits`` [R,91] and
  ``box_regression`` [R,364] and the mask head's ``mask_logits`` [R,91,28,28];
* inference on an ``image`` [3,200,250] in [0, 1] (min_size 256, max_size 320): the input tensor
  ``image_tensor`` [1,3,256,320] and size ``image_size`` (h, w) that ``model.transform`` made of it, all anchors
  ``anchors`` [N,4], the RPN's proposals ``proposals`` [P,4] and ``proposal_scores`` [P], the (box, class) pair
  scores of the proposals above the box score threshold, sorted, ``pair_scores``, the detections of
  ``model.roi_heads`` in input pixels ``det_boxes`` [D,4], ``det_labels`` [D] (category slots), ``det_scores`` [D],
  ``det_masks`` [D,28,28] (probabilities), and after ``model.transform.postprocess`` ``orig_boxes`` [D,4] and
  ``orig_masks`` [D,200,250] (pasted probabilities);
* the resize rule: ``resize_in`` [S,2] image sizes, ``resize_out`` [S,2] the sizes a ``GeneralizedRCNNTransform``
  (800, 1333) makes of them, and ``resize_box`` [S,4] the box ``resize_box_in`` [4] of the resized image mapped
  back to the original by its postprocess.

Run in its own process: torch is kept out of the MindSpore test process.
"""
import sys
from pathlib import Path

import numpy as np
import torch
import torchvision
from torchvision.models.detection.rpn import concat_box_prediction_layers
from torchvision.models.detection.transform import GeneralizedRCNNTransform

HEIGHT, WIDTH = 256, 320
IMAGE_HEIGHT, IMAGE_WIDTH = 200, 250
ROIS = [[10.0, 12.0, 60.0, 70.0], [40.0, 30.0, 180.0, 170.0], [5.0, 20.0, 300.0, 250.0], [100.0, 90.0, 130.0, 110.0]]
RESIZE_SIZES = [(480, 640), (640, 480), (427, 640), (640, 427), (375, 500), (333, 1000), (1000, 333), (800, 1333),
                (799, 1201), (1201, 799), (200, 250), (2000, 3000)]
RESIZE_BOX = [1.5, 2.25, 400.75, 420.5]  # inside every resized image (torchvision does not clip it)
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
# The random FrozenBatchNorm statistics make the features large: the objectness logits spread over a few units
# (distinct sigmoid scores) and the class logits (std ~3) give a peaked softmax, with detections scoring 0.4 to 0.7;
# but RPN deltas of std ~2 would often reach the decoders' exp bound and mask logits of std ~20 would give
# probabilities of exactly 0 or 1. Those two layers' weights and biases are scaled down:
RPN_DELTA_GAIN = 0.1
MASK_GAIN = 0.1
# Category slots that no COCO class uses ("N/A"): a trained model never scores them (they are never a target), and
# the converter drops them, so the classifier normalises over the 81 others. Random weights would give them their
# share of the softmax; as in a trained model they get a logit far below the others.
UNUSED_SLOT_BIAS = -40.0


def random_model() -> torch.nn.Module:
    """The reference model: torchvision's architecture with random weights (see the module docstring)."""
    torch.manual_seed(0)
    model = torchvision.models.detection.maskrcnn_resnet50_fpn(weights=None, weights_backbone=None,
                                                               min_size=HEIGHT, max_size=WIDTH)
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
        for layer, gain in ((model.rpn.head.bbox_pred, RPN_DELTA_GAIN),
                            (model.roi_heads.mask_predictor.mask_fcn_logits, MASK_GAIN)):
            layer.weight.mul_(gain)
            layer.bias.mul_(gain)
        categories = torchvision.models.detection.MaskRCNN_ResNet50_FPN_Weights.COCO_V1.meta["categories"]
        unused = [slot for slot, name in enumerate(categories) if name == "N/A"]
        model.roi_heads.box_predictor.cls_score.weight[unused] = 0.0
        model.roi_heads.box_predictor.cls_score.bias[unused] = UNUSED_SLOT_BIAS
    return model.eval()


def test_image() -> torch.Tensor:
    """[3, IMAGE_HEIGHT, IMAGE_WIDTH] float in [0, 1]: a few flat rectangles on a gradient, with a little noise."""
    rng = np.random.default_rng(2)
    rows, cols = np.mgrid[0:IMAGE_HEIGHT, 0:IMAGE_WIDTH]
    image = np.stack([rows / IMAGE_HEIGHT, cols / IMAGE_WIDTH, 0.5 * np.ones_like(rows, dtype=float)])
    for _ in range(6):
        y1, x1 = rng.integers(0, IMAGE_HEIGHT - 40), rng.integers(0, IMAGE_WIDTH - 40)
        y2, x2 = y1 + rng.integers(20, 120), x1 + rng.integers(20, 150)
        image[:, y1:y2, x1:x2] = rng.uniform(0, 1, (3, 1, 1))
    image += rng.normal(0, 0.05, image.shape)
    return torch.from_numpy(np.clip(image, 0, 1).astype(np.float32))


def layer_outputs(model: torch.nn.Module) -> dict:
    """The per-layer arrays on a normalised random input and fixed RoIs (see the module docstring)."""
    x = torch.from_numpy(np.random.default_rng(1).standard_normal((1, 3, HEIGHT, WIDTH)).astype(np.float32))
    rois = torch.tensor(ROIS)
    arrays = {"x": x.numpy(), "rois": rois.numpy()}
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
    return arrays


def inference_outputs(model: torch.nn.Module) -> dict:
    """Proposals, detections and postprocessed detections of the test image (see the module docstring)."""
    image = test_image()
    images, _ = model.transform([image])
    features = model.backbone(images.tensors)
    levels = list(features.values())
    objectness, deltas = model.rpn.head(levels)
    anchors = model.rpn.anchor_generator(images, levels)
    per_level = [int(np.prod(level_objectness.shape[1:])) for level_objectness in objectness]
    flat_objectness, flat_deltas = concat_box_prediction_layers(objectness, deltas)
    decoded = model.rpn.box_coder.decode(flat_deltas, anchors).view(1, -1, 4)
    proposals, proposal_scores = model.rpn.filter_proposals(decoded, flat_objectness, images.image_sizes, per_level)
    assert torch.equal(proposals[0], model.rpn(images, features)[0][0])
    box_features = model.roi_heads.box_head(model.roi_heads.box_roi_pool(features, proposals, images.image_sizes))
    pair_scores = torch.softmax(model.roi_heads.box_predictor(box_features)[0], -1)[:, 1:].reshape(-1)
    pair_scores = pair_scores[pair_scores > model.roi_heads.score_thresh].sort(descending=True)[0]
    detections, _ = model.roi_heads(features, proposals, images.image_sizes)
    arrays = {"image": image.numpy(), "image_tensor": images.tensors.numpy(),
              "image_size": np.array(images.image_sizes[0]), "anchors": anchors[0].numpy(),
              "proposals": proposals[0].numpy(), "proposal_scores": proposal_scores[0].numpy(),
              "pair_scores": pair_scores.numpy(), "det_boxes": detections[0]["boxes"].numpy().copy(),
              "det_labels": detections[0]["labels"].numpy().copy(), "det_scores": detections[0]["scores"].numpy(),
              "det_masks": detections[0]["masks"][:, 0].numpy().copy()}
    result = model.transform.postprocess(detections, images.image_sizes, [(IMAGE_HEIGHT, IMAGE_WIDTH)])[0]
    arrays["orig_boxes"], arrays["orig_masks"] = result["boxes"].numpy(), result["masks"][:, 0].numpy()
    whole = model([image])[0]
    assert torch.equal(whole["boxes"], result["boxes"]) and torch.equal(whole["masks"], result["masks"])
    return arrays


def resize_rule() -> dict:
    """Sizes that torchvision's default transform (800, 1333) makes of RESIZE_SIZES, and RESIZE_BOX mapped back."""
    transform = GeneralizedRCNNTransform(800, 1333, IMAGENET_MEAN, IMAGENET_STD).eval()
    sizes, boxes = [], []
    for height, width in RESIZE_SIZES:
        resized = transform([torch.zeros(3, height, width)])[0].image_sizes[0]
        sizes.append(resized)
        mapped = transform.postprocess([{"boxes": torch.tensor([RESIZE_BOX])}], [resized], [(height, width)])
        boxes.append(mapped[0]["boxes"][0].numpy())
    return {"resize_in": np.array(RESIZE_SIZES), "resize_out": np.array(sizes), "resize_box": np.stack(boxes),
            "resize_box_in": np.array(RESIZE_BOX, np.float32)}


def main(out: Path) -> None:
    torch.set_num_threads(2)
    model = random_model()
    out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out / "maskrcnn.pth")
    with torch.no_grad():
        arrays = {**layer_outputs(model), **inference_outputs(model), **resize_rule()}
    np.savez(out / "reference.npz", **arrays)


if __name__ == "__main__":
    main(Path(sys.argv[1]))

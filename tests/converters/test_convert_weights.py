"""Weight conversion: state dicts and pickles built with the source projects' exact names and layouts land on the
right parameters of this project's models, with the right values, and the command line checks them."""
import pickle
import sys
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest
import yaml
from mindspore import Tensor, nn

from src.blocks.ms_rcnn import MsRcnn
from src.converters import readers
from src.converters.classes import COCO_CLASSES, UnknownClassesError, drop_class_layers, select_classes
from src.converters.detector_keys import rename_mmdet
from src.converters.formats import FORMATS
from src.converters.resnet_keys import BN_EPS, rename_detectron2_caffe, rename_mindspore_zoo, rename_torchvision
from src.model_utils.config import load_config
from src.network_define import load_weights
from src.tools import convert_weights
from tests.conftest import PROJECT_ROOT, TINY_CONFIG

R50_CONFIG = PROJECT_ROOT / "configs" / "ms_rcnn_r50_caffe_fpn_1x_coco.yaml"
BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}


def bottleneck_resnet(depth: int, bn_names: tuple, downsample: str, rng: np.random.Generator) -> dict:
    """A ResNet-50/101 state dict in the torchvision layout (``bn_names`` and ``downsample`` rename the parts for
    the MindSpore model zoo: ('gamma', 'beta', 'moving_mean', 'moving_variance') and 'down_sample_layer')."""
    weights = {"conv1.weight": rng.standard_normal((64, 3, 7, 7)).astype(np.float32)}

    def bn(prefix: str, channels: int) -> None:
        for field in bn_names:
            weights[f"{prefix}.{field}"] = rng.uniform(0.5, 1.5, channels).astype(np.float32)
        if bn_names[0] == "weight":
            weights[f"{prefix}.num_batches_tracked"] = np.array(7, np.int64)

    bn("bn1", 64)
    in_channels = 64
    for stage, blocks in enumerate(BLOCKS[depth]):
        width = 64 * 2 ** stage
        for block in range(blocks):
            prefix = f"layer{stage + 1}.{block}"
            for index, (out_c, in_c, k) in enumerate(((width, in_channels, 1), (width, width, 3),
                                                      (4 * width, width, 1)), start=1):
                weights[f"{prefix}.conv{index}.weight"] = rng.standard_normal((out_c, in_c, k, k)).astype(np.float32)
                bn(f"{prefix}.bn{index}", out_c)
            if block == 0:
                weights[f"{prefix}.{downsample}.0.weight"] = rng.standard_normal(
                    (4 * width, in_channels, 1, 1)).astype(np.float32)
                bn(f"{prefix}.{downsample}.1", 4 * width)
            in_channels = 4 * width
    return weights


TORCH_BN = ("weight", "bias", "running_mean", "running_var")
MINDSPORE_BN = ("gamma", "beta", "moving_mean", "moving_variance")


def backbone_shapes(config=R50_CONFIG, **overrides) -> dict:
    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    cfg = load_config(config, overrides)
    return {parameter.name[len("backbone."):]: tuple(parameter.shape)
            for parameter in MsRcnn(cfg).backbone.get_parameters()}


def test_torchvision_resnet50_covers_the_backbone_value_for_value():
    source = bottleneck_resnet(50, TORCH_BN, "downsample", np.random.default_rng(0))
    source.update({"fc.weight": np.zeros((1000, 2048), np.float32), "fc.bias": np.zeros(1000, np.float32)})
    converted, left_out = rename_torchvision(source)
    assert sorted(left_out) == sorted(["fc.weight", "fc.bias"] + [name for name in source
                                                                   if name.endswith("num_batches_tracked")])
    shapes = backbone_shapes(**{"backbone.style": "pytorch"})
    assert set(converted) == set(shapes)
    assert all(tuple(converted[name].shape) == shape for name, shape in shapes.items())
    assert converted["stem.bn.moving_variance"] is source["bn1.running_var"]
    assert converted["stages.2.5.conv2.conv.weight"] is source["layer3.5.conv2.weight"]
    assert converted["stages.3.0.downsample.bn.gamma"] is source["layer4.0.downsample.1.weight"]
    assert converted["stages.1.3.conv3.bn.beta"] is source["layer2.3.bn3.bias"]


def test_mindspore_zoo_resnet101_covers_the_backbone():
    source = bottleneck_resnet(101, MINDSPORE_BN, "down_sample_layer", np.random.default_rng(1))
    source.update({"end_point.weight": np.zeros((1001, 2048), np.float32), "moments.conv1.weight": np.zeros(1)})
    converted, left_out = rename_mindspore_zoo(source)
    assert sorted(left_out) == ["end_point.weight", "moments.conv1.weight"]
    shapes = backbone_shapes(**{"backbone.depth": 101})
    assert set(converted) == set(shapes) and all(tuple(converted[n].shape) == s for n, s in shapes.items())
    assert converted["stages.2.22.conv1.bn.moving_mean"] is source["layer3.22.bn1.moving_mean"]
    assert converted["stages.0.0.downsample.conv.weight"] is source["layer1.0.down_sample_layer.0.weight"]


def detectron2_msra(torch_layout: dict) -> dict:
    """The MSRA caffe2 names of a torchvision-layout ResNet (frozen BN: scale and bias only)."""
    blobs = {"conv1_w": torch_layout["conv1.weight"], "res_conv1_bn_s": torch_layout["bn1.weight"],
             "res_conv1_bn_b": torch_layout["bn1.bias"], "fc1000_w": np.zeros((1000, 2048), np.float32)}
    branches = {"conv1": "branch2a", "conv2": "branch2b", "conv3": "branch2c"}
    for name, value in torch_layout.items():
        if not name.startswith("layer"):
            continue
        parts = name.split(".")
        layer, block, part, field = parts[0], parts[1], parts[2], parts[-1]
        stage = int(layer[5:]) + 1
        if part == "downsample":
            branch, kind = "branch1", ("conv" if parts[3] == "0" else "bn")
        else:
            branch = branches[part if part.startswith("conv") else f"conv{part[2:]}"]
            kind = "conv" if part.startswith("conv") else "bn"
        if kind == "conv":
            blobs[f"res{stage}_{block}_{branch}_w"] = value
        elif field in ("weight", "bias"):
            blobs[f"res{stage}_{block}_{branch}_bn_{'s' if field == 'weight' else 'b'}"] = value
    return blobs


def test_detectron2_msra_pickle_covers_the_caffe_backbone_and_keeps_the_affine_channels(tmp_path: Path):
    blobs = detectron2_msra(bottleneck_resnet(50, TORCH_BN, "downsample", np.random.default_rng(2)))
    path = tmp_path / "R-50.pkl"
    path.write_bytes(pickle.dumps({"blobs": blobs, "__author__": "MSRA"}))
    converted, left_out = rename_detectron2_caffe(readers.read_weights(path))
    assert left_out == ["fc1000_w"]
    shapes = backbone_shapes()
    assert set(converted) == set(shapes) and all(tuple(converted[n].shape) == s for n, s in shapes.items())
    assert np.array_equal(converted["stages.1.2.conv2.conv.weight"], blobs["res3_2_branch2b_w"])
    scale, bias = blobs["res4_0_branch1_bn_s"], blobs["res4_0_branch1_bn_b"]
    batch_norm = nn.BatchNorm2d(len(scale), eps=BN_EPS)
    for field in ("gamma", "beta", "moving_mean", "moving_variance"):
        getattr(batch_norm, field).set_data(Tensor(converted[f"stages.2.0.downsample.bn.{field}"]))
    batch_norm.set_train(False)
    x = np.random.default_rng(3).standard_normal((1, len(scale), 2, 2)).astype(np.float32)
    expected = x * scale[None, :, None, None] + bias[None, :, None, None]
    np.testing.assert_allclose(batch_norm(Tensor(x)).asnumpy(), expected, rtol=1e-5, atol=1e-5)


def test_pickles_with_anything_but_arrays_are_refused(tmp_path: Path):
    class Payload:
        def __reduce__(self):
            return (print, ("this would run",))

    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"conv1_w": Payload()}))
    with pytest.raises(pickle.UnpicklingError, match="refusing to load builtins.print"):
        readers.read_weights(path)


def mmdet_state_dict(model: MsRcnn, num_mask_convs: int, with_mask_iou: bool) -> dict:
    """An mmdetection Mask (Scoring) R-CNN state dict for ``model``'s architecture, written from mmdetection's
    module names (ResNet, FPN ``ConvModule.conv``, RPNHead, Shared2FCBBoxHead, FCNMaskHead, MaskIoUHead)."""
    rng = np.random.default_rng(4)
    params = {parameter.name: tuple(parameter.shape) for parameter in model.get_parameters()}
    backbone = {name[len("backbone."):]: shape for name, shape in params.items() if name.startswith("backbone.")}
    weights = {}
    for name, shape in backbone.items():
        parts = name.split(".")
        if parts[0] == "stem":
            source = "conv1.weight" if parts[1] == "conv" else f"bn1.{parts[2]}"
        else:
            layer, block, unit = f"layer{int(parts[1]) + 1}", parts[2], parts[3]
            if unit == "downsample":
                source = f"{layer}.{block}.downsample.{0 if parts[4] == 'conv' else 1}."
            else:
                source = f"{layer}.{block}.{unit if parts[4] == 'conv' else 'bn' + unit[4:]}."
            source += "weight" if parts[4] == "conv" else parts[5]
        source = source.replace(".gamma", ".weight").replace(".beta", ".bias").replace(
            ".moving_mean", ".running_mean").replace(".moving_variance", ".running_var")
        weights[f"backbone.{source}"] = rng.standard_normal(shape).astype(np.float32)
    for name, shape in params.items():
        parts = name.split(".")
        if parts[0] == "neck":
            weights[f"neck.{parts[1]}.{parts[2]}.conv.{parts[3]}"] = rng.standard_normal(shape).astype(np.float32)
        elif parts[0] == "rpn_head":
            weights[name] = rng.standard_normal(shape).astype(np.float32)
    for name, shape in params.items():
        head, rest = name.split(".", 1)
        value = rng.standard_normal(shape).astype(np.float32)
        if head == "bbox_head":
            source = rest.replace("shared_fc1", "shared_fcs.0").replace("shared_fc2", "shared_fcs.1")
            weights[f"roi_head.bbox_head.{source}"] = value
        elif head == "mask_head":
            index, field = int(rest.split(".")[1]), rest.split(".")[2]
            part = f"convs.{index // 2}.conv" if index < 2 * num_mask_convs else (
                "upsample" if index == 2 * num_mask_convs else "conv_logits")
            weights[f"roi_head.mask_head.{part}.{field}"] = value
        elif head == "mask_iou_head" and with_mask_iou:
            layers = rest.split(".")
            if layers[0] == "fc_mask_iou":
                weights[f"roi_head.mask_iou_head.{rest}"] = value
            else:
                conv = ".conv" if layers[0] == "convs" else ""
                weights[f"roi_head.mask_iou_head.{layers[0]}.{int(layers[1]) // 2}{conv}.{layers[2]}"] = value
    return {f"module.{name}" if index % 7 == 0 else name: value for index, (name, value) in enumerate(weights.items())}


@pytest.mark.parametrize("with_mask_iou", [True, False], ids=["ms-rcnn", "mask-rcnn"])
def test_mmdet_detector_lands_on_every_parameter(with_mask_iou: bool):
    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    model = MsRcnn(load_config(TINY_CONFIG))
    source = mmdet_state_dict(model, num_mask_convs=2, with_mask_iou=with_mask_iou)
    source["roi_head.bbox_head.fc_cls.weight"] = np.arange(6 * 64, dtype=np.float32).reshape(6, 64)
    converted, left_out = rename_mmdet(source)
    assert left_out == []
    params = {parameter.name: parameter for parameter in model.get_parameters()}
    expected = set(params) if with_mask_iou else {name for name in params if not name.startswith("mask_iou_head")}
    assert set(converted) == expected
    assert all(tuple(converted[name].shape) == tuple(params[name].shape) for name in converted)
    cls_rows = converted["bbox_head.fc_cls.weight"]
    assert np.array_equal(cls_rows[0], source["roi_head.bbox_head.fc_cls.weight"][5])  # background moves first
    assert np.array_equal(cls_rows[1:], source["roi_head.bbox_head.fc_cls.weight"][:5])
    upsample = next(value for name, value in source.items() if name.endswith("mask_head.upsample.weight"))
    assert converted["mask_head.layers.4.weight"] is upsample  # (in, out, k, k), as Conv2dTranspose stores it
    missing, skipped = load_weights(model, {name: ms.Parameter(Tensor(value), name=name)
                                            for name, value in converted.items()})
    assert skipped == [] and sorted(missing) == sorted(set(params) - expected)
    assert np.array_equal(params["neck.fpn_convs.1.weight"].asnumpy(),
                          next(v for n, v in source.items() if n.endswith("neck.fpn_convs.1.conv.weight")))


def test_command_line_converts_checks_and_names_the_config_keys(tmp_path: Path, capsys):
    source = bottleneck_resnet(50, MINDSPORE_BN, "down_sample_layer", np.random.default_rng(5))
    source_path = tmp_path / "resnet50.ckpt"
    ms.save_checkpoint([{"name": name, "data": Tensor(value)} for name, value in source.items()], str(source_path))
    out = tmp_path / "backbone.ckpt"
    assert convert_weights.main(["--from", "mindspore-resnet", str(source_path), "--out", str(out), "--config",
                                 str(R50_CONFIG)]) == 0
    printed = capsys.readouterr().out
    assert "265 tensors converted" in printed and "265 of 265 backbone parameters covered" in printed
    assert "backbone.style: pytorch, to_rgb: 1" in printed and "backbone.pretrained" in printed
    written = ms.load_checkpoint(str(out))
    assert np.array_equal(written["stages.3.2.conv3.conv.weight"].asnumpy(), source["layer4.2.conv3.weight"])
    assert convert_weights.main(["--from", "detectron2", str(source_path), "--out", str(tmp_path / "x.ckpt")]) == 2
    assert "has a detectron2 name" in capsys.readouterr().err


def test_reading_pytorch_files_without_torch_says_what_to_install(tmp_path: Path, monkeypatch):
    path = tmp_path / "model.pth"
    path.write_bytes(b"\x80\x02")
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(RuntimeError, match=r"needs torch \(pip install torch\)"):
        readers.read_weights(path)


def torchvision_maskrcnn_state_dict(rng: np.random.Generator) -> dict:
    """``maskrcnn_resnet50_fpn`` names and shapes (torchvision >= 0.13 module layout, FrozenBatchNorm2d)."""
    body = bottleneck_resnet(50, TORCH_BN, "downsample", rng)
    weights = {f"backbone.body.{name}": value for name, value in body.items()
               if not name.endswith("num_batches_tracked")}

    def random(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float32)

    for level, channels in enumerate((256, 512, 1024, 2048)):
        weights.update({f"backbone.fpn.inner_blocks.{level}.0.weight": random(256, channels, 1, 1),
                        f"backbone.fpn.inner_blocks.{level}.0.bias": random(256),
                        f"backbone.fpn.layer_blocks.{level}.0.weight": random(256, 256, 3, 3),
                        f"backbone.fpn.layer_blocks.{level}.0.bias": random(256)})
    weights.update({"rpn.head.conv.0.0.weight": random(256, 256, 3, 3), "rpn.head.conv.0.0.bias": random(256),
                    "rpn.head.cls_logits.weight": random(3, 256, 1, 1), "rpn.head.cls_logits.bias": random(3),
                    "rpn.head.bbox_pred.weight": random(12, 256, 1, 1), "rpn.head.bbox_pred.bias": random(12),
                    "roi_heads.box_head.fc6.weight": random(1024, 256 * 7 * 7), "roi_heads.box_head.fc6.bias":
                    random(1024), "roi_heads.box_head.fc7.weight": random(1024, 1024),
                    "roi_heads.box_head.fc7.bias": random(1024),
                    "roi_heads.box_predictor.cls_score.weight": random(91, 1024),
                    "roi_heads.box_predictor.cls_score.bias": np.arange(91, dtype=np.float32),
                    "roi_heads.box_predictor.bbox_pred.weight": random(91 * 4, 1024),
                    "roi_heads.box_predictor.bbox_pred.bias": np.arange(91 * 4, dtype=np.float32),
                    "roi_heads.mask_predictor.conv5_mask.weight": random(256, 256, 2, 2),
                    "roi_heads.mask_predictor.conv5_mask.bias": random(256),
                    "roi_heads.mask_predictor.mask_fcn_logits.weight": random(91, 256, 1, 1),
                    "roi_heads.mask_predictor.mask_fcn_logits.bias": np.arange(91, dtype=np.float32)})
    for index in range(4):
        weights[f"roi_heads.mask_head.{index}.0.weight"] = random(256, 256, 3, 3)
        weights[f"roi_heads.mask_head.{index}.0.bias"] = random(256)
    return weights


def test_torchvision_maskrcnn_maps_every_slot_to_its_coco_class():
    from src.converters.torchvision_keys import rename_torchvision_maskrcnn

    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    cfg = load_config(R50_CONFIG, {"backbone.style": "pytorch"})
    source = torchvision_maskrcnn_state_dict(np.random.default_rng(6))
    converted, left_out = rename_torchvision_maskrcnn(source)
    assert left_out == []
    params = {parameter.name: tuple(parameter.shape) for parameter in MsRcnn(cfg).get_parameters()}
    assert set(converted) == {name for name in params if not name.startswith("mask_iou_head.")}
    assert all(tuple(converted[name].shape) == params[name] for name in converted)
    classes = list(cfg.coco_classes)
    stop_sign, toothbrush = classes.index("stop sign"), classes.index("toothbrush")  # COCO ids 13 and 90
    assert converted["bbox_head.fc_cls.bias"][[0, classes.index("car"), stop_sign, toothbrush]].tolist() == \
        [0, 3, 13, 90]
    assert converted["bbox_head.fc_reg.bias"][4 * (stop_sign - 1):4 * stop_sign].tolist() == [52, 53, 54, 55]
    assert converted["mask_head.layers.10.bias"][toothbrush - 1] == 90
    assert converted["neck.lateral_convs.2.weight"] is source["backbone.fpn.inner_blocks.2.0.weight"]
    assert converted["mask_head.layers.6.weight"] is source["roi_heads.mask_head.3.0.weight"]
    assert converted["backbone.stages.3.2.conv3.bn.moving_variance"] is source["backbone.body.layer4.2.bn3.running_var"]


def subset_config(tmp_path: Path, classes: list) -> Path:
    """A pytorch-style R-50 config with ``classes`` as coco_classes."""
    path = tmp_path / "subset.yaml"
    path.write_text(yaml.safe_dump({"_base_": str(R50_CONFIG), "backbone": {"style": "pytorch"},
                                    "coco_classes": classes, "num_classes": len(classes)}))
    return path


def test_torchvision_maskrcnn_class_layers_are_taken_by_name_for_the_config_classes(tmp_path: Path, monkeypatch,
                                                                                       capsys):
    source = torchvision_maskrcnn_state_dict(np.random.default_rng(7))
    monkeypatch.setattr(convert_weights, "read_weights", lambda path: source)
    config = subset_config(tmp_path, ["background", "car", "truck", "person"])  # COCO ids 3, 8, 1
    out = tmp_path / "subset.ckpt"
    assert convert_weights.main(["--from", "torchvision-maskrcnn", "maskrcnn.pth", "--out", str(out),
                                 "--config", str(config)]) == 0
    printed = capsys.readouterr().out
    assert "taken by name for the 3 classes" in printed and "use it as pre_trained." in printed
    written = {name: value.asnumpy() for name, value in ms.load_checkpoint(str(out)).items()}
    assert written["bbox_head.fc_cls.bias"].tolist() == [0, 3, 8, 1]  # the slot biases are the slot numbers
    assert np.array_equal(written["bbox_head.fc_cls.weight"][2], source["roi_heads.box_predictor.cls_score.weight"][8])
    assert written["bbox_head.fc_reg.bias"].tolist() == [12, 13, 14, 15, 32, 33, 34, 35, 4, 5, 6, 7]
    assert np.array_equal(written["bbox_head.fc_reg.weight"][8:],
                          source["roi_heads.box_predictor.bbox_pred.weight"][4:8])
    assert written["mask_head.layers.10.bias"].tolist() == [3, 8, 1]
    assert np.array_equal(written["mask_head.layers.10.weight"][0],
                          source["roi_heads.mask_predictor.mask_fcn_logits.weight"][3])
    ms.set_context(mode=ms.PYNATIVE_MODE, device_target="CPU")
    model = MsRcnn(load_config(config))
    missing, skipped = load_weights(model, ms.load_checkpoint(str(out)))  # without finetune
    assert skipped == [] and missing and all(name.startswith("mask_iou_head.") for name in missing)


def test_classes_coco_lacks_are_an_error_unless_the_class_layers_are_dropped(tmp_path: Path, monkeypatch, capsys):
    source = torchvision_maskrcnn_state_dict(np.random.default_rng(8))
    monkeypatch.setattr(convert_weights, "read_weights", lambda path: source)
    config = subset_config(tmp_path, ["background", "car", "scratch", "persons"])
    arguments = ["--from", "torchvision-maskrcnn", "maskrcnn.pth", "--out", str(tmp_path / "out.ckpt"), "--config",
                 str(config)]
    assert convert_weights.main(arguments) == 2
    error = capsys.readouterr().err
    assert "'scratch', 'persons' (did you mean 'person'?): not among the 80 COCO classes" in error
    assert "finetune: 1" in error and "--drop-class-layers" in error
    assert convert_weights.main(arguments + ["--drop-class-layers"]) == 0
    assert "Class-dependent layers left out" in capsys.readouterr().out
    written = ms.load_checkpoint(str(tmp_path / "out.ckpt"))
    assert not [name for name in written if name.startswith(("bbox_head.fc_", "mask_head.layers.10."))]
    assert "bbox_head.shared_fc2.weight" in written and "mask_head.layers.8.weight" in written


def test_select_classes_takes_every_class_dependent_row_by_name():
    classes = ("cat", "dog", "bird")
    weights = {"bbox_head.fc_cls.weight": np.arange(8).reshape(4, 2), "bbox_head.fc_cls.bias": np.arange(4),
               "bbox_head.fc_reg.weight": np.arange(24).reshape(12, 2), "bbox_head.fc_reg.bias": np.arange(12),
               "mask_head.layers.0.weight": np.zeros((3, 3, 3, 3)), "mask_head.layers.4.weight": np.zeros((3, 3, 2, 2)),
               "mask_head.layers.6.weight": np.arange(3).reshape(3, 1, 1, 1), "mask_head.layers.6.bias": np.arange(3),
               "mask_iou_head.fc_mask_iou.weight": np.arange(6).reshape(3, 2),
               "mask_iou_head.fc_mask_iou.bias": np.arange(3), "neck.fpn_convs.0.bias": np.arange(3)}
    selected = select_classes(weights, ["background", "bird", "cat"], classes)
    assert selected["bbox_head.fc_cls.bias"].tolist() == [0, 3, 1]  # background row first, then bird, cat
    assert selected["bbox_head.fc_cls.weight"].tolist() == [[0, 1], [6, 7], [2, 3]]
    assert selected["bbox_head.fc_reg.bias"].tolist() == [8, 9, 10, 11, 0, 1, 2, 3]
    assert selected["mask_head.layers.6.bias"].tolist() == [2, 0]  # the mask head's last layer: the logits
    assert selected["mask_iou_head.fc_mask_iou.weight"].tolist() == [[4, 5], [0, 1]]
    for name in ("mask_head.layers.0.weight", "mask_head.layers.4.weight", "neck.fpn_convs.0.bias"):
        assert selected[name] is weights[name]
    agnostic = {**weights, "bbox_head.fc_reg.bias": np.arange(4)}
    assert select_classes(agnostic, ["background", "dog"], classes)["bbox_head.fc_reg.bias"] is \
        agnostic["bbox_head.fc_reg.bias"]
    with pytest.raises(UnknownClassesError, match="'fish'"):
        select_classes(weights, ["background", "fish"], classes)
    kept, dropped = drop_class_layers(weights)
    assert sorted(dropped) == sorted(["bbox_head.fc_cls.weight", "bbox_head.fc_cls.bias", "bbox_head.fc_reg.weight",
                                      "bbox_head.fc_reg.bias", "mask_head.layers.6.weight", "mask_head.layers.6.bias",
                                      "mask_iou_head.fc_mask_iou.weight", "mask_iou_head.fc_mask_iou.bias"])
    assert set(kept) == set(weights) - set(dropped)


def test_coco_detectors_name_the_default_coco_classes_in_row_order():
    assert list(COCO_CLASSES) == load_config().coco_classes[1:]
    assert FORMATS["torchvision-maskrcnn"].classes == FORMATS["mmdet"].classes == COCO_CLASSES

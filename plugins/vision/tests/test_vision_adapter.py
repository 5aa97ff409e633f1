"""The timm adapter: groups, features, preprocessing, collation and strict weight loading."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from graftzoo.errors import DataError, OptionError, SourceError
from graftzoo_vision.backbone import create


def _param_ids(module: torch.nn.Module) -> list[int]:
    return [id(p) for p in module.parameters()]


@pytest.mark.parametrize(("arch", "first", "last", "cnn"), [
    ("mobilenetv2_100", "stem", "head", True),
    ("resnet18", "stem", "layer4", True),
    ("vit_tiny_patch16_224", "stem", "head", False),
])
def test_groups_cover_every_parameter_exactly_once(arch: str, first: str, last: str, cnn: bool,
                                                   make_entry: Any) -> None:
    backbone = create(make_entry(arch), None, {"image_size": 32})
    groups = backbone.groups()
    names = [n for n, _ in groups]
    assert names[0] == first and names[-1] == last
    assert len(names) == len(set(names)) >= 4
    grouped = [pid for _, module in groups for pid in _param_ids(module)]
    assert len(grouped) == len(set(grouped)), "a parameter is in two groups"
    assert set(grouped) == set(_param_ids(backbone))
    assert backbone.channels_last is cnn
    # No classifier left: the last parameters are the features the head will read.
    assert not any("classifier" in n or n.startswith("model.fc.") for n, _ in backbone.named_parameters())


def test_mobilenet_groups_are_stem_seven_stages_head(make_entry: Any) -> None:
    backbone = create(make_entry("mobilenetv2_100"), None, {})
    assert [n for n, _ in backbone.groups()] == ["stem", *[f"blocks.{i}" for i in range(7)], "head"]
    head = dict(backbone.groups())["head"]
    assert {n.split(".")[0] for n, _ in head.named_parameters()} == {"conv_head", "bn2"}


def test_freezing_a_group_freezes_the_backbone_parameters(make_entry: Any) -> None:
    backbone = create(make_entry("mobilenetv2_100"), None, {})
    dict(backbone.groups())["stem"].requires_grad_(False).eval()
    assert not backbone.model.conv_stem.weight.requires_grad
    assert not backbone.model.bn1.training
    assert backbone.model.blocks[0][0].conv_dw.weight.requires_grad


def test_forward_gives_pooled_features_and_preprocessing_follows_options(make_entry: Any) -> None:
    entry = make_entry("mobilenetv2_100", input={"size": [3, 224, 224], "mean": [0.5, 0.5, 0.5],
                                                 "std": [0.25, 0.25, 0.25], "interpolation": "bilinear"})
    backbone = create(entry, None, {"image_size": 48}).eval()
    prep = backbone.preprocessing()
    assert prep["input_size"] == [3, 48, 48]
    assert prep["mean"] == [0.5, 0.5, 0.5] and prep["std"] == [0.25, 0.25, 0.25]
    # Evaluation centre-crops as the model was trained (timm's 0.875 when the entry names none).
    assert prep["interpolation"] == "bilinear" and prep["crop_pct"] == 0.875
    batch = backbone.collate([np.zeros((8, 8), np.uint8), np.full((20, 30, 3), 255, np.uint8)], train=False)
    assert batch.shape == (2, 3, 48, 48)
    assert batch.is_contiguous(memory_format=torch.channels_last)
    # Normalised with the entry's mean/std: black -> (0 - .5) / .25 = -2, white -> 2.
    assert torch.allclose(batch[0], torch.full_like(batch[0], -2.0))
    assert torch.allclose(batch[1], torch.full_like(batch[1], 2.0))
    with torch.no_grad():
        assert backbone(batch).shape == (2, backbone.feature_dim) == (2, 1280)


def test_collate_accepts_paths_pil_and_arrays_eval_is_deterministic(tmp_path: Path, make_entry: Any) -> None:
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "x.png")
    backbone = create(make_entry("mobilenetv2_100"), None, {"image_size": 32})
    from_path = backbone.collate([str(tmp_path / "x.png"), tmp_path / "x.png"], train=False)
    from_pil = backbone.collate([Image.fromarray(arr)], train=False)
    from_arr = backbone.collate([arr], train=False)
    assert torch.equal(from_path[0], from_pil[0]) and torch.equal(from_pil[0], from_arr[0])
    assert torch.equal(from_path[0], from_path[1])
    torch.manual_seed(0)
    augmented = [backbone.collate([arr], train=True) for _ in range(4)]
    assert augmented[0].shape == from_arr.shape
    assert any(not torch.equal(a, from_arr) for a in augmented), "training collation never augmented"
    # Augmentation follows torch's seed (what the engine sets per epoch), whatever Python's random says.
    torch.manual_seed(7)
    first = backbone.collate([arr] * 4, train=True)
    torch.manual_seed(7)
    import random

    random.seed(123)
    assert torch.equal(first, backbone.collate([arr] * 4, train=True))


def test_collate_names_an_unreadable_file(tmp_path: Path, make_entry: Any) -> None:
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    backbone = create(make_entry("mobilenetv2_100"), None, {"image_size": 32})
    with pytest.raises(DataError, match=r"broken\.jpg"):
        backbone.collate([str(bad)], train=False)
    with pytest.raises(DataError, match=r"missing\.png"):
        backbone.collate([str(tmp_path / "missing.png")], train=False)


def _saved(tmp_path: Path, state: dict[str, torch.Tensor]) -> Path:
    path = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


def test_timm_layout_loads_strictly_and_keeps_classifier_on_request(tmp_path: Path, make_entry: Any) -> None:
    import timm

    reference = timm.create_model("mobilenetv2_100", num_classes=7)
    path = _saved(tmp_path, reference.state_dict())
    entry = make_entry("mobilenetv2_100", num_classes=7)
    backbone = create(entry, path, {})
    assert torch.equal(backbone.model.conv_stem.weight, reference.conv_stem.weight)
    assert torch.equal(backbone.model.bn2.running_var, reference.bn2.running_var)
    with pytest.raises(OptionError, match="keep_classifier"):
        backbone.logits(torch.zeros(1, 3, 32, 32))
    kept = create(entry, path, {"keep_classifier": True}).eval()
    assert [n for n, _ in kept.groups()][-1] == "classifier"
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(kept.logits(x), reference.eval()(x), atol=1e-3)  # channels_last reorders sums


@pytest.mark.parametrize(("change", "message"), [
    ("drop", "missing key 'blocks.3.0.conv_pw.weight'"),
    ("extra", "unexpected key 'blocks.9.weight'"),
    ("shape", "key 'conv_head.weight' has shape"),
])
def test_strict_loading_names_the_key(tmp_path: Path, change: str, message: str, make_entry: Any) -> None:
    import timm

    state = timm.create_model("mobilenetv2_100", num_classes=0).state_dict()
    if change == "drop":
        del state["blocks.3.0.conv_pw.weight"]
    elif change == "extra":
        state["blocks.9.weight"] = torch.zeros(3)
    else:
        state["conv_head.weight"] = torch.zeros(5, 320, 1, 1)
    with pytest.raises(SourceError, match=message):
        create(make_entry("mobilenetv2_100"), _saved(tmp_path, state), {})


def test_torchvision_layout_pairs_by_order_and_names_missing_keys(tmp_path: Path, make_entry: Any) -> None:
    import torchvision

    tv = torchvision.models.mobilenet_v2(weights=None).state_dict()
    entry = make_entry("mobilenetv2_100", num_classes=1000, config={"weights_layout": "torchvision"})
    # safetensors stores keys sorted by name: pairing must not depend on the file's order.
    backbone = create(entry, _saved(tmp_path, tv), {})
    assert torch.equal(backbone.model.conv_stem.weight, tv["features.0.0.weight"])
    assert torch.equal(backbone.model.conv_head.weight, tv["features.18.0.weight"])
    del tv["features.5.conv.1.0.weight"]
    with pytest.raises(SourceError, match=r"missing key .features\.5\.conv\.1\.0\.weight."):
        create(entry, _saved(tmp_path, tv), {})


def test_unreadable_weights_file_is_a_source_error(tmp_path: Path, make_entry: Any) -> None:
    bad = tmp_path / "weights.safetensors"
    bad.write_bytes(b"garbage")
    with pytest.raises(SourceError, match=r"weights\.safetensors"):
        create(make_entry("mobilenetv2_100"), bad, {})


def test_bad_image_size_is_reported(make_entry: Any) -> None:
    with pytest.raises(DataError, match="image_size"):
        create(make_entry("mobilenetv2_100"), None, {"image_size": 2})


def test_unknown_adapter_option_is_refused_with_the_valid_ones(make_entry: Any) -> None:

    with pytest.raises(OptionError, match=r"no option 'hfip'.*hflip"):
        create(make_entry("mobilenetv2_100"), None, {"hfip": 0})


def test_lukemelas_renaming_maps_blocks_by_stage_and_names_foreign_keys() -> None:
    from graftzoo_vision.weights import from_lukemelas

    t = torch.zeros(1)
    renamed = from_lukemelas({"_blocks.0._depthwise_conv.weight": t, "_blocks.3._expand_conv.weight": t,
                              "_blocks.15._bn2.bias": t, "_conv_head.weight": t, "_fc.bias": t}, "w")
    assert sorted(renamed) == ["blocks.0.0.conv_dw.weight", "blocks.2.0.conv_pw.weight",
                               "blocks.6.0.bn3.bias", "classifier.bias", "conv_head.weight"]
    with pytest.raises(SourceError, match=r"unexpected key '_blocks\.2\._se_reduce\.weight'"):
        from_lukemelas({"_blocks.2._se_reduce.weight": t}, "w")
    with pytest.raises(SourceError, match=r"unexpected key '_blocks\.16\._bn0\.weight'"):
        from_lukemelas({"_blocks.16._bn0.weight": t}, "w")

"""--augment for images: safe default (no flips, mild crops), presets, named transforms, --crop-pct."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from graftzoo.errors import OptionError
from graftzoo_vision import images
from graftzoo_vision.backbone import create


def _names(transform: Any) -> list[str]:
    return [type(t).__name__ for t in transform.transforms]


def test_default_augmentation_never_flips_and_keeps_most_of_the_image(make_entry: Any) -> None:
    backbone = create(make_entry("mobilenetv2_100"), None, {"image_size": 32})
    train = backbone.preprocessing()["train"]
    assert train["augment"] == "light" and train["hflip"] == 0.0 and train["scale"][0] >= 0.8
    names = _names(images.build_transform(backbone.preprocessing(), train=True))
    assert "RandomHorizontalFlip" not in names and "RandomResizedCropAndInterpolation" in names


def test_strong_preset_and_named_transforms(make_entry: Any) -> None:
    strong = create(make_entry("mobilenetv2_100"), None, {"image_size": 32, "augment": "strong"})
    names = _names(images.build_transform(strong.preprocessing(), train=True))
    assert "RandomHorizontalFlip" in names and "RandAugment" in names
    named = create(make_entry("mobilenetv2_100"), None, {"image_size": 32, "augment": "hflip,trivialaugment"})
    train = named.preprocessing()["train"]
    assert train["hflip"] == 0.5 and train["scale"] == [1.0, 1.0]  # named transforms start from no crop
    names = _names(images.build_transform(named.preprocessing(), train=True))
    assert "TrivialAugmentWide" in names and names.index("TrivialAugmentWide") < names.index("MaybeToTensor")
    batch = named.collate([np.zeros((8, 8), np.uint8)] * 2, train=True)
    assert batch.shape == (2, 3, 32, 32)
    with pytest.raises(OptionError, match=r"unknown vision transform 'wobble'.*randaugment"):
        create(make_entry("mobilenetv2_100"), None, {"augment": "hflip,wobble"})


def test_augment_none_trains_on_the_evaluation_pixels(make_entry: Any) -> None:
    backbone = create(make_entry("mobilenetv2_100"), None, {"image_size": 32, "augment": "none",
                                                            "crop_pct": 1.0})
    assert backbone.preprocessing()["crop_pct"] == 1.0
    rng = np.random.default_rng(0)
    sample = [rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)]
    torch.manual_seed(0)
    assert torch.equal(backbone.collate(sample, train=True), backbone.collate(sample, train=False))


def test_evaluation_crops_as_the_model_was_trained_unless_asked(make_entry: Any) -> None:
    entry = make_entry("mobilenetv2_100", input={"crop_pct": 0.9})
    assert create(entry, None, {}).preprocessing()["crop_pct"] == 0.9  # the entry's (timm's) crop
    assert create(entry, None, {"crop_pct": 1.0}).preprocessing()["crop_pct"] == 1.0  # --crop-pct 1: whole image
    # ImageNet predictions with the original classifier are scored the way the entry says
    from graftzoo_vision.images import resolve_preprocessing

    assert resolve_preprocessing({"crop_pct": 0.875}, {}, {"keep_classifier": True})["crop_pct"] == 0.875


@pytest.mark.parametrize(("augment", "interpolation"), [("none", None), ("light", None), ("strong", None),
                                                        ("none", "bicubic"), ("crop,hflip,vflip", "bicubic"),
                                                        ("colorjitter", None)])
def test_batched_to_tensor_and_normalise_give_the_per_image_values(make_entry: Any, augment: str,
                                                                   interpolation: str | None) -> None:
    """Collation normalises the stacked batch once and resizes grey images as one channel (issue 19); the values
    are those of timm's per-image transform of the RGB image."""
    import random

    from PIL import Image

    backbone = create(make_entry("mobilenetv2_100"), None, {"image_size": 32, "augment": augment,
                                                             "interpolation": interpolation})
    rng = np.random.default_rng(0)
    grey = [rng.integers(0, 256, size=(8 + 5 * i, 8 + 3 * i), dtype=np.uint8) for i in range(4)]
    samples = [rng.integers(0, 256, size=(20 + i, 24, 3), dtype=np.uint8) for i in range(6)] + grey + \
        [Image.fromarray(grey[1]), rng.random((9, 7)).astype(np.float32)]  # grey (resized as one channel), sizes
    assert all(images.to_pil(g, keep_gray=True).mode == "L" for g in samples[6:])
    for train in (False, True):
        transform = images.build_transform(backbone.preprocessing(), train)
        torch.manual_seed(1), random.seed(1), np.random.seed(1)  # RandAugment draws from numpy
        expected = torch.stack([transform(images.to_pil(s)) for s in samples])
        for channels_last in (False, True):
            torch.manual_seed(1), random.seed(1), np.random.seed(1)
            got = images.stack(samples, transform, channels_last)
            assert torch.equal(got, expected)
            assert got.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def test_matched_crop_follows_the_training_crops() -> None:
    """FixRes: the centre crop at which objects look as large as in the training crops, (sqrt(a) + sqrt(b)) / 2."""
    assert images.matched_crop(images.augment_settings("light")) == 0.9472
    assert images.matched_crop(images.augment_settings("strong")) == 0.7958
    assert images.matched_crop(images.augment_settings("hflip")) == 1.0  # trained on whole images
    assert images.matched_crop(images.augment_settings("none")) is None  # trained on the evaluation crop itself


@pytest.mark.parametrize(("policy", "options", "crop"), [
    ("full", {}, 0.9472),  # fine-tuned: the crop its light training crops match
    ("top-k", {"unfreeze": 1}, 0.9472),
    ("frozen", {}, 0.875),  # the backbone never changes: the crop it was pretrained for
    ("full", {"crop_pct": 0.9}, 0.9),  # --crop-pct wins
    ("full", {"augment": "none"}, 0.875),  # training saw the evaluation crop
])
def test_a_fine_tuned_backbone_is_evaluated_on_its_matched_crop(tmp_path: Any, policy: str, options: dict[str, Any],
                                                                crop: float) -> None:
    from graftzoo.data import LabelledData
    from graftzoo.train.config import TrainConfig
    from graftzoo.train.engine import train
    from graftzoo.train.run import load_run

    rng = np.random.default_rng(0)
    data = LabelledData([rng.integers(0, 255, (12, 12), dtype=np.uint8) for _ in range(8)], ["a", "b"] * 4,
                        name="tiny")
    config = TrainConfig(model="mobilenetv2_100.tv_in1k", data="tiny", policy=policy, pretrained=False, epochs=1,
                         image_size=16, batch_size=4, val_split=0.0, probe="sgd", **options)
    info = train(config, tmp_path / "run", data=data, progress=False)
    assert info["preprocessing"]["crop_pct"] == crop
    run = load_run(tmp_path / "run")  # evaluate/predict/export rebuild the same pipeline from graft.json
    assert run.model.backbone.preprocessing()["crop_pct"] == crop
    assert run.model.backbone.preprocessing()["train"] == info["preprocessing"]["train"]

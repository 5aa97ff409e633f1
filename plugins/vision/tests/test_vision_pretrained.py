"""Real ImageNet weights from the offline packages: the networks recognise real photos.

scikit-image ships photographs with one clear ImageNet class: ``coffee`` (a
cup of espresso) and ``chelsea`` (a tabby cat). If the weight conversion
(torchvision order pairing, lukemelas renaming) were off by one tensor, the
predictions would be noise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from skimage import data as photos

from graftzoo.errors import SourceError
from graftzoo_vision.backbone import create

ESPRESSO, CUP = 967, 968
CATS = {281, 282, 285}  # tabby, tiger cat, Egyptian cat

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("model_id", ["mobilenetv2_100.tv_in1k", "efficientnet_lite0.lukemelas_in1k"])
def test_pretrained_classifier_recognises_real_photos(real_weights: dict[str, tuple[Any, Path]],
                                                      model_id: str) -> None:
    entry, path = real_weights[model_id]
    backbone = create(entry, path, {"keep_classifier": True}).eval()
    with torch.no_grad():
        probs = backbone.logits(backbone.collate([photos.coffee(), photos.chelsea()], train=False)).softmax(-1)
    top = probs.argmax(-1).tolist()
    assert top[0] in (ESPRESSO, CUP), f"coffee -> class {top[0]}"
    assert top[1] in CATS, f"chelsea -> class {top[1]}"
    assert probs[0, ESPRESSO] > 0.5


def test_backbone_without_classifier_gives_the_classifier_inputs(real_weights: dict[str, tuple[Any, Path]]) -> None:
    entry, path = real_weights["mobilenetv2_100.tv_in1k"]
    kept = create(entry, path, {"keep_classifier": True}).eval()
    plain = create(entry, path, {}).eval()
    assert "classifier" not in dict(plain.groups())
    x = plain.collate([photos.coffee()], train=False)
    with torch.no_grad():
        features = plain(x)
        assert features.shape == (1, 1280)
        assert torch.allclose(kept.model.classifier(features), kept.logits(x), atol=1e-4)


def test_weights_for_another_architecture_are_refused_naming_a_key(
        real_weights: dict[str, tuple[Any, Path]]) -> None:
    entry, _ = real_weights["mobilenetv2_100.tv_in1k"]
    _, lite_path = real_weights["efficientnet_lite0.lukemelas_in1k"]
    with pytest.raises(SourceError, match=r"missing key 'features\.0\.0\.weight'"):
        create(entry, lite_path, {})

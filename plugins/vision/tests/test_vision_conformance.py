"""The plugin against Graftzoo's conformance kit (the checks every plugin author runs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from graftzoo import testing as kit
from graftzoo.data import LabelledData
from graftzoo_vision.data import digits_arrays, write_imagefolder


def test_plugin_registrations_and_light_import() -> None:
    table = kit.check_plugin("vision")
    assert "timm" in table["backbones"]
    kit.check_light_import("graftzoo_vision.hooks")


def test_dataset_formats(tmp_path: Path) -> None:
    images, targets = digits_arrays()
    picks = [i for d in (3, 7) for i in np.flatnonzero(targets == d)[:4]]
    root = write_imagefolder(LabelledData([images[i] for i in picks], [str(targets[i]) for i in picks],
                                          name="d"), tmp_path / "imgs")
    assert len(kit.check_dataset_format("imagefolder", root, modality="vision", expected_classes=["3", "7"])) == 8
    assert len(kit.check_dataset_format("digits", modality="vision")) == 1797


@pytest.mark.slow
def test_timm_adapter_with_real_weights_under_every_policy(tmp_path: Path) -> None:
    images, _ = digits_arrays()
    results = kit.check_backbone_adapter("mobilenetv2_100.tv_in1k", list(images[:4]),
                                         options={"image_size": 32}, tmp_path=tmp_path)
    assert results and all(v == "ok" or v.startswith("not applicable") for v in results.values()), results

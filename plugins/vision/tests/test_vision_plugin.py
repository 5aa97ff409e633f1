"""The plugin as Graftzoo sees it: what it registers (light imports: see test_vision_conformance)."""

from __future__ import annotations

from graftzoo.plugins import get_plugins


def test_registers_the_timm_adapter_and_image_datasets() -> None:
    plugins = get_plugins()
    assert plugins.get("backbones", "timm").plugin == "vision"
    datasets = plugins.collect("datasets")
    assert datasets["imagefolder"].meta["modality"] == "vision"
    assert datasets["digits"].meta["named"] and datasets["digits-inverted"].meta["named"]
    assert callable(plugins.get("backbones", "timm").resolve())


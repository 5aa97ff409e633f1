"""The plugin as Graftzoo sees it: registrations, and no heavy imports when listing."""

from __future__ import annotations

import subprocess
import sys

from graftzoo.plugins import get_plugins


def test_registers_the_timm_adapter_and_image_datasets() -> None:
    plugins = get_plugins()
    assert plugins.get("backbones", "timm").plugin == "vision"
    datasets = plugins.collect("datasets")
    assert datasets["imagefolder"].meta["modality"] == "vision"
    assert datasets["digits"].meta["named"] and datasets["digits-inverted"].meta["named"]
    assert callable(plugins.get("backbones", "timm").resolve())


def test_hooks_module_imports_no_heavy_library() -> None:
    code = ("import sys, graftzoo_vision.hooks; from graftzoo.plugins import get_plugins; "
            "p = get_plugins(); [p.collect(k) for k in ('backbones', 'datasets')]; "
            "print(sorted(m for m in ('torch', 'timm', 'torchvision', 'PIL', 'sklearn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

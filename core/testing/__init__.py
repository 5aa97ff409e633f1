"""The conformance kit: checks that a Graftzoo plugin keeps the contracts the engine relies on.

Plugin authors call these from their tests (``graft plugin new`` generates
such tests); the pytest fixtures ``graftzoo_home``, ``graftzoo_plugins`` and
``graftzoo_plugin`` come with graftzoo through a ``pytest11`` entry point::

    from graftzoo import testing as kit
    from my_plugin import hooks, data

    def test_backbone(graftzoo_plugin, tmp_path):
        graftzoo_plugin(hooks, "my-plugin")
        kit.check_backbone_adapter("mynet.v1", data.example_samples(), tmp_path=tmp_path)

Every failed check raises ``ConformanceError`` (an ``AssertionError`` and a
``GraftError``) whose message names the object, the problem and the fix.
Importing this module is cheap; torch is imported by the checks that need it.
"""

from __future__ import annotations

from typing import Any

from graftzoo.testing._backbone import (
    batch_equal,
    check_backbone,
    check_backbone_adapter,
    check_features,
    check_group_order,
    check_groups,
    check_lora_targets,
    check_preprocessing,
    check_save_load,
)
from graftzoo.testing._base import ConformanceError
from graftzoo.testing._parts import check_dataset_format, check_head
from graftzoo.testing._policies import (
    DEFAULT_OPTIONS,
    check_freeze_policy,
    check_policy_on,
    expected_trainable,
)
from graftzoo.testing._registration import (
    HEAVY_MODULES,
    check_light_import,
    check_model_entries,
    check_plugin,
    plugin_models,
    registered,
    registrations,
)

__all__ = [
    "DEFAULT_OPTIONS",
    "HEAVY_MODULES",
    "ConformanceError",
    "batch_equal",
    "build_backbone",
    "check_backbone",
    "check_backbone_adapter",
    "check_dataset_format",
    "check_features",
    "check_freeze_policy",
    "check_group_order",
    "check_groups",
    "check_head",
    "check_light_import",
    "check_lora_targets",
    "check_model_entries",
    "check_plugin",
    "check_policy_on",
    "check_preprocessing",
    "check_save_load",
    "expected_trainable",
    "plugin_models",
    "reference_backbone",
    "reference_samples",
    "registered",
    "registrations",
]


def build_backbone(model_id: str, pretrained: bool = True) -> Any:
    """The backbone of a registered model, as ``graft tune`` builds it (weights fetched and verified)."""
    from graftzoo.registry import load_registry
    from graftzoo.train.build import build_backbone as build

    return build(load_registry().get(model_id), pretrained=pretrained)


def reference_backbone(seed: int = 0) -> object:
    """The kit's tiny reference ``Backbone`` (3 groups, BatchNorm, biases, a LoRA target); imports torch."""
    from graftzoo.testing._reference import ReferenceBackbone

    return ReferenceBackbone(seed)


def reference_samples(n: int = 4) -> list[object]:
    """``n`` sample inputs for ``reference_backbone()``."""
    from graftzoo.testing._reference import reference_samples as samples

    return list(samples(n))

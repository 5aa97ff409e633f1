"""The conformance kit passes good plugins and fails broken ones with a message naming the problem."""

from __future__ import annotations

import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from graftzoo import testing as kit
from graftzoo.data import LabelledData
from graftzoo.hookspecs import hookimpl
from graftzoo.registry import ModelEntry
from graftzoo.testing import ConformanceError
from graftzoo.testing._reference import ReferenceBackbone, reference_samples

from . import broken

SAMPLES = reference_samples()


def adapter_plugin(backbone_class: type[ReferenceBackbone]) -> types.ModuleType:
    """A plugin module registering an adapter 'ref' that builds ``backbone_class``."""
    module = types.ModuleType("ref_plugin")

    @hookimpl
    def register_backbones(register: Callable[..., None]) -> None:
        register("ref", lambda entry, weights, options: backbone_class(), modality="vision")

    module.register_backbones = register_backbones  # type: ignore[attr-defined]
    return module


ENTRY = ModelEntry(id="ref.v1", modality="vision", backbone="ref", source="file://ref.safetensors",
                   license="MIT", sha256="0" * 64, tasks=("image-classification",))


def test_reference_adapter_passes_every_builtin_policy(graftzoo_plugin: Callable[..., None], tmp_path: Path) -> None:
    graftzoo_plugin(adapter_plugin(ReferenceBackbone), "ref")
    results = kit.check_backbone_adapter(ENTRY, SAMPLES, pretrained=False, tmp_path=tmp_path)
    assert results == dict.fromkeys(["bitfit", "frozen", "full", "gradual", "lora", "top-k"], "ok")


@pytest.mark.parametrize(("backbone", "message"), [
    (broken.WrongFeatureDim, r"feature_dim is 7 but forward\(\) returned features of shape \(4, 6\)"),
    (broken.ParamInNoGroup, r"parameter 'scale' is in no group"),
    (broken.ParamInTwoGroups, r"parameter 'top.fc.weight' is in groups 'top' and 'again'"),
    (broken.GroupsReversed, r"groups\(\) are not ordered from input to output: forward\(\) runs 'stem' before"),
    (broken.UnusedGroup, r"group 'classifier' gets no gradient from forward\(\)"),
    (broken.TuplePreprocessing, r"preprocessing\(\) key 'mean' changes through JSON"),
    (broken.NoisyEval, r"forward\(\) in eval mode gives different features for the same batch"),
    (broken.HardTargetMixer, r"batch_mixer\(\) returned targets a Tensor of shape \(3,\), not soft targets"),
    (broken.UnseededMixer, r"batch_mixer\(\) mixes differently for the same torch seed"),
    (broken.EvenOnlyMixer, r"batch_mixer\(\) failed on a batch of 3: AssertionError"),
    (broken.FixedAugmentation, r"default_views is 4 but collate\(samples, train=True\) gave the same batch "
                               r"for 4 torch seeds"),
])
def test_broken_backbone_fails_with_named_problem(backbone: type[ReferenceBackbone], message: str) -> None:
    with pytest.raises(ConformanceError, match=message):
        kit.check_backbone(backbone(), SAMPLES)


def test_broken_adapter_fails_through_the_registry(graftzoo_plugin: Callable[..., None]) -> None:
    graftzoo_plugin(adapter_plugin(broken.WrongFeatureDim), "ref")
    with pytest.raises(AssertionError, match=r"backbone WrongFeatureDim: feature_dim is 7"):
        kit.check_backbone_adapter(ENTRY, SAMPLES, pretrained=False, policies=[])


def test_fine_tuning_change_a_saved_run_cannot_rebuild_fails(graftzoo_plugin: Callable[..., None]) -> None:
    graftzoo_plugin(adapter_plugin(broken.UnsavedFineTuning), "ref")
    with pytest.raises(ConformanceError, match=r"a build with the options fine_tuning\(\) returned \(\{\}\) has other "
                                               r"preprocessing than the fine-tuned backbone"):
        kit.check_backbone_adapter(ENTRY, SAMPLES, pretrained=False, policies=[])


def test_state_outside_the_state_dict_fails_save_load() -> None:
    with pytest.raises(ConformanceError, match=r"features differ after a safetensors save/load round trip"):
        kit.check_save_load(broken.UnregisteredState(), broken.UnregisteredState(), SAMPLES)


def test_policy_leaving_frozen_weights_trainable_fails(graftzoo_plugin: Callable[..., None]) -> None:
    plugin = types.ModuleType("leaky")

    @hookimpl
    def register_freeze_policies(register: Callable[..., None]) -> None:
        register("leaky-top-k", broken.LeakyTopK)

    plugin.register_freeze_policies = register_freeze_policies  # type: ignore[attr-defined]
    graftzoo_plugin(plugin, "leaky")
    message = (r"freeze policy 'leaky-top-k': parameter 'stem.0.weight' \(group 'stem'\) is trainable at epoch 0, "
               r"but the policy should leave it frozen")
    with pytest.raises(ConformanceError, match=message):
        kit.check_freeze_policy("leaky-top-k", expected="top-k")


def test_policy_letting_frozen_batchnorm_statistics_drift_fails() -> None:
    with pytest.raises(ConformanceError, match=r"group 'stem' runs in train mode at epoch 0 but none of its "
                                               r"parameters train"):
        kit.check_freeze_policy(broken.DriftingTopK, expected="top-k")


def test_lora_bypassed_by_a_fused_fast_path_fails() -> None:
    with pytest.raises(ConformanceError, match=r"freeze policy 'lora': no trainable backbone parameter gets a "
                                               r"gradient in a training step at epoch 0"):
        kit.check_freeze_policy("lora", make_backbone=broken.FusedLoraBypass, samples=SAMPLES)


def test_policy_with_custom_expectation() -> None:
    def only_top(backbone: Any, epoch: int) -> set[str]:
        return {n for n, _ in backbone.named_parameters() if n.startswith("top.")}

    assert kit.check_freeze_policy("top-k", expected=only_top) == "ok"
    with pytest.raises(ConformanceError, match=r"parameter 'block.0.weight' \(group 'block'\) is frozen at epoch 0"):
        kit.check_freeze_policy("top-k", options={"unfreeze": 1},
                                expected=lambda b, e: {n for n, _ in b.named_parameters() if n[:4] in ("top.", "bloc")})


@pytest.mark.parametrize("head", ["linear", "mlp", "token"])
def test_builtin_heads_pass(head: str) -> None:
    kit.check_head(head, tokens=True)


def test_prototype_head_passes_without_dropout() -> None:
    kit.check_head("prototype", tokens=True, dropout=False)


def test_broken_heads_fail() -> None:
    with pytest.raises(ConformanceError, match=r"ignores the dropout option"):
        kit.check_head(broken.head_without_dropout)
    with pytest.raises(ConformanceError, match=r"rejects an option it does not know"):
        kit.check_head(broken.head_without_options)


def _format_plugin(detect: Callable[[Path], bool], load: Callable[..., LabelledData]) -> types.ModuleType:
    plugin = types.ModuleType("fmt")

    @hookimpl
    def register_datasets(register: Callable[..., None]) -> None:
        register("lines", load, modality="text", detect=detect)

    plugin.register_datasets = register_datasets  # type: ignore[attr-defined]
    return plugin


def _load_lines(location: str, **options: Any) -> LabelledData:
    rows = [line.split(" ", 1) for line in Path(location).read_text().splitlines() if line]
    return LabelledData(samples=[t for _, t in rows], labels=[label for label, _ in rows], name="lines",
                        modality="text")


def test_dataset_format_checks(graftzoo_plugin: Callable[..., None], tmp_path: Path) -> None:
    sample = tmp_path / "data.lines"
    sample.write_text("pos good film\nneg bad film\npos fine\n")
    graftzoo_plugin(_format_plugin(lambda p: p.suffix == ".lines", _load_lines), "fmt")
    data = kit.check_dataset_format("lines", sample, expected_classes=["neg", "pos"])
    assert len(data) == 3
    with pytest.raises(ConformanceError, match=r"classes are \['neg', 'pos'\], expected \['neg', 'pos', 'zero'\]"):
        kit.check_dataset_format("lines", sample, expected_classes=["neg", "pos", "zero"])


def test_greedy_detector_fails(graftzoo_plugin: Callable[..., None], tmp_path: Path) -> None:
    sample = tmp_path / "data.lines"
    sample.write_text("pos good film\n")
    graftzoo_plugin(_format_plugin(lambda p: True, _load_lines), "fmt")
    with pytest.raises(ConformanceError, match=r"dataset 'lines' of plugin 'fmt': detect\(\) claims an empty dir"):
        kit.check_dataset_format("lines", sample)


def test_registered_is_undone_and_refuses_a_taken_name(graftzoo_plugins: Any) -> None:
    plugin = adapter_plugin(ReferenceBackbone)
    with kit.registered(plugin, "ref") as manager:
        assert "ref" in manager.collect("backbones")
        with pytest.raises(ConformanceError, match=r"plugin 'ref': that name is already registered"):
            with kit.registered(adapter_plugin(ReferenceBackbone), "ref"):
                pass
    assert "ref" not in graftzoo_plugins.collect("backbones")


def test_colliding_plugin_fails_check_plugin(graftzoo_plugin: Callable[..., None]) -> None:
    plugin = types.ModuleType("clash")

    @hookimpl
    def register_heads(register: Callable[..., None]) -> None:
        register("linear", broken.head_without_dropout)

    plugin.register_heads = register_heads  # type: ignore[attr-defined]
    graftzoo_plugin(plugin, "clash")
    with pytest.raises(ConformanceError, match=r"plugin 'clash': reported problems: head 'linear' is registered by "
                                               r"both 'graftzoo.builtins' and 'clash'"):
        kit.check_plugin("clash")


def test_heavy_hook_module_fails_light_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "heavy_hooks.py").write_text("import torch\n")
    (tmp_path / "light_hooks.py").write_text("import graftzoo\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    kit.check_light_import("light_hooks")
    with pytest.raises(ConformanceError, match=r"module 'heavy_hooks': imports torch at import time"):
        kit.check_light_import("heavy_hooks")


def test_importing_the_kit_is_light() -> None:
    kit.check_light_import("graftzoo.testing")


class _ClashesWithVision:
    @hookimpl
    def register_backbones(self, register: Callable[..., None]) -> None:
        register("timm", "graftzoo.train.heads:linear_head", modality="vision")


def test_check_plugin_beside_the_installed_plugins(graftzoo_plugin: Callable[..., None]) -> None:
    graftzoo_plugin(_ClashesWithVision(), "clasher")
    assert set(kit.check_plugin("clasher")["backbones"]) == {"timm"}  # alone (built-ins only) it is fine
    with pytest.raises(kit.ConformanceError, match=r"plugin 'clasher': clashes with the installed plugins: .*"
                                                   r"backbone adapter 'timm' is registered by both"):
        kit.check_plugin("clasher", with_installed=True)

"""The plugin API of this release: typed register callables, registered modalities, formats and named
datasets as separate hooks, a deterministic collision rule, and first-release plugins that keep working."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from graftzoo import hookimpl
from graftzoo.errors import PluginError, RegistryError
from graftzoo.hookspecs import (
    Register,
    RegisterBackbone,
    RegisterDataFormat,
    RegisterHead,
    RegisterModality,
    RegisterModel,
    RegisterNamedDataset,
)
from graftzoo.plugins import EntryPoint, Plugins


class _Typo:
    @hookimpl
    def register_backbones(self, register: RegisterBackbone) -> None:
        register("good", "x:y", modality="vision")
        register("typo-net", "x:y", modalty="vision")  # type: ignore[call-arg]


def test_a_misspelt_register_keyword_is_a_plugin_error_naming_plugin_and_keyword() -> None:
    plugins = Plugins(entry_points=False)
    plugins.add(_Typo(), "typo")
    table = plugins.collect("backbones")
    assert "good" not in table and "typo-net" not in table  # nothing of the failing hook is kept
    (info,) = [i for i in plugins.infos(collect_all=False) if i.name == "typo"]
    assert info.errors == ["plugin 'typo': register_backbones(): unknown keyword 'modalty' for backbone adapter "
                           "'typo-net'; did you mean 'modality'? valid keywords: modality, description, "
                           "hub_libraries, hub_tasks, hub_entry"]
    with pytest.raises(PluginError, match=r"unknown backbone adapter 'typo-net'; .*plugin\(s\) with problems, "
                                          r"which may be why: typo \(plugin 'typo': register_backbones\(\): unknown "
                                          r"keyword 'modalty'"):
        plugins.get("backbones", "typo-net")


class _Wrong:
    @hookimpl
    def register_heads(self, register: RegisterHead) -> None:
        register("cos", "x:y", description=3)  # type: ignore[arg-type]

    @hookimpl
    def register_modalities(self, register: RegisterModality) -> None:
        register("smell", "x:y")  # type: ignore[call-arg]


def test_wrong_types_and_targets_are_named() -> None:
    plugins = Plugins(entry_points=False)
    plugins.add(_Wrong(), "wrong")
    plugins.infos()
    (info,) = [i for i in plugins.infos(collect_all=False) if i.name == "wrong"]
    assert "plugin 'wrong': register_heads(): description=3 for head 'cos' is a int; expected str" in info.errors
    assert ("plugin 'wrong': register_modalities(): a modality takes no target; call register('smell', task=...)"
            in info.errors)


def load_npz(location: str, **options: Any) -> Any:
    from graftzoo.data import LabelledData

    return LabelledData(["a", "b"], ["x", "y"], name=location, modality="smell")


class _Smell:
    @hookimpl
    def register_modalities(self, register: RegisterModality) -> None:
        register("smell", task="smell-classification", pipeline_tag="other", description="e-nose readings")

    @hookimpl
    def register_data_formats(self, register: RegisterDataFormat) -> None:
        register("smell-npz", load_npz, modality="smell", detect=lambda path: Path(path).suffix == ".smell")

    @hookimpl
    def register_named_datasets(self, register: RegisterNamedDataset) -> None:
        register("coffee", load_npz, modality="smell", description="two coffees")

    @hookimpl
    def register_models(self, register: RegisterModel) -> None:
        register({"id": "nose.v1", "modality": "smell", "backbone": "nose", "source": "file:///nowhere.safetensors",
                  "sha256": "0" * 64, "license": "MIT"})


def test_a_plugin_registers_a_modality_a_format_and_a_named_dataset(fresh_plugins: None, tmp_path: Path) -> None:
    from graftzoo.data import load_data
    from graftzoo.plugins import get_plugins
    from graftzoo.registry import entry_from_dict, load_registry, modalities

    raw = {"id": "nose.v1", "modality": "smell", "backbone": "nose", "source": "file:///n.safetensors",
           "sha256": "0" * 64, "license": "MIT"}
    with pytest.raises(RegistryError, match=r"unknown modality 'smell' \(registered: vision, text, audio; install"):
        entry_from_dict(raw, "test")
    get_plugins().add(_Smell(), "smell")
    assert modalities() == ["vision", "text", "audio", "smell"]
    assert load_registry().get("nose.v1").modality == "smell"
    (tmp_path / "x.smell").write_text("")
    assert load_data(str(tmp_path / "x.smell")).modality == "smell"
    assert get_plugins().get("datasets", "coffee").meta["named"] is True
    assert get_plugins().get("datasets", "smell-npz").meta["named"] is False
    assert load_data("coffee").name == "coffee"


class _FirstRelease:
    """A plugin written against the first landing's documented API: untyped Register, register_datasets."""

    @hookimpl
    def register_datasets(self, register: Register) -> None:
        register("old-format", load_npz, modality="vision", detect=lambda path: False, description="old")
        register("old-set", load_npz, modality="vision", named=True, description="old named")

    @hookimpl
    def register_heads(self, register: Register) -> None:
        register("old-head", "graftzoo.train.heads:linear_head", description="old")


def test_first_release_plugins_keep_working() -> None:
    plugins = Plugins(entry_points=False)
    plugins.add(_FirstRelease(), "old")
    assert plugins.get("datasets", "old-set").meta["named"] is True
    assert plugins.get("datasets", "old-format").meta["named"] is False
    assert plugins.get("heads", "old-head").plugin == "old"
    assert all(i.ok for i in plugins.infos())


class _HeadA:
    @hookimpl
    def register_heads(self, register: RegisterHead) -> None:
        register("shared", "a:head")


class _HeadB:
    @hookimpl
    def register_heads(self, register: RegisterHead) -> None:
        register("shared", "b:head")


@pytest.mark.parametrize("order", [["alpha", "beta"], ["beta", "alpha"]])
def test_collisions_are_won_by_the_first_entry_point_name_whatever_the_discovery_order(
        order: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import graftzoo.plugins as plugins_module

    objects = {"alpha": _HeadA(), "beta": _HeadB()}
    monkeypatch.setattr(plugins_module, "discover_entry_points",
                        lambda: [EntryPoint(name, f"mod_{name}", "1.0") for name in order])
    monkeypatch.setattr(plugins_module, "resolve", lambda target, what: objects[target.removeprefix("mod_")])
    plugins = Plugins(entry_points=True)
    assert plugins.get("heads", "shared").plugin == "alpha"
    (beta,) = [i for i in plugins.infos(collect_all=False) if i.name == "beta"]
    assert beta.errors and "registered by both 'alpha' and 'beta'" in beta.errors[0]

"""Hook specifications: the whole contract between Graftzoo and its plugins.

Every registering hook receives a ``register`` callable typed by a Protocol
below; a keyword it does not list is a ``PluginError`` naming the plugin and
the keyword, raised while the hook runs (the plugin's registrations of that
hook are then left out and ``graft plugins`` shows why). ``Register`` is the
untyped alias of the first release, kept so old hooks modules still import.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import pluggy

hookspec = pluggy.HookspecMarker("graftzoo")
hookimpl = pluggy.HookimplMarker("graftzoo")

Register = Callable[..., None]
Target = Any  # the object, or a "module:attr" string imported on first use


class RegisterModality(Protocol):
    def __call__(self, name: str, *, task: str, pipeline_tag: str = "", inputs: str = "files",
                 description: str = "") -> None: ...


class RegisterBackbone(Protocol):
    def __call__(self, name: str, factory: Target, *, modality: str, description: str = "",
                 hub_libraries: Sequence[str] = (), hub_tasks: Sequence[str] = (),
                 hub_entry: Target | None = None) -> None: ...


class RegisterHead(Protocol):
    def __call__(self, name: str, factory: Target, *, description: str = "") -> None: ...


class RegisterDataFormat(Protocol):
    def __call__(self, name: str, loader: Target, *, modality: str | None, detect: Target | None = None,
                 task: str = "classification", description: str = "") -> None: ...


class RegisterNamedDataset(Protocol):
    def __call__(self, name: str, loader: Target, *, modality: str | None, task: str = "classification",
                 description: str = "") -> None: ...


class RegisterDataset(Protocol):
    def __call__(self, name: str, loader: Target, *, modality: str | None, detect: Target | None = None,
                 named: bool = False, task: str = "classification", description: str = "") -> None: ...


class RegisterFreezePolicy(Protocol):
    def __call__(self, name: str, factory: Target, *, description: str = "") -> None: ...


class RegisterModel(Protocol):
    def __call__(self, entry: Any) -> None: ...


@hookspec
def register_modalities(register: RegisterModality) -> None:
    """Register modalities: register(name, task=..., pipeline_tag=..., inputs="files"|"text", description=...)."""


@hookspec
def register_backbones(register: RegisterBackbone) -> None:
    """Register backbone adapters: register(name, factory, modality=..., hub_libraries=..., hub_entry=...)."""


@hookspec
def register_heads(register: RegisterHead) -> None:
    """Register heads: register(name, factory) with factory(feature_dim, num_outputs, **options)."""


@hookspec
def register_data_formats(register: RegisterDataFormat) -> None:
    """Register data formats: register(name, loader, modality=..., detect=..., task=..., description=...)."""


@hookspec
def register_named_datasets(register: RegisterNamedDataset) -> None:
    """Register named datasets: register(name, loader, modality=..., task=..., description=...)."""


@hookspec
def register_datasets(register: RegisterDataset) -> None:
    """Register data formats and named datasets in one hook (first release): register(..., named=True|False)."""


@hookspec
def register_freeze_policies(register: RegisterFreezePolicy) -> None:
    """Register freeze policies: register(name, policy_factory) with policy_factory(**options)."""


@hookspec
def register_models(register: RegisterModel) -> None:
    """Register registry entries shipped by the plugin: register(entry_dict_or_ModelEntry)."""


@hookspec
def register_commands(cli: Any) -> None:
    """Add extra click commands to the ``graft`` group."""

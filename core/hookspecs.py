"""Hook specifications: the whole contract between Graftzoo and its plugins."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("graftzoo")
hookimpl = pluggy.HookimplMarker("graftzoo")

Register = Callable[..., None]


@hookspec
def register_backbones(register: Register) -> None:
    """Register backbone adapters: register(name, factory, modality=...)."""


@hookspec
def register_heads(register: Register) -> None:
    """Register heads: register(name, factory) with factory(feature_dim, num_outputs, **options)."""


@hookspec
def register_datasets(register: Register) -> None:
    """Register data formats and named datasets: register(name, loader, modality=..., detect=..., named=...)."""


@hookspec
def register_freeze_policies(register: Register) -> None:
    """Register freeze policies: register(name, policy_factory)."""


@hookspec
def register_models(register: Register) -> None:
    """Register registry entries shipped by the plugin: register(entry_dict_or_ModelEntry)."""


@hookspec
def register_commands(cli: Any) -> None:
    """Add extra click commands to the ``graft`` group."""

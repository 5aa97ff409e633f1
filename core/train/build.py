"""Building backbones and heads from registry entries and plugins."""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from graftzoo.errors import PluginError, RegistryError, SourceError, TrainingError
from graftzoo.registry import ModelEntry, load_registry
from graftzoo.train.backbone import Backbone

_MODALITY_PLUGIN = {"vision": "graftzoo-vision", "text": "graftzoo-nlp", "audio": "graftzoo-speech"}


def resolve_entry(model: str | ModelEntry) -> ModelEntry:
    """A ``ModelEntry`` from an id (registry lookup, which lists close matches) or an entry."""
    if isinstance(model, ModelEntry):
        return model
    registry = load_registry()
    try:
        return registry.get(model)
    except RegistryError as exc:
        ids = sorted(e.id for e in registry)
        listing = ", ".join(ids[:30]) + (" ..." if len(ids) > 30 else "")
        raise RegistryError(f"{exc}; valid models: {listing or 'none'}") from None


def fetch_weights(entry: ModelEntry) -> Path:
    """The verified local weights of ``entry`` through ``graftzoo.sources.fetch``."""
    try:
        sources: Any = importlib.import_module("graftzoo.sources")
    except ImportError as exc:  # pragma: no cover - sources is part of core
        raise SourceError(f"{entry.id}: graftzoo.sources cannot be imported ({exc})") from exc
    fetch = getattr(sources, "fetch", None)
    if fetch is None:
        raise SourceError(f"{entry.id}: this Graftzoo build cannot fetch weights (graftzoo.sources.fetch is missing); "
                          "use --no-pretrained or update Graftzoo")
    path: Path = Path(fetch(entry))
    return path


def build_backbone(entry: ModelEntry, pretrained: bool = True, options: Mapping[str, Any] | None = None) -> Backbone:
    """Build ``entry``'s backbone through its adapter plugin.

    ``pretrained`` fetches (and verifies) the weights first; otherwise the
    adapter initialises at random. ``options`` are the user's preprocessing
    overrides (e.g. ``{"image_size": 64}``), passed to the adapter unchanged.
    """
    from graftzoo.plugins import get_plugins

    try:
        reg = get_plugins().get("backbones", entry.backbone)
    except PluginError:
        plugin = _MODALITY_PLUGIN.get(entry.modality, "the plugin providing it")
        raise PluginError(
            f"{entry.id}: no installed plugin provides the {entry.backbone!r} backbone adapter; "
            f"install {plugin} (pip install {plugin}) and check 'graft plugins'"
        ) from None
    factory = reg.resolve()
    weights = fetch_weights(entry) if pretrained else None
    backbone = factory(entry, weights, dict(options or {}))
    if not isinstance(backbone, Backbone):
        raise PluginError(f"backbone adapter {entry.backbone!r} of plugin {reg.plugin!r} returned "
                          f"{type(backbone).__name__}, not a graftzoo Backbone")
    if backbone.feature_dim <= 0 or not backbone.groups():
        raise PluginError(f"backbone adapter {entry.backbone!r} of plugin {reg.plugin!r}: {entry.id} has no "
                          "feature_dim or no groups()")
    return backbone


def build_head(name: str, feature_dim: int, num_outputs: int, **options: Any) -> nn.Module:
    """A head by its registered name (``linear``, ``mlp``, ``token`` or a plugin's)."""
    from graftzoo.plugins import get_plugins

    reg = get_plugins().get("heads", name)
    try:
        head: nn.Module = reg.resolve()(feature_dim, num_outputs, **options)
    except (TypeError, ValueError) as exc:
        raise TrainingError(f"head {name!r} of plugin {reg.plugin!r}: {exc}") from exc
    return head


def weights_identity(entry: ModelEntry, pretrained: bool) -> str | None:
    """A feature-cache key for the starting weights: entry id, source and checksums; None for random init.

    The source is part of it because a whole hub snapshot (``hf://org/repo@REV``)
    is pinned by its revision alone: moving an entry to another commit must not
    reuse the old commit's features.

    Random initialisations are never cached: two of them differ unless seeded
    identically, and features of random weights are cheap to recompute.
    """
    if not pretrained:
        return None
    return json.dumps({"id": entry.id, "source": entry.source, "sha256": entry.sha256,
                       "files": dict(sorted(entry.files.items()))}, sort_keys=True)

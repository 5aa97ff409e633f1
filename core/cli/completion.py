"""Shell completion for ``graft`` (click's ``_GRAFT_COMPLETE``): model ids, datasets, policies, heads.

Enable it once per shell (see docs/completion.md)::

    eval "$(_GRAFT_COMPLETE=bash_source graft)"     # bash; zsh_source / fish_source for the others

Completion reads the registry and the plugin registrations only: no torch
import, so it answers as fast as ``graft list``.
"""

from __future__ import annotations

import click
from click.shell_completion import CompletionItem


def _names(kind: str) -> list[str]:
    from graftzoo.plugins import get_plugins

    try:
        return sorted(get_plugins().collect(kind))
    except Exception:  # noqa: BLE001 - a broken plugin must not break the user's shell
        return []


def _matching(names: list[str], incomplete: str) -> list[CompletionItem]:
    return [CompletionItem(n) for n in names if n.startswith(incomplete)]


def complete_model_ids(_ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Registered model ids starting with what was typed."""
    from graftzoo.registry import load_registry

    try:
        ids = [entry.id for entry in load_registry()]
    except Exception:  # noqa: BLE001 - a malformed registry must not break the user's shell
        return []
    return _matching(sorted(ids), incomplete)


def complete_datasets(_ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Registered dataset names, then paths."""
    from graftzoo.plugins import get_plugins

    try:
        named = sorted(n for n, r in get_plugins().collect("datasets").items() if r.meta.get("named"))
    except Exception:  # noqa: BLE001
        named = []
    return [*_matching(named, incomplete), CompletionItem(incomplete, type="file")]


def complete_policies(_ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Freeze policies, built-in and from plugins."""
    return _matching(_names("freeze_policies"), incomplete)


def complete_heads(_ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Heads, built-in and from plugins."""
    return _matching(_names("heads"), incomplete)

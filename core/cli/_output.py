"""Output helpers shared by the commands: JSON, and plain tables (``graftzoo.tables``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click

from graftzoo.tables import format_table

__all__ = ["ModalityChoice", "echo_json", "format_table", "warn_plugin_problems"]


def echo_json(data: Any) -> None:
    """Print ``data`` as indented JSON."""
    click.echo(json.dumps(data, indent=2, default=str))


class ModalityChoice(click.Choice[str]):
    """``--modality``: one of the registered modalities, looked up when the option is used (not at import)."""

    def __init__(self) -> None:
        super().__init__([])

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from graftzoo.registry import modalities

        self.choices = tuple(modalities())
        return super().convert(value, param, ctx)

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str:
        return "MODALITY"


def warn_plugin_problems(registry_problems: Sequence[tuple[str, str]] = ()) -> None:
    """One ``Warning:`` line on stderr naming the installed plugins that have problems (``graft plugins`` tells)."""
    from graftzoo.plugins import get_plugins

    broken = sorted({i.name for i in get_plugins().infos() if i.errors} | {p for p, _ in registry_problems})
    if broken:
        click.echo(f"Warning: plugin(s) {', '.join(broken)} have problems, so some of what they provide is missing; "
                   "'graft plugins' shows them", err=True)

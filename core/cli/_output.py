"""Output helpers shared by the commands: JSON, and plain tables (``graftzoo.tables``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from graftzoo.tables import format_table

__all__ = ["ModalityChoice", "echo_json", "format_table", "output_location", "run_location", "warn_plugin_problems"]


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


def run_location(run: str) -> Path:
    """A run directory, or a pushed run ``hf://ORG/REPO[@REV]`` downloaded (verified) into the hub cache."""
    if not run.startswith("hf://"):
        return Path(run)
    from graftzoo.errors import SourceError
    from graftzoo.sources.hubref import resolve_ref

    resolved = resolve_ref(run)
    if resolved.run_dir is None:
        raise SourceError(f"{run} is a model, not a run published with 'graft push'; tune it first "
                          f"('graft tune {run} DATA')")
    return resolved.run_dir


def output_location(run: str, run_dir: Path) -> Path:
    """Where files about a run are written: the run directory, or for a pushed run (whose files are the hub
    cache's) ``$GRAFTZOO_HOME/hub-runs/ORG--REPO/COMMIT``."""
    if not run.startswith("hf://"):
        return run_dir
    from graftzoo.home import graftzoo_home
    from graftzoo.sources.hubref import parse_ref

    return graftzoo_home() / "hub-runs" / parse_ref(run)[0].replace("/", "--") / run_dir.name

"""``graft plugin new``: start a plugin from a working, tested template."""

from __future__ import annotations

from pathlib import Path

import click


@click.group("plugin")
def plugin() -> None:
    """Tools for plugin authors (see docs/plugins.md)."""


@plugin.command("new")
@click.argument("name")
@click.option("--modality", type=click.Choice(["vision", "text", "audio"]), default="vision", show_default=True,
              help="What the example backbone adapter and data format handle.")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="Where to create the plugin's directory.")
def new(name: str, modality: str, directory: Path) -> None:
    """Create plugin NAME (a distribution name, e.g. graftzoo-mynet) in DIR/NAME.

    \b
    The result is a complete distribution: pyproject.toml with the graftzoo
    entry point, a hooks module registering a backbone adapter (a small real
    torch network in groups), a head, a data format, a model whose weights
    ship as safetensors pinned by sha256, a README, and tests that run
    Graftzoo's conformance kit. It installs and passes its tests as generated.
    """
    from graftzoo.scaffold import new_plugin, plugin_names

    names = plugin_names(name)
    target = new_plugin(name, modality, directory)
    click.echo(f"Created {names.dist} ({modality}) in {target}")
    data_format = f"{names.short}-{'tsv' if modality == 'text' else 'npz'}"
    click.echo(f"  {names.pkg}/hooks.py registers backbone adapter {names.short!r}, model {names.model_id!r}, "
               f"head '{names.short}-cosine' and data format {data_format!r}")
    click.echo("Next:")
    click.echo(f"  cd {target}")
    click.echo("  graft install -e .       # into graft's own environment")
    click.echo("  python -m pytest         # the conformance tests")
    click.echo("  graft plugins            # it should say ok")

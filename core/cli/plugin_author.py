"""``graft plugin new``: start a plugin from a working, tested template."""

from __future__ import annotations

from pathlib import Path

import click


@click.group("plugin")
def plugin() -> None:
    """Tools for plugin authors (see docs/plugins.md)."""


@plugin.command("new")
@click.argument("name")
@click.option("--parts", default="backbone,head,policy,dataset,models", show_default=True,
              help="What the plugin contains, comma-separated: backbone, head, policy, dataset, models "
                   "(models ships weights for the backbone, so it needs backbone).")
@click.option("--modality", type=click.Choice(["vision", "text", "audio"]), default="vision", show_default=True,
              help="What the example backbone adapter and data format handle (templates exist for these).")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="Where to create the plugin's directory.")
def new(name: str, parts: str, modality: str, directory: Path) -> None:
    """Create plugin NAME (a distribution name, e.g. graftzoo-mynet) in DIR/NAME.

    \b
    The result is a complete distribution: pyproject.toml with the graftzoo
    entry point (pinned to this Graftzoo's plugin API), a hooks module and
    the parts asked for -- a backbone adapter (a small real torch network in
    groups), a cosine head with its own 'scale' option, a freeze policy with
    its own 'fraction' option, a data format, a model whose weights ship as
    safetensors pinned by sha256 -- a README, a .gitignore, and tests that
    run Graftzoo's conformance kit. It installs and passes its tests as
    generated.

    \b
    Examples:
      graft plugin new graftzoo-mynet --modality audio
      graft plugin new graftzoo-cosine --parts head,policy
    """
    from graftzoo.scaffold import new_plugin, parse_parts, plugin_names

    names = plugin_names(name)
    chosen = parse_parts(parts)
    target = new_plugin(name, modality, directory, chosen)
    click.echo(f"Created {names.dist} ({', '.join(chosen)}) in {target}")
    made = {"backbone": f"backbone adapter {names.short!r}", "models": f"model {names.model_id!r}",
            "head": f"head {names.head!r}", "policy": f"freeze policy {names.policy!r}",
            "dataset": f"data format '{names.short}-{'tsv' if modality == 'text' else 'npz'}'"}
    click.echo(f"  {names.pkg}/hooks.py registers {', '.join(made[p] for p in chosen)}")
    click.echo("Next:")
    click.echo(f"  cd {target}")
    click.echo("  graft install -e .       # into graft's own environment")
    click.echo("  python -m pytest         # the conformance tests")
    click.echo("  graft plugins            # it should say ok")

"""``graft plugins``: installed plugins, what they provide, and their problems."""

from __future__ import annotations

import click

from graftzoo.cli._output import echo_json, format_table
from graftzoo.errors import GraftError
from graftzoo.plugins import PluginInfo, get_plugins
from graftzoo.registry import load_registry


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def plugins_cmd(as_json: bool) -> None:
    """List plugins with their version, the hooks they implement and their status.

    A plugin that failed to import, raised in a hook or registered a name that
    another plugin owns is shown with its error; the others keep working.
    """
    infos = plugin_infos()
    if as_json:
        echo_json([i.to_dict() for i in infos])
        return
    rows = [
        [i.name, i.version or ("builtin" if i.builtin else "-"), ",".join(h.removeprefix("register_") for h in i.hooks),
         "ok" if i.ok else "ERROR: " + "; ".join(i.errors)]
        for i in infos
    ]
    click.echo(format_table(["plugin", "version", "hooks", "status"], rows))


def plugin_infos() -> list[PluginInfo]:
    """Every plugin's status: its hooks collected, and the models it registered that the registry left out."""
    manager = get_plugins()
    manager.infos()
    try:
        problems = load_registry().problems
    except GraftError:
        problems = []  # a broken core registry is reported by 'graft list', not here
    for plugin, message in problems:
        manager.record_problem(plugin, message)
    return manager.infos(collect_all=False)

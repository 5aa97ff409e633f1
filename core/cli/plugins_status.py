"""``graft plugins``: installed plugins, what they provide, and their problems."""

from __future__ import annotations

import shutil
import textwrap
from typing import Any

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
    print_plugin_table([i.to_dict() for i in infos])


def print_plugin_table(infos: list[dict[str, Any]]) -> None:
    """The plugin table (``PluginInfo.to_dict`` rows), then every problem in full, wrapped."""
    rows = [[i["name"], i["version"] or ("builtin" if i["builtin"] else "-"),
             ",".join(h.removeprefix("register_") for h in i["hooks"]),
             "ok" if i["status"] == "ok" else "ERROR"] for i in infos]
    click.echo(format_table(["plugin", "version", "hooks", "status"], rows))
    width = max(40, shutil.get_terminal_size((100, 24)).columns - 4)
    for info in (i for i in infos if i["errors"]):
        click.echo(f"\n{info['name']}:")
        for error in info["errors"]:  # whole messages, wrapped: the fix is usually at the end
            click.echo(textwrap.fill(error, width=width, initial_indent="  - ", subsequent_indent="    "))


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

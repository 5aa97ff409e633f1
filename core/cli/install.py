"""``graft install`` / ``graft uninstall``: pip into the environment graft runs in, as ``llm install`` does.

Plugins must land where ``graft`` will import them, which is not necessarily
where the user's ``pip`` points; ``sys.executable -m pip`` is always right.
Afterwards the plugin table is shown by a fresh ``graft plugins`` process:
this one has already imported (or failed to import) the old code, and the
``.pth`` files of editable installs are only read when Python starts.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import json
import subprocess
import sys
from collections.abc import Sequence

import click

from graftzoo.errors import GraftError

_PASS_THROUGH = {"ignore_unknown_options": True, "help_option_names": ["-h", "--help"]}


def _graftzoo_entry_points() -> dict[str, tuple[str, str | None]]:
    """Plugin name -> (module, distribution version) for every installed ``graftzoo`` entry point."""
    importlib.invalidate_caches()
    return {ep.name: (ep.value, ep.dist.version if ep.dist else None)
            for ep in importlib.metadata.entry_points(group="graftzoo")}


def _pip(args: Sequence[str]) -> None:
    if importlib.util.find_spec("pip") is None:
        raise GraftError(f"pip is not installed in graft's environment ({sys.executable}); "
                         f"run '{sys.executable} -m ensurepip' or install the plugin with your own tool")
    command = [sys.executable, "-m", "pip", *args]
    try:
        code = subprocess.call(command)
    except OSError as exc:
        raise GraftError(f"cannot run pip ({' '.join(command[:3])}): {exc}") from None
    if code != 0:
        raise GraftError(f"pip {args[0]} failed (exit code {code}); see pip's output above")


def _after(before: dict[str, tuple[str, str | None]]) -> None:
    """Forget cached plugins, say what changed, and show the plugin table as a new 'graft' sees it."""
    from graftzoo.plugins import forget_entry_point_index, reset_plugins

    reset_plugins()
    forget_entry_point_index()
    after = _graftzoo_entry_points()
    for name in sorted(set(after) - set(before)):
        click.echo(f"Added plugin {name!r} ({after[name][0]}, version {after[name][1]})")
    for name in sorted(set(before) - set(after)):
        click.echo(f"Removed plugin {name!r}")
    for name in sorted(n for n in set(after) & set(before) if after[n] != before[n]):
        click.echo(f"Updated plugin {name!r} to version {after[name][1]}")
    proc = subprocess.run([sys.executable, "-m", "graftzoo", "plugins", "--json"], capture_output=True, text=True)
    try:
        infos = json.loads(proc.stdout)
    except ValueError:
        raise GraftError(f"'graft plugins' failed after pip ran: {proc.stderr.strip()[-500:]}") from None
    from graftzoo.cli.plugins_status import print_plugin_table

    print_plugin_table(infos)
    broken = sorted(i["name"] for i in infos if i["status"] != "ok" and i["name"] in set(after) - set(before))
    if broken:
        raise GraftError(f"installed, but plugin(s) {', '.join(broken)} failed to load; see the table above")


@click.command("install", context_settings=_PASS_THROUGH)
@click.argument("packages", nargs=-1, required=True, type=click.UNPROCESSED)
def install(packages: tuple[str, ...]) -> None:
    """Install plugins (or anything pip takes) into graft's own environment.

    \b
    Every argument goes to pip unchanged, so pip's options work too:
      graft install graftzoo-mynet
      graft install -U graftzoo-mynet
      graft install -e ./graftzoo-mynet
    Then the plugin table is shown, as 'graft plugins' prints it.
    """
    before = _graftzoo_entry_points()
    _pip(["install", *packages])
    _after(before)


@click.command("uninstall", context_settings=_PASS_THROUGH)
@click.argument("packages", nargs=-1, required=True, type=click.UNPROCESSED)
def uninstall(packages: tuple[str, ...]) -> None:
    """Uninstall plugins from graft's own environment (pip uninstall -y; other pip options pass through)."""
    before = _graftzoo_entry_points()
    _pip(["uninstall", "-y", *packages])
    _after(before)

"""The ``graft`` command line: one module per command, loaded only when used.

Errors are turned into messages in one place, ``GraftGroup.invoke``: a
``GraftError`` becomes one ``Error: ...`` line and exit code 1; a traceback
reaching a user is a bug.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from graftzoo.errors import GraftError

# name -> "module:attribute"; modules are imported only when their command runs
# (or when --help lists them), so 'graft list' never pays for 'graft tune'.
COMMANDS: dict[str, str] = {
    "list": "graftzoo.cli.list_cmd:list_cmd",
    "info": "graftzoo.cli.info:info",
    "add": "graftzoo.cli.add:add",
    "plugins": "graftzoo.cli.plugins_status:plugins_cmd",
    "plugin": "graftzoo.cli.plugin_author:plugin",
    "install": "graftzoo.cli.install:install",
    "uninstall": "graftzoo.cli.install:uninstall",
    "tune": "graftzoo.cli.tune:tune",
    "evaluate": "graftzoo.cli.evaluate:evaluate",
    "predict": "graftzoo.cli.predict:predict",
    "export": "graftzoo.cli.export:export",
    "pull": "graftzoo.cli.pull:pull_cmd",
    "cache": "graftzoo.cli.cache:cache_cmd",
    "push": "graftzoo.cli.push:push_cmd",
    "rank": "graftzoo.cli.rank:rank",
    "adapt": "graftzoo.cli.adapt:adapt",
    "demo": "graftzoo.cli.demo:demo",
}


class GraftGroup(click.Group):
    """A click group with lazily imported commands, plugin commands and one error handler."""

    _plugin_commands_loaded = False

    def _load_plugin_commands(self) -> None:
        if not self._plugin_commands_loaded:
            self._plugin_commands_loaded = True
            from graftzoo.plugins import get_plugins

            get_plugins().register_commands(self)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_plugin_commands()
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS:
            import importlib

            module_name, _, attr = COMMANDS[cmd_name].partition(":")
            command: click.Command = getattr(importlib.import_module(module_name), attr)
            return command
        if cmd_name not in self.commands:
            self._load_plugin_commands()
        return self.commands.get(cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except GraftError as exc:
            raise click.ClickException(str(exc)) from None
        except OSError as exc:  # a full or read-only disk hit by a write outside the atomic helper
            from pathlib import Path

            from graftzoo.storage.atomic import disk_error

            err = disk_error(exc, Path(str(exc.filename or ".")), str(exc.filename or "a file"))
            if err is None:
                raise
            raise click.ClickException(str(err)) from None


@click.group(cls=GraftGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="graftzoo", prog_name="graft")
@click.option("--registry", "registries", multiple=True, metavar="FILE",
              help="Add a registry file as the last layer (repeatable; like GRAFTZOO_REGISTRY).")
def cli(registries: tuple[str, ...]) -> None:
    """Graftzoo: pull pretrained models and fine-tune them on your data.

    \b
    Quick tour:
      graft list --modality vision          what the zoo has
      graft info mobilenetv2_100.tv_in1k    everything about one model
      graft tune mobilenetv2_100.tv_in1k digits --policy frozen
      graft evaluate runs/<run> digits      held-out metrics of a run
      graft plugins                         installed plugins and their status
      graft info hf://ORG/REPO              a hub model: license, size, files, adapter
      graft add hf://ORG/REPO               pin it into your registry

    Registries are layered: the shipped catalogue, plugins' entries, your
    $GRAFTZOO_HOME/registry.toml, then GRAFTZOO_REGISTRY / --registry files.
    """
    if registries:
        import os

        earlier = [p for p in os.environ.get("GRAFTZOO_REGISTRY", "").split(os.pathsep) if p]
        os.environ["GRAFTZOO_REGISTRY"] = os.pathsep.join([*earlier, *registries])


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM stops a command the way Ctrl-C does: cleanly, resumable


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    import signal

    signal.signal(signal.SIGTERM, _terminate)
    try:
        cli.main(args=argv, prog_name="graft")
    except KeyboardInterrupt:  # pragma: no cover - click turns it into Abort first
        click.echo("Interrupted.", err=True)
        sys.exit(130)

"""``graft list``: the zoo's models, filtered."""

from __future__ import annotations

import click

from graftzoo.cli._output import ModalityChoice, echo_json, format_table, warn_plugin_problems
from graftzoo.registry import load_registry


@click.command("list")
@click.option("--modality", type=ModalityChoice(), help="Only models of this modality (registered by plugins).")
@click.option("--task", help="Only models tagged with this task, e.g. image-classification.")
@click.option("--license", "license_", metavar="LICENSE", help="Only models under this license (e.g. MIT).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of a table.")
@click.option("--hub", "hub_query", metavar="QUERY",
              help="Search the hub (HF_ENDPOINT) for models an installed adapter can load; * marks registry ones.")
@click.option("--sort", type=click.Choice(["downloads", "likes", "name"]), default=None,
              help="--hub: order of the results (default: the hub's relevance).")
def list_cmd(modality: str | None, task: str | None, license_: str | None, as_json: bool,
             hub_query: str | None, sort: str | None) -> None:
    """List the models in the registry and in installed plugins.

    Each row says where the entry came from (catalogue, plugin, your
    registry, a --registry file) and whether its weights are usable now:
    installed, cached, local, or needs network. Nothing is downloaded and no
    deep-learning library is imported. With --hub, the hub is searched
    instead (huggingface_hub is imported only then); --task and --modality
    then filter the hub's results.
    """
    if hub_query is not None:
        from graftzoo.cli.list_hub import list_hub

        list_hub(hub_query, as_json, task=task, modality=modality, sort=sort)
        return
    from graftzoo.sources.availability import Weights

    registry = load_registry()
    warn_plugin_problems(registry.problems)
    entries = registry.filter(modality=modality, task=task, license=license_)
    availability = Weights()
    if as_json:
        keys = ("id", "modality", "backbone", "source", "license", "tasks", "pretrained_on", "origin")
        echo_json([{**{k: v for k, v in e.to_dict().items() if k in keys}, "weights": availability(e)}
                   for e in entries])
        return
    if not entries:
        click.echo("No models match.", err=True)
        return
    origins = _origins()
    rows = [[e.id, e.modality, e.backbone, e.license, availability(e), origins.get(e.origin, e.origin), e.source]
            for e in entries]
    click.echo(format_table(["id", "modality", "backbone", "license", "weights", "from", "source"], rows))


def _origins() -> dict[str, str]:
    """Short names of the registry layers' files: catalogue, user (plugins and other files name themselves)."""
    from graftzoo.registry import catalogue_paths, user_registry_path

    return {**{str(p): "catalogue" for p in catalogue_paths()}, str(user_registry_path()): "user"}

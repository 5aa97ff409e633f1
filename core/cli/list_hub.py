"""``graft list --hub QUERY``: hub models an installed adapter can load (kept out of list_cmd's imports)."""

from __future__ import annotations

import click

from graftzoo.cli._output import echo_json, format_table


def list_hub(query: str, as_json: bool, task: str | None = None, modality: str | None = None,
             sort: str | None = None) -> None:
    """Print the hub search results for ``query``: adapter, license, size, whether usable as-is; * = in registry."""
    from graftzoo.cli.info_hub import human_size
    from graftzoo.sources.hub import search

    hits = search(query, task=task, modality=modality, sort=sort)
    if as_json:
        echo_json([h.to_dict() for h in hits])
        return
    if not hits:
        click.echo(f"No hub model matching {query!r} can be loaded by an installed adapter.", err=True)
        return
    usable = {True: "yes", False: "no (pickled or remote code)", None: "?"}
    rows = [[("* " if h.in_registry else "  ") + "hf://" + h.repo_id, h.adapter, h.modality or "-", h.task or "-",
             h.license or "-", human_size(h.size) if h.size else "-", usable[h.usable],
             "-" if h.downloads is None else str(h.downloads)] for h in hits]
    click.echo(format_table(["model (graft tune/add/info it)", "adapter", "modality", "task", "license", "size",
                             "usable", "downloads"], rows))

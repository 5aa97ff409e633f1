"""``graft list --hub QUERY``: hub models an installed adapter can load (kept out of list_cmd's imports)."""

from __future__ import annotations

import click

from graftzoo.cli._output import echo_json, format_table


def list_hub(query: str, as_json: bool) -> None:
    """Print the hub search results for ``query``, marking models already in the registry."""
    from graftzoo.sources.hub import search

    hits = search(query)
    if as_json:
        echo_json([h.to_dict() for h in hits])
        return
    if not hits:
        click.echo(f"No hub model matching {query!r} can be loaded by an installed adapter.", err=True)
        return
    rows = [[("* " if h.in_registry else "  ") + h.repo_id, h.adapter, h.library or "-", h.task or "-",
             ",".join(h.in_registry) or "-"] for h in hits]
    click.echo(format_table(["repo", "adapter", "library", "task", "registry ids"], rows))

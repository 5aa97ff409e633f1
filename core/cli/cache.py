"""``graft cache``: what is cached, re-verify it, sweep leftovers, remove a model."""

from __future__ import annotations

import click

from graftzoo.cli._output import echo_json, format_table


@click.group("cache")
def cache_cmd() -> None:
    """Inspect and clean the download cache (GRAFTZOO_HOME, default ~/.cache/graftzoo)."""


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"  # pragma: no cover


@cache_cmd.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of a table.")
def ls_cmd(as_json: bool) -> None:
    """List pulled models: id, revision, files, size and local path."""
    from graftzoo.sources.manage import cached_models

    models = cached_models()
    if as_json:
        echo_json(models)
        return
    if not models:
        click.echo("The cache is empty; 'graft pull ID' fills it.", err=True)
        return
    rows = [[m["id"], str(m["revision"] or "-")[:12], str(m["files"]), _size(m["bytes"]),
             "ok" if m["present"] else "missing", str(m["path"])] for m in models]
    click.echo(format_table(["id", "revision", "files", "size", "state", "path"], rows))


@cache_cmd.command("verify")
def verify_cmd() -> None:
    """Re-hash every cached file: downloads, conversions and cached features.

    Corrupt downloads the cache owns are removed (exit 1: 'graft pull ID'
    fetches them again); a corrupt conversion is converted again from its
    source, corrupt features are removed (recomputed when next needed).
    Temporary files of interrupted writes are removed too.
    """
    from graftzoo.sources.manage import verify_cache

    checked, problems = verify_cache()
    for p in problems:
        click.echo(f"{p.status}: {p.model_id} {p.name} ({p.path}): {p.action}")
    downloads = [p for p in problems if p.model_id not in ("conversion", "features")]
    healed = len(problems) - len(downloads)
    if downloads:
        raise click.ClickException(f"{len(downloads)} of {checked} files failed verification; "
                                   "'graft pull ID' fetches them again")
    note = f" ({healed} damaged derived file(s) repaired or removed, listed above)" if healed else ""
    click.echo(f"{checked} files verified{note}.")


@cache_cmd.command("gc")
@click.option("--dry-run", is_flag=True, help="List what would be removed without removing it.")
def gc_cmd(dry_run: bool) -> None:
    """Remove temporary files of interrupted writes and orphaned cache records.

    A temporary file whose writer is still running is kept.
    """
    from graftzoo.sources.manage import collect_garbage

    found = collect_garbage(dry_run=dry_run)
    for item in found:
        click.echo(f"{'would remove' if dry_run else 'removed'} {item.path}: {item.reason}")
    click.echo(f"{len(found)} leftover(s) {'found' if dry_run else 'removed'}.")


@cache_cmd.command("rm")
@click.argument("model_id")
def rm_cmd(model_id: str) -> None:
    """Remove MODEL_ID's cached files (files other pulls use are kept)."""
    from graftzoo.sources.manage import remove_model

    removed = remove_model(model_id)
    click.echo(f"Removed {model_id}: {len(removed)} file(s).")

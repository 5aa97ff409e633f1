"""``graft pull``: fetch and verify a model's weights, print where they are."""

from __future__ import annotations

from pathlib import Path

import click

from graftzoo.errors import SourceError


@click.command("pull")
@click.argument("model_id", required=False)
@click.option("--revision", help="hf:// only: another branch, tag or commit than the registry's (its sha256 pins "
                                  "then no longer apply; the hub's LFS hashes still do).")
@click.option("--force", is_flag=True, help="Download again even when a verified copy is cached.")
@click.option("--lock", "lock_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Record the exact files, revision and hashes in this lock file.")
@click.option("--locked", "locked_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Pull what this lock file records (all of it, or only MODEL_ID) or fail.")
def pull_cmd(model_id: str | None, revision: str | None, force: bool, lock_path: Path | None,
             locked_path: Path | None) -> None:
    """Download MODEL_ID's weights (if needed), verify their sha256 and print the local path.

    MODEL_ID may be a hub reference hf://ORG/REPO[@REVISION]: only the files
    its adapter needs are downloaded, pinned to the resolved commit.

    \b
    graft pull mobilenetv2_100.tv_in1k
    graft pull mobilenetv2_100.tv_in1k --lock graft.lock
    graft pull --locked graft.lock
    """
    from graftzoo.registry import load_registry
    from graftzoo.sources import lockfile, pull

    registry = load_registry()
    if locked_path is not None:
        if revision or force or lock_path:
            raise SourceError("--locked reproduces a lock file: it cannot be combined with --revision, --force "
                              "or --lock")
        for fetched in lockfile.pull_locked(locked_path, registry, [model_id] if model_id else []):
            click.echo(f"{fetched.model_id}\t{fetched.path}")
        return
    if model_id is None:
        raise click.UsageError("give a MODEL_ID (see 'graft list'), or --locked LOCKFILE")
    if model_id.startswith("hf://"):
        from graftzoo.sources.hubref import resolve_ref

        entry = resolve_ref(model_id).entry
    else:
        entry = registry.get(model_id)
    fetched = pull(entry, revision=revision, force=force)
    if lock_path is not None:
        lockfile.record_lock(lock_path, [fetched])
    click.echo(str(fetched.path))

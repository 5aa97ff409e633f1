"""``graft push``: publish a run directory to a hub repository."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("push")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("repo_id", metavar="ORG/REPO")
@click.option("--private", is_flag=True, help="Create the repository as private.")
def push_cmd(run_dir: Path, repo_id: str, private: bool) -> None:
    """Upload RUN_DIR's model.safetensors, graft.json and README.md to ORG/REPO.

    The hub is HF_ENDPOINT (default huggingface.co); the token is HF_TOKEN or
    the one saved by 'hf auth login'.
    """
    from graftzoo.sources.hub import push

    click.echo(push(run_dir, repo_id, private=private))

"""``graft info hf://ORG/REPO[@REV]``: a hub repository and the adapter that loads it, before any large download."""

from __future__ import annotations

from typing import Any

import click

from graftzoo.cli._output import echo_json


def human_size(n: int) -> str:
    """Bytes for people: 1.2 MB."""
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")  # pragma: no cover


def hub_info(ref: str, as_json: bool) -> None:
    """Print the repository's license, size, files, chosen adapter and the entry ``graft add`` would write."""
    from graftzoo.sources.hubref import RUN_FILES, build_entry, inspect_repo, match, parse_ref, remember

    repo, revision = parse_ref(ref)
    hub = inspect_repo(repo, revision)
    data: dict[str, Any] = {"repo": repo, "revision": revision, "commit": hub.commit, "library": hub.library,
                            "pipeline_tag": hub.pipeline_tag, "license": hub.license, "size": hub.size}
    if all(name in hub.files for name in RUN_FILES):
        data.update(kind="graftzoo run", needed=sorted(hub.files))
    else:
        found = match(hub)
        entry = build_entry(hub, found, origin=ref)
        remember(hub, entry)
        needed = sorted(entry.files) if entry.files else [entry.parsed_source.path]
        data.update(kind="model", adapter=found.adapter, plugin=found.plugin, modality=found.modality,
                    needed=needed, entry=entry.to_dict())
    data["download"] = sum(hub.files[name].size for name in data["needed"])
    data["files"] = {name: {"size": f.size, "sha256": f.sha256} for name, f in sorted(hub.files.items())}
    if as_json:
        echo_json(data)
        return
    click.echo(f"repo          hf://{repo}@{revision} -> commit {hub.commit}")
    click.echo(f"library       {hub.library or '-'}   pipeline_tag {hub.pipeline_tag or '-'}")
    click.echo(f"license       {hub.license}")
    click.echo(f"size          {human_size(hub.size)} in {len(hub.files)} files; "
               f"{human_size(data['download'])} to download")
    if data["kind"] == "model":
        entry_data = data["entry"]
        click.echo(f"adapter       {data['adapter']} (plugin {data['plugin']}), modality {data['modality']}")
        click.echo(f"entry id      {entry_data['id']}  (graft add {ref} --id ID to pin it)")
        if entry_data["input"]:
            click.echo("input         " + ", ".join(f"{k}={v}" for k, v in entry_data["input"].items()))
    else:
        click.echo("kind          a run published with 'graft push' (evaluate, predict or tune from it)")
    click.echo("files")
    for name, f in sorted(hub.files.items()):
        mark = "*" if name in data["needed"] else " "
        click.echo(f"  {mark} {name:<40} {human_size(f.size):>9}  {f.sha256 or '(git file)'}")
    click.echo("  (* = downloaded and verified when used)")

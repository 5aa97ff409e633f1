"""``graft add``: pin a hub model into a registry file (resolved commit, sha256 of every file)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("add")
@click.argument("ref", metavar="hf://ORG/REPO[@REVISION]")
@click.option("--id", "model_id", default=None, help="Registry id (default: the repo name when it reads arch.tag, "
                                                      "else NAME.ORG).")
@click.option("--registry", "registry_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Registry file to write (default: $GRAFTZOO_HOME/registry.toml, the user registry).")
@click.option("--overrides", is_flag=True, help="Replace an entry of the same id from an earlier registry layer.")
def add(ref: str, model_id: str | None, registry_path: Path | None, overrides: bool) -> None:
    """Resolve a hub model and write its complete, pinned entry into a registry.

    The entry names the resolved commit and the sha256 of every file the
    adapter needs, so the model is the same tomorrow even if the branch moves;
    'graft tune ID', 'graft pull ID' and 'graft list' then use it.

    \b
      graft add hf://timm/resnet18.a1_in1k
      graft add hf://acme/tiny-bert@v1 --id tiny-bert.v1 --registry team.toml
    """
    from dataclasses import replace

    from graftzoo.errors import RegistryError, SourceError
    from graftzoo.registry import append_entry, load_registry, user_registry_path
    from graftzoo.sources.hubref import RUN_FILES, build_entry, inspect_repo, match, parse_ref, remember

    repo, revision = parse_ref(ref)
    hub = inspect_repo(repo, revision)
    if all(name in hub.files for name in RUN_FILES):
        raise SourceError(f"{ref} is a run published with 'graft push', not a model; use it directly: "
                          f"'graft tune {ref} DATA', 'graft evaluate {ref} DATA'")
    target = registry_path or user_registry_path()
    entry = build_entry(hub, match(hub), model_id, origin=str(target))
    entry = replace(entry, overrides=overrides)
    existing = load_registry()
    if entry.id in existing and not overrides:
        raise RegistryError(f"{target}: entry {entry.id!r}, field 'id': already defined in "
                            f"{existing.get(entry.id).origin}; choose another --id, or pass --overrides")
    append_entry(target, entry)
    remember(hub, entry)
    click.echo(f"added {entry.id} to {target}")
    click.echo(f"  {entry.source}  ({entry.backbone}, {entry.modality}, license {entry.license})")
    pins = entry.files or {entry.parsed_source.path: entry.sha256 or ""}
    for name, sha in sorted(pins.items()):
        click.echo(f"  {name}  sha256 {sha}")

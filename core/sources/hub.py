"""Publishing runs to a hub and searching it: ``graft push`` and ``graft list --hub``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graftzoo.errors import SourceError
from graftzoo.sources._hf import endpoint, offline, retrying, token

RUN_FILES = ("model.safetensors", "graft.json", "README.md")

def _extra_files(run_dir: Path) -> list[str]:
    """The run's copies of its backbone's extra files (config, tokenizer): a pushed run rebuilds from them."""
    import json

    info = json.loads((run_dir / "graft.json").read_text(encoding="utf-8"))
    out = []
    for rel in info.get("extra_files", {}).values():
        path = run_dir / rel
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        out += [p.relative_to(run_dir).as_posix() for p in files if p.is_file()]
    return out


def push(run_dir: Path, repo_id: str, private: bool = False) -> str:
    """Upload a run (model.safetensors, graft.json, README.md, extra/) to ``repo_id``; return the commit URL."""
    from huggingface_hub import CommitOperationAdd, HfApi

    run_dir = Path(run_dir)
    missing = [name for name in RUN_FILES if not (run_dir / name).is_file()]
    if missing:
        raise SourceError(f"{run_dir}: not a run directory, {', '.join(missing)} missing; pass the folder that "
                          "'graft tune' wrote")
    if offline():
        raise SourceError("HF_HUB_OFFLINE is set: cannot push; unset it to publish")
    if "/" not in repo_id or repo_id.count("/") != 1:
        raise SourceError(f"{repo_id!r} is not ORG/REPO; name the target repository, e.g. me/my-model")
    api = HfApi(endpoint=endpoint(), token=token())
    where = f"push to {endpoint()}/{repo_id}"
    retrying(lambda: api.create_repo(repo_id, private=private, exist_ok=True), where)
    names = list(RUN_FILES) + _extra_files(run_dir)
    ops = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(run_dir / name)) for name in names]
    info = retrying(lambda: api.create_commit(repo_id, operations=ops,
                                              commit_message=f"Upload {run_dir.name} with graft push"), where)
    return str(getattr(info, "commit_url", None) or f"{endpoint()}/{repo_id}")


@dataclass(frozen=True)
class HubHit:
    """A hub model that an installed backbone adapter can load."""

    repo_id: str
    adapter: str
    library: str | None
    task: str | None
    in_registry: list[str]  # registry ids whose source is this repository

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"repo_id": self.repo_id, "adapter": self.adapter, "library": self.library, "task": self.task,
                "in_registry": self.in_registry}


def _matchers() -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """Which hub models each adapter can load, as its plugin declares it: ``register(..., hub_libraries=[...],
    hub_tasks=[...])`` (hub models of those libraries, and of those pipeline tasks when given)."""
    from graftzoo.plugins import get_plugins

    out = {}
    for name, reg in get_plugins().collect("backbones").items():
        libs = reg.meta.get("hub_libraries")
        if libs:
            out[name] = (tuple(libs), tuple(reg.meta.get("hub_tasks", ())))
    return out


def search(query: str, limit: int = 50) -> list[HubHit]:
    """Hub models matching ``query`` that a registered adapter can load, marked when in the registry."""
    from huggingface_hub import HfApi

    from graftzoo.registry import load_registry

    if offline():
        raise SourceError("HF_HUB_OFFLINE is set: cannot search the hub; unset it, or use 'graft list'")
    api = HfApi(endpoint=endpoint(), token=token())
    where = f"search {endpoint()} for {query!r}"
    models = retrying(lambda: list(api.list_models(search=query, limit=limit)), where)
    known: dict[str, list[str]] = {}
    for entry in load_registry():
        src = entry.parsed_source
        if src.scheme == "hf":
            known.setdefault(src.repo, []).append(entry.id)
    matchers = _matchers()
    hits = []
    for model in models:
        library = getattr(model, "library_name", None)
        task = getattr(model, "pipeline_tag", None)
        tags = set(getattr(model, "tags", None) or ())
        for adapter, (libs, tasks) in matchers.items():
            if (library in libs or tags & set(libs)) and (not tasks or task in tasks):
                hits.append(HubHit(model.id, adapter, library, task, known.get(model.id, [])))
                break
    return hits

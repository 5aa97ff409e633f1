"""Publishing runs to a hub and searching it: ``graft push`` and ``graft list --hub``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

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
    modality: str = ""
    license: str | None = None
    size: int | None = None  # bytes stored, when the hub says
    usable: bool | None = None  # safetensors weights and no remote code (None: the hub did not list files)
    downloads: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"repo_id": self.repo_id, "adapter": self.adapter, "library": self.library, "task": self.task,
                "in_registry": self.in_registry, "modality": self.modality, "license": self.license,
                "size": self.size, "usable": self.usable, "downloads": self.downloads}


_EXPAND = ["cardData", "library_name", "pipeline_tag", "tags", "downloads", "likes", "siblings", "usedStorage"]


def _usable(model: Any, tags: set[str]) -> bool | None:
    siblings = getattr(model, "siblings", None)
    if siblings is None:
        return None
    names = [str(getattr(s, "rfilename", "")) for s in siblings]
    return "custom_code" not in tags and any(n.endswith(".safetensors") for n in names)


def _license(model: Any) -> str | None:
    card = getattr(model, "card_data", None)
    value = card.get("license") if card is not None else None
    if not value:
        value = next((t.split(":", 1)[1] for t in getattr(model, "tags", None) or () if t.startswith("license:")),
                     None)
    return str(value) if value else None


def search(query: str, limit: int = 50, task: str | None = None, modality: str | None = None,
           sort: str | None = None) -> list[HubHit]:
    """Hub models matching ``query`` that a registered adapter can load, marked when in the registry."""
    from huggingface_hub import HfApi

    from graftzoo.registry import load_registry
    from graftzoo.sources.hubref import candidates

    if offline():
        raise SourceError("HF_HUB_OFFLINE is set: cannot search the hub; unset it, or use 'graft list'")
    api = HfApi(endpoint=endpoint(), token=token())
    where = f"search {endpoint()} for {query!r}"
    order = {"name": None}.get(sort or "", sort)
    models = retrying(lambda: list(api.list_models(search=query, limit=limit, sort=cast(Any, order),
                                                   expand=cast(Any, _EXPAND))), where)
    known: dict[str, list[str]] = {}
    for entry in load_registry():
        src = entry.parsed_source
        if src.scheme == "hf":
            known.setdefault(src.repo, []).append(entry.id)
    hits = []
    for model in models:
        library = getattr(model, "library_name", None)
        tag = getattr(model, "pipeline_tag", None)
        tags = set(getattr(model, "tags", None) or ())
        found = candidates(library, tag, sorted(tags))
        if not found or (task and tag != task):
            continue
        name, reg = found[0]
        hit = HubHit(model.id, name, library, tag, known.get(model.id, []), str(reg.meta.get("modality", "")),
                     _license(model), getattr(model, "used_storage", None), _usable(model, tags),
                     getattr(model, "downloads", None))
        if modality is None or hit.modality == modality:
            hits.append(hit)
    return sorted(hits, key=lambda h: h.repo_id) if sort == "name" else hits

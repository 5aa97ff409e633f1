"""Hub references: ``hf://ORG/REPO[@REVISION]`` as a model id, resolved to a pinned, verified registry entry.

``inspect_repo`` reads what the hub says about a repository (the model card's
library, pipeline tag and license, the file list with LFS sha256 and sizes,
``config.json``) without downloading anything large. ``resolve_ref`` asks the
installed backbone adapters which one loads it (each declares
``hub_libraries`` / ``hub_tasks`` and, optionally, a ``hub_entry`` function
that turns a ``HubRepo`` into entry fields), refuses pickled-only and
remote-code repositories with the reason, and builds a ``ModelEntry`` pinned to
the resolved commit with a sha256 for every file the adapter needs. The
resolution is remembered under ``$GRAFTZOO_HOME/hub`` so that the same
reference works with ``HF_HUB_OFFLINE=1`` once it was used online.

A repository written by ``graft push`` (``graft.json`` beside
``model.safetensors``) is a run reference: ``run_snapshot`` downloads the run,
verified, so that it can be evaluated, used for predictions or fine-tuned
further without a local run directory.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graftzoo.errors import GraftError, PluginError, RegistryError, SourceError
from graftzoo.registry import ModelEntry, entry_from_dict

_REF_RE = re.compile(r"^hf://(?P<repo>[A-Za-z0-9][\w.\-]*/[\w.\-]+?)(?:@(?P<rev>[\w.\-/]+))?/?$")
_HEX40 = re.compile(r"^[0-9a-f]{40}$")
_ID_BAD = re.compile(r"[^A-Za-z0-9_\-.]")
PICKLED = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
RUN_FILES = ("graft.json", "model.safetensors")


def is_ref(model: str) -> bool:
    """True for ``hf://ORG/REPO[@REV]`` (a whole repository, not a file in one)."""
    return bool(_REF_RE.match(model))


def parse_ref(ref: str) -> tuple[str, str]:
    """(ORG/REPO, revision) of a hub reference (revision ``main`` when none is given)."""
    m = _REF_RE.match(ref)
    if not m:
        raise SourceError(f"{ref!r} is not a hub reference; write hf://ORG/REPO or hf://ORG/REPO@REVISION")
    return m["repo"], m["rev"] or "main"


@dataclass(frozen=True)
class HubFile:
    """One file of a repository: its LFS sha256 (None for a plain git file), size and ETag."""

    sha256: str | None
    size: int
    etag: str


@dataclass
class HubRepo:
    """What the hub says about one repository at one commit; passed to adapters' ``hub_entry``."""

    repo: str
    revision: str
    commit: str
    files: dict[str, HubFile]
    card: dict[str, Any]
    config: dict[str, Any]
    reader: Callable[[str], bytes] = field(repr=False)

    @property
    def library(self) -> str | None:
        """The model card's ``library_name``."""
        value = self.card.get("library_name")
        return str(value) if value else None

    @property
    def pipeline_tag(self) -> str | None:
        """The model card's ``pipeline_tag``."""
        value = self.card.get("pipeline_tag")
        return str(value) if value else None

    @property
    def license(self) -> str:
        """The model card's license, ``unknown`` when it names none."""
        value = self.card.get("license")
        return str(value[0] if isinstance(value, list) and value else value or "unknown")

    @property
    def tags(self) -> list[str]:
        """The card's tags."""
        return [str(t) for t in self.card.get("tags") or []]

    @property
    def size(self) -> int:
        """Bytes of every file in the repository."""
        return sum(f.size for f in self.files.values())

    def read_json(self, name: str) -> dict[str, Any]:
        """A small JSON file of the repository (downloaded and verified), or {} when it has none."""
        if name not in self.files:
            return {}
        try:
            data = json.loads(self.reader(name))
        except (ValueError, UnicodeDecodeError) as exc:
            raise SourceError(f"hf://{self.repo}@{self.commit}/{name}: not valid JSON ({exc})") from None
        return data if isinstance(data, dict) else {}

    def weight_files(self) -> list[str]:
        """The safetensors weights: ``model.safetensors``, or the index and every shard it names.

        A repository whose weights are only pickled (``pytorch_model.bin``) is
        refused here: Graftzoo never unpickles downloaded files.
        """
        if "model.safetensors" in self.files:
            return ["model.safetensors"]
        if "model.safetensors.index.json" in self.files:
            index = self.read_json("model.safetensors.index.json")
            shards = sorted({str(v) for v in (index.get("weight_map") or {}).values()})
            missing = [s for s in shards if s not in self.files]
            if not shards or missing:
                raise SourceError(f"hf://{self.repo}@{self.commit}: model.safetensors.index.json names "
                                  f"{'no shards' if not shards else 'missing shard ' + missing[0]}; the checkpoint "
                                  "is incomplete")
            return ["model.safetensors.index.json", *shards]
        pickled = sorted(n for n in self.files if n.endswith(PICKLED))
        if pickled:
            raise SourceError(f"hf://{self.repo}: refused: its weights are only pickled ({', '.join(pickled[:3])}); "
                              "Graftzoo loads safetensors only, because unpickling a download can run code. Ask "
                              "the author for model.safetensors, or convert a copy you trust and use a file:// "
                              "source")
        raise SourceError(f"hf://{self.repo}: no model.safetensors (or sharded model.safetensors.index.json) in the "
                          "repository; there are no weights to load")

    def present(self, names: tuple[str, ...]) -> list[str]:
        """Those of ``names`` the repository has, in the order given."""
        return [n for n in names if n in self.files]


def _fetch_small(repo: str, commit: str, name: str, where: str) -> bytes:
    """A small file at ``commit`` into the hub cache, verified by its hub hash; its bytes."""
    from graftzoo.sources import _hf

    record, _ = _hf._download(repo, commit, name, None, force=False, where=where,
                              progress=lambda _n, _s: (lambda _k: None))
    return record.path.read_bytes()


def _card(info: Any) -> dict[str, Any]:
    data = info.card_data.to_dict() if getattr(info, "card_data", None) is not None else {}
    for key in ("library_name", "pipeline_tag"):
        if not data.get(key) and getattr(info, key, None):
            data[key] = getattr(info, key)
    tags = set(data.get("tags") or []) | set(getattr(info, "tags", None) or [])
    data["tags"] = sorted(tags)
    return data


def inspect_repo(repo: str, revision: str = "main") -> HubRepo:
    """The card, files (LFS sha256, sizes) and config.json of ``repo`` at ``revision``; nothing large is fetched."""
    from huggingface_hub import HfApi

    from graftzoo.sources._hf import _list_files, endpoint, offline, retrying, token

    if offline():
        raise SourceError(f"hf://{repo}@{revision}: HF_HUB_OFFLINE is set and this reference was never resolved "
                          "online; use it once with the network, or 'graft add' it while online")
    where = f"hf://{repo}@{revision}"
    api = HfApi(endpoint=endpoint(), token=token())
    info = retrying(lambda: api.model_info(repo, revision=revision), where)
    commit = str(info.sha or "")
    if not _HEX40.match(commit):
        raise SourceError(f"{where}: the hub gave no commit for this revision; is {endpoint()} a hub endpoint?")
    listing = _list_files(repo, commit, "", where)
    files = {name: HubFile(sha, size, etag) for name, (sha, etag, size) in listing.items()}

    def reader(name: str) -> bytes:
        return _fetch_small(repo, commit, name, where)

    config: dict[str, Any] = {}
    hub = HubRepo(repo, revision, commit, files, _card(info), config, reader)
    hub.config.update(hub.read_json("config.json"))
    return hub


def refusal(hub: HubRepo) -> str | None:
    """Why ``hub`` must not be loaded at all (remote code, pickled-only weights), or None."""
    if not any(name.endswith(".safetensors") for name in hub.files):
        pickled = sorted(n for n in hub.files if n.endswith(PICKLED))
        if pickled:
            return (f"hf://{hub.repo}: refused: its weights are only pickled ({', '.join(pickled[:3])}); Graftzoo "
                    "loads safetensors only, because unpickling a download can run code. Ask the author for "
                    "model.safetensors, or convert a copy you trust and use a file:// source")
    auto_map = hub.config.get("auto_map")
    if auto_map or "custom_code" in hub.tags:
        names = ", ".join(sorted(auto_map)) if isinstance(auto_map, dict) else "custom_code tag"
        return (f"hf://{hub.repo}: refused: its config names custom code ({names}); Graftzoo never runs code "
                "from a model repository. Use a model whose architecture an installed adapter builds itself")
    return None


@dataclass(frozen=True)
class Match:
    """The adapter that loads a repository and the entry fields it gave."""

    adapter: str
    plugin: str
    modality: str
    fields: dict[str, Any]


def candidates(library: str | None, task: str | None, tags: list[str] | None = None) -> list[tuple[str, Any]]:
    """Backbone registrations whose ``hub_libraries`` (and ``hub_tasks``, when given) fit, in registration order."""
    from graftzoo.plugins import get_plugins

    out = []
    tagset = set(tags or ())
    for name, reg in get_plugins().collect("backbones").items():
        libs = tuple(reg.meta.get("hub_libraries") or ())
        tasks = tuple(reg.meta.get("hub_tasks") or ())
        if libs and (library in libs or tagset & set(libs)) and (not tasks or not task or task in tasks):
            out.append((name, reg))
    return out


def match(hub: HubRepo) -> Match:
    """Ask the installed adapters which one loads ``hub``; a ``SourceError`` lists each one's reason if none."""
    why = refusal(hub)
    if why:
        raise SourceError(why)
    found = candidates(hub.library, hub.pipeline_tag, hub.tags)
    if not found:
        raise SourceError(f"hf://{hub.repo}: no installed adapter loads library {hub.library or 'unknown'!r} "
                          f"(pipeline_tag {hub.pipeline_tag or 'unknown'!r}); see 'graft plugins' for the "
                          "adapters and the hub libraries they declare")
    reasons = []
    for name, reg in found:
        fields = _ask(name, reg, hub)
        if isinstance(fields, str):
            reasons.append(f"{name}: {fields}")
            continue
        modality = str(fields.pop("modality", None) or reg.meta.get("modality"))
        return Match(name, reg.plugin, modality, fields)
    raise SourceError(f"hf://{hub.repo}: no installed adapter can load it (" + "; ".join(reasons) + ")")


def _ask(name: str, reg: Any, hub: HubRepo) -> dict[str, Any] | str:
    """The adapter's entry fields for ``hub``, or why it cannot load it."""
    from graftzoo.plugins import resolve

    target = reg.meta.get("hub_entry")
    if target is None:
        return {"files": hub.weight_files() + hub.present(("config.json",))}
    function = resolve(target, f"hub_entry of backbone adapter {name!r} (plugin {reg.plugin!r})")
    try:
        fields = function(hub)
    except GraftError:
        raise
    except ValueError as exc:  # the adapter's own "not mine, because ..."
        return str(exc)
    except Exception as exc:  # third-party code
        raise PluginError(f"hub_entry of backbone adapter {name!r} (plugin {reg.plugin!r}) failed on "
                          f"hf://{hub.repo}: {type(exc).__name__}: {exc}") from exc
    if fields is None:
        return "does not load this repository"
    if not isinstance(fields, Mapping) or not fields.get("files"):
        raise PluginError(f"hub_entry of backbone adapter {name!r} (plugin {reg.plugin!r}) returned "
                          f"{type(fields).__name__} without 'files'; return a dict with the files it needs")
    return dict(fields)


def default_id(repo: str) -> str:
    """A registry id for ``repo``: its name when it reads ``arch.tag`` (timm's style), else ``name.org``."""
    org, name = repo.split("/", 1)
    name = _ID_BAD.sub("-", name)
    if "." in name and name[0].isalnum():
        return name
    return f"{name}.{_ID_BAD.sub('-', org).replace('.', '-')}".lstrip("-_.") or "model.hub"


def build_entry(hub: HubRepo, found: Match, model_id: str | None = None, origin: str = "") -> ModelEntry:
    """A complete registry entry for ``hub``: pinned commit and a sha256 for every needed file."""
    fields = dict(found.fields)
    names = [str(n) for n in fields.pop("files")]
    single = bool(fields.pop("single_file", False)) and len(names) == 1
    pins = {}
    for name in names:
        if name not in hub.files:
            raise PluginError(f"backbone adapter {found.adapter!r} asked for {name}, which hf://{hub.repo} does not "
                              "have")
        if name.endswith(PICKLED):
            raise PluginError(f"backbone adapter {found.adapter!r} asked for pickled {name}; Graftzoo loads "
                              "safetensors only")
        sha = hub.files[name].sha256
        if sha is None:
            import hashlib

            sha = hashlib.sha256(hub.reader(name)).hexdigest()
        pins[name] = sha
    raw: dict[str, Any] = {
        "id": model_id or default_id(hub.repo), "modality": found.modality, "backbone": found.adapter,
        "license": hub.license, "description": str(fields.pop("description", "") or f"hf://{hub.repo}"),
    }
    if single:
        raw["source"] = f"hf://{hub.repo}@{hub.commit}/{names[0]}"
        raw["sha256"] = pins[names[0]]
    else:
        raw["source"] = f"hf://{hub.repo}@{hub.commit}"
        raw["files"] = pins
    if hub.pipeline_tag and "tasks" not in fields:
        raw["tasks"] = [hub.pipeline_tag]
    raw.update({k: v for k, v in fields.items() if v not in (None, "", [], {})})
    return entry_from_dict(raw, origin or f"hf://{hub.repo}@{hub.revision}")


# -- remembering resolutions for offline use ---------------------------------------------------------------

def _memo_path(repo: str, revision: str) -> Path:
    from graftzoo.home import graftzoo_home

    safe = revision.replace("/", "--")
    return graftzoo_home() / "hub" / repo.replace("/", "--") / f"{safe}.json"


def _remember(repo: str, revision: str, data: dict[str, Any]) -> None:
    import os
    import tempfile

    path = _memo_path(repo, revision)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1)
    os.replace(tmp, path)


def _recall(repo: str, revision: str) -> dict[str, Any] | None:
    path = _memo_path(repo, revision)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@dataclass(frozen=True)
class Resolved:
    """A hub reference resolved: the entry, and the run directory when the repository is a pushed run."""

    entry: ModelEntry
    commit: str
    run_dir: Path | None = None


def resolve_ref(ref: str, model_id: str | None = None) -> Resolved:
    """The pinned entry of ``hf://ORG/REPO[@REV]`` (online: from the hub; offline: as last resolved)."""
    from graftzoo.sources._hf import offline

    repo, revision = parse_ref(ref)
    if offline():
        memo = _recall(repo, revision)
        if memo is None:
            inspect_repo(repo, revision)  # raises the offline error
            raise AssertionError("unreachable")  # pragma: no cover
        return _from_memo(memo, ref, model_id)
    hub = inspect_repo(repo, revision)
    if all(name in hub.files for name in RUN_FILES):
        memo = {"kind": "run", "commit": hub.commit, "files": {n: f.sha256 for n, f in hub.files.items()}}
    else:
        memo = remember(hub, build_entry(hub, match(hub), origin=ref))
    _remember(repo, revision, memo)
    _remember(repo, hub.commit, memo)
    return _from_memo(memo, ref, model_id)


def remember(hub: HubRepo, entry: ModelEntry) -> dict[str, Any]:
    """Keep ``entry`` as the resolution of ``hub``'s revision and commit, for use with ``HF_HUB_OFFLINE=1``."""
    from dataclasses import replace

    memo = {"kind": "model", "commit": hub.commit, "entry": replace(entry, id=default_id(hub.repo)).to_dict()}
    _remember(hub.repo, hub.revision, memo)
    _remember(hub.repo, hub.commit, memo)
    return memo


def _from_memo(memo: dict[str, Any], ref: str, model_id: str | None) -> Resolved:
    repo, _ = parse_ref(ref)
    commit = str(memo["commit"])
    if memo.get("kind") == "run":
        run_dir = _run_download(repo, commit)
        info = json.loads((run_dir / "graft.json").read_text(encoding="utf-8"))
        raw = {k: v for k, v in info["entry"].items() if k != "origin" and v not in (None, "", [], {})}
        return Resolved(entry_from_dict(raw, f"{ref} (run of {info.get('model')})"), commit, run_dir)
    raw = {k: v for k, v in memo["entry"].items() if k != "origin" and v not in (None, "", [], {})}
    if model_id:
        raw["id"] = model_id
    return Resolved(entry_from_dict(raw, ref), commit)


def _run_download(repo: str, commit: str) -> Path:
    """Every file of a pushed run at ``commit`` (each verified against the hub's hash), as a run directory."""
    from graftzoo.sources._fetch import fetch

    probe = entry_from_dict({"id": "run.hub", "modality": _any_modality(), "backbone": "run",
                             "license": "unknown", "source": f"hf://{repo}@{commit}"}, f"hf://{repo}@{commit}")
    return Path(fetch(probe))


def _any_modality() -> str:
    from graftzoo.registry import modalities

    known = modalities()
    if not known:
        raise RegistryError("no modality is registered; install a plugin (see 'graft plugins')")
    return known[0]

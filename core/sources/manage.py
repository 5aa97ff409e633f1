"""Cache housekeeping behind ``graft cache ls / verify / gc / rm``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graftzoo.errors import GraftError, SourceError
from graftzoo.home import graftzoo_home
from graftzoo.sources import _cache
from graftzoo.sources._safeload import converted_path, load_state_dict
from graftzoo.storage import checked as checked_files
from graftzoo.storage import sweep


@dataclass(frozen=True)
class Problem:
    """A file that ``verify_cache`` found missing or corrupt, and what was done about it."""

    model_id: str
    name: str
    path: str
    status: str  # "missing" | "corrupt" | "corrupt (why)"
    action: str  # "removed" | "repaired (...)" | "kept (...)"


def cached_models() -> list[dict[str, Any]]:
    """One record per pulled model: id, source, revision, path, file count, bytes, present."""
    out = []
    for manifest in _cache.read_manifests():
        files = manifest.get("files", {})
        present = all(Path(f["path"]).exists() for f in files.values())
        out.append({
            "id": manifest["id"],
            "source": manifest.get("source"),
            "revision": manifest.get("revision"),
            "path": manifest.get("path"),
            "files": len(files),
            "bytes": sum(int(f.get("size", 0)) for f in files.values()),
            "present": present,
            "pulled_at": manifest.get("pulled_at"),
        })
    return out


def _referenced(exclude: str) -> set[str]:
    """Every path the other pulls rely on (so removing one model never breaks another)."""
    keep: set[str] = set()
    for manifest in _cache.read_manifests():
        if manifest["id"] == exclude:
            continue
        keep.update(manifest.get("owned", []))
        keep.update(str(f["path"]) for f in manifest.get("files", {}).values())
        keep.update(str(Path(f["path"]).resolve()) for f in manifest.get("files", {}).values())
    return keep


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    _cache.forget_sha256(path)


def verify_cache() -> tuple[int, list[Problem]]:
    """Re-hash every file of every pull; remove corrupt copies the cache owns. Returns (files checked, problems).

    A corrupt file inside an installed distribution is reported, not removed:
    it belongs to pip, and ``pip install --force-reinstall`` repairs it.
    """
    problems: list[Problem] = []
    checked = 0
    for manifest in _cache.read_manifests():
        owned = set(manifest.get("owned", []))
        damaged = False
        for name, info in manifest.get("files", {}).items():
            path = Path(info["path"])
            checked += 1
            if not path.exists():
                problems.append(Problem(manifest["id"], name, str(path), "missing", "pull again"))
                damaged = True
                continue
            if _cache.cached_sha256(path, recompute=True) == info["sha256"]:
                continue
            damaged = True
            if str(path) in owned or str(path.resolve()) in owned:
                real = path.resolve()
                _remove(real)
                _remove(path)
                problems.append(Problem(manifest["id"], name, str(path), "corrupt", "removed"))
            else:
                problems.append(Problem(manifest["id"], name, str(path), "corrupt",
                                        "kept (not owned by the cache: reinstall its package)"))
        if damaged:
            _cache.manifest_path(manifest["id"]).unlink(missing_ok=True)
    checked += sweep.count_checked(graftzoo_home())
    problems.extend(_verify_derived())
    for item in sweep.leftovers([graftzoo_home(), _cache.hf_cache()], graftzoo_home()):
        sweep.remove(item)  # temporary files of writers that were killed, records without files
    return checked, problems


def _verify_derived() -> list[Problem]:
    """Re-hash every conversion and cached feature file; remake conversions whose source is at hand."""
    sources = {str(f["sha256"]): Path(f["path"]) for m in _cache.read_manifests()
               for f in m.get("files", {}).values() if "sha256" in f and "path" in f}
    problems = []
    for bad in sweep.verify_checked(graftzoo_home()):
        checked_files.discard(bad.path)
        kind = "conversion" if bad.path.parent.name == "converted" else "features"
        action = "removed (recomputed when next needed)"
        source = sources.get(bad.path.name.split(".")[0]) if kind == "conversion" else None
        if source is not None and source.is_file():
            try:
                load_state_dict(source)
                action = f"repaired (converted again from {source})"
            except GraftError as exc:
                action = f"removed (converting {source} again failed: {exc})"
        problems.append(Problem(kind, bad.path.name, str(bad.path), f"corrupt ({bad.status})", action))
    return problems


def collect_garbage(dry_run: bool = False) -> list[sweep.Leftover]:
    """Remove temporary files of interrupted writes and orphaned cache records; return what was (or would be)."""
    found = sweep.leftovers([graftzoo_home(), _cache.hf_cache()], graftzoo_home())
    if not dry_run:
        for item in found:
            sweep.remove(item)
    return found


def remove_model(model_id: str) -> list[Path]:
    """Delete what the cache holds for one pulled model (files shared with other pulls stay)."""
    path = _cache.manifest_path(model_id)
    manifests = {m["id"]: m for m in _cache.read_manifests()}
    if model_id not in manifests:
        raise SourceError(f"{model_id!r} is not in the cache ({graftzoo_home()}); 'graft cache ls' shows what is")
    manifest = manifests[model_id]
    keep = _referenced(model_id)
    removed: list[Path] = []
    candidates = [Path(p) for p in manifest.get("owned", [])]
    candidates += [converted_path(str(f["sha256"])) for f in manifest.get("files", {}).values()]
    with _cache.lock("model-" + model_id):
        for candidate in candidates:
            if str(candidate) in keep or not (candidate.exists() or candidate.is_symlink()):
                continue
            if candidate.parent.name == "converted" and any(
                converted_path(str(f["sha256"])) == candidate
                for m in manifests.values() if m["id"] != model_id for f in m.get("files", {}).values()
            ):
                continue
            _remove(candidate)
            removed.append(candidate)
        path.unlink(missing_ok=True)
    for candidate in removed:  # tidy now-empty folders inside the caches
        parent = candidate.parent
        while parent not in (graftzoo_home(), _cache.hf_cache()) and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent
    return removed


def disk_usage(root: Path) -> int:
    """Bytes of regular files under ``root`` (symlinks not followed, so nothing counts twice)."""
    total = 0
    for folder, _dirs, files in os.walk(root):
        for name in files:
            full = os.path.join(folder, name)
            if not os.path.islink(full):
                total += os.path.getsize(full)
    return total

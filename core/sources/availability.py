"""Whether a model's weights are usable now: installed, cached, local, or only with the network.

Cheap by design (a few ``stat`` calls per entry, no hashing, no imports of
huggingface_hub or torch): ``graft list`` shows it for every entry and
``graft rank`` skips what cannot be loaded offline.
"""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

from graftzoo.registry import ModelEntry

INSTALLED, CACHED, LOCAL, NETWORK, MISSING = "installed", "cached", "local", "needs network", "missing"


def _hf_cache() -> str:
    """The hub cache, read on every call (tests and users change HF_HOME between calls)."""
    from graftzoo.sources._cache import hf_cache

    return str(hf_cache())


def availability(entry: ModelEntry) -> str:
    """``installed`` (pkg:// in site-packages), ``cached``, ``local`` (file://), ``needs network`` or ``missing``."""
    src = entry.parsed_source
    if src.scheme == "file":
        return LOCAL if Path(src.path).expanduser().exists() else MISSING
    if src.scheme == "pkg":
        try:
            dist = importlib.metadata.distribution(src.repo)
            if src.revision is None or dist.version == src.revision:
                return INSTALLED
        except importlib.metadata.PackageNotFoundError:
            pass
        from graftzoo.home import graftzoo_home
        from graftzoo.sources._cache import safe_name

        folder = graftzoo_home() / "pkg" / f"{safe_name(src.repo)}-{safe_name(src.revision or 'latest')}"
        return CACHED if folder.is_dir() and any(folder.iterdir()) else NETWORK
    snapshot = os.path.join(_hf_cache(), "models--" + src.repo.replace("/", "--"), "snapshots", src.revision or "main")
    if not os.path.isdir(snapshot):
        return NETWORK
    names = [src.path + n for n in entry.files] if src.is_directory else [src.path]
    return CACHED if all(os.path.exists(os.path.join(snapshot, n)) for n in names) else NETWORK


def unavailable(entry: ModelEntry) -> str | None:
    """Why ``entry``'s weights cannot be loaded now, or None: ``missing``, or ``needs network`` with HF_HUB_OFFLINE."""
    from graftzoo.sources._hf import offline

    state = availability(entry)
    return state if state == MISSING or (state == NETWORK and offline()) else None

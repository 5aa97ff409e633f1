"""The model catalogue: ``registry.toml`` files and plugin entries -> ``ModelEntry``.

Parsing is strict: an unknown field, a bad source URI or a missing checksum is
a ``RegistryError`` naming the file, the entry id and the field, so a broken
catalogue is caught where it is written rather than when a download fails.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from graftzoo.errors import RegistryError

SCHEMES = ("hf", "pkg", "file")

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]*\.[A-Za-z0-9_\-.]+$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_HF_RE = re.compile(
    r"^hf://(?P<repo>[A-Za-z0-9][\w.\-]*/[\w.\-]+)(?:@(?P<rev>[\w.\-/]+?))?(?:/(?P<path>[^@]+))?$"
)
_PKG_RE = re.compile(
    r"^pkg://(?P<dist>[A-Za-z0-9][\w.\-]*)(?:==(?P<version>[\w.+\-]+))?/(?P<path>.+)$"
)

_FIELDS = {
    "id": "arch.tag, e.g. mobilenetv2_100.tv_in1k",
    "modality": "a registered modality: vision, text, audio or one a plugin adds",
    "backbone": "the backbone adapter that builds it, e.g. timm",
    "source": "hf://org/repo@rev[/path], pkg://dist[==version]/path or file://path",
    "sha256": "hex sha256 of the source file",
    "files": "table of relative path -> sha256 for a directory source",
    "license": "SPDX id of the weights' license",
    "tasks": "list of tasks, e.g. image-classification",
    "pretrained_on": "dataset the weights were trained on",
    "input": "table of preprocessing facts (size, mean, std, sample_rate, ...)",
    "config": "table of adapter-specific settings",
    "arch": "architecture name for the adapter (default: the part of id before the dot)",
    "description": "one line for people",
    "num_classes": "classes of the original pretrained head, if any",
    "overrides": "true when this entry deliberately replaces one of the same id in an earlier registry layer",
}
_REQUIRED = ("id", "modality", "backbone", "source", "license")


@dataclass(frozen=True)
class Source:
    """A parsed source URI."""

    scheme: str
    uri: str
    repo: str = ""  # hf: org/repo; pkg: distribution name
    revision: str | None = None  # hf: revision; pkg: version
    path: str = ""  # file inside the repo/distribution ("" for a whole hf snapshot)

    @property
    def is_directory(self) -> bool:
        """True when the source names a directory or a whole snapshot, not one file."""
        return self.path == "" or self.path.endswith("/")


def parse_source(uri: str) -> Source:
    """Parse ``hf://``, ``pkg://`` and ``file://`` URIs; raise ``ValueError`` on anything else."""
    scheme, sep, rest = uri.partition("://")
    if not sep or scheme not in SCHEMES:
        raise ValueError(f"unknown scheme in {uri!r}; use one of " + ", ".join(s + "://" for s in SCHEMES))
    if scheme == "hf":
        m = _HF_RE.match(uri)
        if not m:
            raise ValueError(f"{uri!r} is not hf://org/repo@revision[/path]")
        return Source("hf", uri, m["repo"], m["rev"], m["path"] or "")
    if scheme == "pkg":
        m = _PKG_RE.match(uri)
        if not m:
            raise ValueError(f"{uri!r} is not pkg://dist[==version]/path")
        return Source("pkg", uri, m["dist"], m["version"], m["path"])
    if not rest:
        raise ValueError(f"{uri!r} names no path")
    return Source("file", uri, path=rest)


@dataclass(frozen=True)
class ModelEntry:
    """One model the zoo knows: where its weights are and what they expect."""

    id: str
    modality: str
    backbone: str
    source: str
    license: str
    sha256: str | None = None
    files: Mapping[str, str] = field(default_factory=dict)
    tasks: tuple[str, ...] = ()
    pretrained_on: str = ""
    input: Mapping[str, Any] = field(default_factory=dict)
    config: Mapping[str, Any] = field(default_factory=dict)
    arch: str = ""
    description: str = ""
    num_classes: int | None = None
    overrides: bool = False
    origin: str = ""  # the file or plugin it came from, for messages

    @property
    def arch_name(self) -> str:
        """The architecture an adapter builds: ``arch`` or the id before its first dot."""
        return self.arch or self.id.split(".", 1)[0]

    @property
    def parsed_source(self) -> Source:
        """The source URI, parsed (validated when the entry was built)."""
        return parse_source(self.source)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field (``origin`` included)."""
        return {
            "id": self.id,
            "modality": self.modality,
            "backbone": self.backbone,
            "arch": self.arch_name,
            "source": self.source,
            "sha256": self.sha256,
            "files": dict(self.files),
            "license": self.license,
            "tasks": list(self.tasks),
            "pretrained_on": self.pretrained_on,
            "input": dict(self.input),
            "config": dict(self.config),
            "description": self.description,
            "num_classes": self.num_classes,
            "overrides": self.overrides,
            "origin": self.origin,
        }


def modality_meta(modality: str) -> dict[str, Any]:
    """What the plugin that registered ``modality`` says about it (task, pipeline_tag, inputs); {} if unknown."""
    from graftzoo.plugins import get_plugins

    reg = get_plugins().collect("modalities").get(modality)
    return dict(reg.meta) if reg is not None else {}


def pipeline_tag(modality: str, task: str = "classification") -> str:
    """The Hugging Face ``pipeline_tag`` of a run: token classification, or its modality's registered tag."""
    if task == "token-classification":
        return "token-classification"
    meta = modality_meta(modality)
    return str(meta.get("pipeline_tag") or meta.get("task") or "other")


def modalities() -> list[str]:
    """The registered modalities (``register_modalities``): the built-in vision, text, audio and plugins' own."""
    from graftzoo.plugins import get_plugins

    return list(get_plugins().collect("modalities"))


def entry_from_dict(data: Mapping[str, Any], origin: str, index: int | None = None) -> ModelEntry:
    """Validate one raw entry; every problem names ``origin``, the entry and the field."""
    where = f"{origin}: entry {data.get('id')!r}" if isinstance(data.get("id"), str) else (
        f"{origin}: entry #{index + 1}" if index is not None else f"{origin}: entry"
    )

    def fail(fld: str, problem: str) -> RegistryError:
        return RegistryError(f"{where}, field '{fld}': {problem} (expected {_FIELDS[fld]})")

    unknown = sorted(set(data) - set(_FIELDS))
    if unknown:
        import difflib

        hint = difflib.get_close_matches(unknown[0], _FIELDS, n=1)
        extra = f"; did you mean '{hint[0]}'?" if hint else "; known fields: " + ", ".join(_FIELDS)
        raise RegistryError(f"{where}: unknown field '{unknown[0]}'{extra}")
    for fld in _REQUIRED:
        if fld not in data:
            raise fail(fld, "missing")
        if not isinstance(data[fld], str) or not data[fld].strip():
            raise fail(fld, "must be a non-empty string")
    if not _ID_RE.match(data["id"]):
        raise fail("id", f"{data['id']!r} is not arch.tag")
    known = modalities()
    if data["modality"] not in known:
        raise fail("modality", f"unknown modality {data['modality']!r} (registered: {', '.join(known)}; install the "
                               "plugin that adds it and check 'graft plugins')")
    sha, files = _check_pins(data, fail)
    _check_optional_fields(data, fail)
    tasks = data.get("tasks", [])
    num_classes = data.get("num_classes")
    return ModelEntry(
        id=data["id"],
        modality=data["modality"],
        backbone=data["backbone"],
        source=data["source"],
        license=data["license"],
        sha256=sha,
        files=dict(files),
        tasks=tuple(tasks),
        pretrained_on=data.get("pretrained_on", ""),
        input=dict(data.get("input", {})),
        config=dict(data.get("config", {})),
        arch=data.get("arch", ""),
        description=data.get("description", ""),
        num_classes=num_classes,
        overrides=bool(data.get("overrides", False)),
        origin=origin,
    )


def _check_pins(data: Mapping[str, Any], fail: Callable[[str, str], RegistryError]
                ) -> tuple[str | None, dict[str, str]]:
    """The source URI and its pins (``sha256`` or ``files``); returns them validated."""
    try:
        src = parse_source(data["source"])
    except ValueError as exc:
        raise fail("source", str(exc)) from None
    sha = data.get("sha256")
    if sha is not None and (not isinstance(sha, str) or not _SHA256_RE.match(sha)):
        raise fail("sha256", f"{sha!r} is not 64 lowercase hex digits")
    files = data.get("files", {})
    if not isinstance(files, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and _SHA256_RE.match(v) for k, v in files.items()
    ):
        raise fail("files", "must map file names to 64-hex sha256 strings")
    if src.is_directory:
        if sha is not None:
            raise fail("sha256", "a directory source is pinned file by file in 'files', not by 'sha256'")
        if src.scheme != "hf" and not files:
            raise fail("files", f"missing: {src.scheme}:// directory sources must pin every file")
    elif sha is None and src.scheme != "hf":
        # hf:// files are pinned by revision and verified against the hub's LFS sha256.
        raise fail("sha256", f"missing: every single-file {src.scheme}:// source must be pinned by its sha256")
    if src.scheme == "hf" and not src.revision:
        raise fail("source", "hf:// sources must pin a revision: hf://org/repo@REVISION/path")
    return sha, dict(files)


def _check_optional_fields(data: Mapping[str, Any], fail: Callable[[str, str], RegistryError]) -> None:
    tasks = data.get("tasks", [])
    if not isinstance(tasks, list) or not all(isinstance(t, str) for t in tasks):
        raise fail("tasks", "must be a list of strings")
    for fld in ("input", "config"):
        if not isinstance(data.get(fld, {}), dict):
            raise fail(fld, "must be a table")
    for fld in ("pretrained_on", "arch", "description"):
        if not isinstance(data.get(fld, ""), str):
            raise fail(fld, "must be a string")
    num_classes = data.get("num_classes")
    if num_classes is not None and (not isinstance(num_classes, int) or num_classes < 1):
        raise fail("num_classes", "must be a positive integer")
    if not isinstance(data.get("overrides", False), bool):
        raise fail("overrides", "must be true or false")


def parse_registry_file(path: Path) -> list[ModelEntry]:
    """Read one registry TOML file (a list of ``[[model]]`` tables)."""
    return parse_registry_document(path)[0]


def parse_registry_document(path: Path) -> tuple[list[ModelEntry], dict[str, str]]:
    """The ``[[model]]`` entries of a registry file and its ``[adapters]`` table (adapter -> distribution).

    ``[adapters]`` says which distribution provides each backbone adapter the
    entries need, so that a missing one is an "install X" hint; it is data of
    the catalogue, so core code names no plugin.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RegistryError(f"{path}: cannot read registry file: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise RegistryError(f"{path}:{line}: not UTF-8 text ({exc.reason}); TOML files must be UTF-8, re-save it "
                            "as UTF-8") from None
    import tomllib  # only when a file is parsed: 'graft list' reads parsed files from the registry cache

    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RegistryError(f"{path}: malformed TOML: {exc}") from None
    extra = sorted(set(doc) - {"model", "adapters"})
    if extra:
        raise RegistryError(f"{path}: unknown top-level key '{extra[0]}'; entries go in [[model]] tables")
    models = doc.get("model", [])
    if not isinstance(models, list):
        raise RegistryError(f"{path}: 'model' must be an array of tables ([[model]])")
    adapters = doc.get("adapters", {})
    if not isinstance(adapters, dict) or not all(isinstance(v, str) for v in adapters.values()):
        raise RegistryError(f"{path}: [adapters] must map adapter names to distribution names (timm = \"dist\")")
    return [entry_from_dict(raw, str(path), i) for i, raw in enumerate(models)], dict(adapters)


def catalogue_paths() -> list[Path]:
    """The catalogue shipped with graftzoo (none with ``GRAFTZOO_NO_CATALOGUE=1``)."""
    if os.environ.get("GRAFTZOO_NO_CATALOGUE", "").strip() in ("1", "true", "yes"):
        return []
    here = Path(__file__).resolve().parent
    for candidate in (here / "registry.toml", here.parent / "registry.toml"):
        if candidate.is_file():
            return [candidate]
    return []


def user_registry_path() -> Path:
    """The user's own registry, where ``graft add`` writes: ``$GRAFTZOO_HOME/registry.toml``."""
    from graftzoo.home import graftzoo_home

    return graftzoo_home() / "registry.toml"


def extra_registry_paths() -> list[Path]:
    """``GRAFTZOO_REGISTRY`` (os.pathsep-separated) and ``graft --registry FILE`` files, the last layers."""
    env = os.environ.get("GRAFTZOO_REGISTRY")
    return [Path(p) for p in env.split(os.pathsep) if p] if env else []


def default_registry_paths() -> list[Path]:
    """Every registry file, in layer order: the shipped catalogue, the user registry, then GRAFTZOO_REGISTRY."""
    user = user_registry_path()
    return catalogue_paths() + ([user] if user.is_file() else []) + extra_registry_paths()


class Registry:
    """Entries by id, in catalogue order; two entries with one id are an error."""

    def __init__(self, entries: Iterable[ModelEntry] = ()) -> None:
        self._entries: dict[str, ModelEntry] = {}
        #: (plugin, message) for each entry a plugin registered that was left out (``graft plugins`` shows them)
        self.problems: list[tuple[str, str]] = []
        #: backbone adapter -> the distribution that provides it (registry files' ``[adapters]``), for hints
        self.adapter_sources: dict[str, str] = {}
        for entry in entries:
            self.add(entry)

    def add(self, entry: ModelEntry) -> None:
        """Add one entry; a duplicate id is a ``RegistryError`` naming both origins unless the entry ``overrides``."""
        if entry.id in self._entries and not entry.overrides:
            first = self._entries[entry.id].origin
            raise RegistryError(
                f"{entry.origin}: entry {entry.id!r}, field 'id': duplicate id, already defined in {first}; "
                "rename one of them, or set 'overrides = true' in the later one to replace it on purpose"
            )
        self._entries[entry.id] = entry

    def get(self, model_id: str) -> ModelEntry:
        """The entry with this id, or a ``RegistryError`` that suggests close ids."""
        try:
            return self._entries[model_id]
        except KeyError:
            import difflib

            close = difflib.get_close_matches(model_id, self._entries, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else "; run 'graft list' to see them"
            raise RegistryError(f"unknown model {model_id!r}{hint}") from None

    def __contains__(self, model_id: object) -> bool:
        return model_id in self._entries

    def __iter__(self) -> Iterator[ModelEntry]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def filter(
        self, modality: str | None = None, task: str | None = None, license: str | None = None
    ) -> list[ModelEntry]:
        """Entries matching every given criterion (license compared case-insensitively)."""
        return [
            e
            for e in self
            if (modality is None or e.modality == modality)
            and (task is None or task in e.tasks)
            and (license is None or e.license.lower() == license.lower())
        ]


def load_registry(paths: Iterable[Path] | None = None, plugins: bool = True) -> Registry:
    """The catalogue, in layers: the shipped catalogue, plugins' entries, the user registry, GRAFTZOO_REGISTRY.

    With ``paths``, those files then the plugins' entries. A later layer may
    replace an id only when its entry says ``overrides = true``; otherwise two
    definitions of one id are an error naming both files. A plugin's entry that
    does not validate (or whose id is taken) is left out and listed in
    ``Registry.problems``; a broken registry file is an error.
    """
    registry = Registry()
    if paths is not None:
        _add_files(registry, paths)
        if plugins:
            _add_plugin_entries(registry)
        return registry
    _add_files(registry, catalogue_paths())
    if plugins:
        _add_plugin_entries(registry)
    user = user_registry_path()
    _add_files(registry, ([user] if user.is_file() else []) + extra_registry_paths())
    return registry


def _add_files(registry: Registry, paths: Iterable[Path]) -> None:
    from graftzoo.registry_cache import cached_document

    for path in paths:
        entries, adapters = cached_document(Path(path), parse_registry_document)
        for entry in entries:
            registry.add(entry)
        registry.adapter_sources.update(adapters)


def _add_plugin_entries(registry: Registry) -> None:
    from graftzoo.plugins import get_plugins

    for plugin_name, raw in get_plugins().models():
        origin = f"plugin {plugin_name!r}"
        try:
            if isinstance(raw, ModelEntry):
                entry = raw if raw.origin else replace(raw, origin=origin)
            elif isinstance(raw, Mapping):
                entry = entry_from_dict(raw, origin)
            else:
                got = type(raw).__name__
                raise RegistryError(f"{origin}: register_models got {got}; pass a dict or ModelEntry")
            registry.add(entry)
        except RegistryError as exc:
            # A plugin's bad entry is that plugin's problem: keep the rest of the zoo, say it in 'graft plugins'.
            registry.problems.append((plugin_name, str(exc)))


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def entry_toml(entry: ModelEntry) -> str:
    """One ``[[model]]`` table for ``entry`` (the fields it sets), as ``parse_registry_document`` reads it."""
    data = entry.to_dict()
    data.pop("origin")
    if not entry.arch:
        data.pop("arch")
    lines = ["[[model]]"]
    for key, value in data.items():
        if key not in ("files", "input", "config") and value not in (None, "", [], False):
            lines.append(f"{key} = {_toml_value(value)}")
    for table in ("files", "input", "config"):
        if data[table]:
            lines.append(f"[model.{table}]")
            lines += [f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in data[table].items()]
    return "\n".join(lines) + "\n"


def append_entry(path: Path, entry: ModelEntry) -> None:
    """Append ``entry`` to a registry file, atomically; the result is parsed before it replaces the file."""
    import tempfile

    old = path.read_text(encoding="utf-8") if path.is_file() else (
        "# Graftzoo user registry: entries pinned with 'graft add' (fields: see 'graft info ID').\n")
    text = old + ("" if old.endswith("\n") or not old else "\n") + "\n" + entry_toml(entry)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        parse_registry_document(Path(tmp))  # nothing half-written: a file we cannot read back is not kept
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)

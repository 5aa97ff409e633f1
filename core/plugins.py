"""The plugin manager: entry-point discovery, lazy collection, isolation, collisions.

Plugins are found through the ``graftzoo`` entry-point group and loaded once,
on first use. Each hook is called plugin by plugin with a ``register``
callable of its own, so a plugin that fails to import, raises in a hook or
registers a name someone else owns is recorded against that plugin and skipped:
it shows up in ``graft plugins`` and never takes the CLI down.

Registered objects may be given as ``"module:attribute"`` strings; they are
imported only when used (``resolve``), which keeps listing free of torch.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pluggy

from graftzoo import hookspecs
from graftzoo.errors import GraftError, PluginError

ENTRY_POINT_GROUP = "graftzoo"
ENTRY_POINT_INDEX = "entry-points.json"  # in $GRAFTZOO_HOME; see discover_entry_points
BUILTIN_PLUGINS = ("graftzoo.builtins",)
KINDS = ("backbones", "heads", "datasets", "freeze_policies")
_KIND_LABEL = {
    "backbones": "backbone adapter",
    "heads": "head",
    "datasets": "dataset",
    "freeze_policies": "freeze policy",
}


@dataclass(frozen=True)
class Registration:
    """One named thing a plugin registered: a backbone adapter, head, dataset or policy."""

    kind: str
    name: str
    target: Any  # a callable/class, or "module:attr" imported on first use
    plugin: str
    meta: dict[str, Any] = field(default_factory=dict)

    def resolve(self) -> Any:
        """The registered object, importing it now if it was given as ``module:attr``."""
        return resolve(self.target, f"{_KIND_LABEL[self.kind]} {self.name!r} of plugin {self.plugin!r}")


def resolve(target: Any, what: str) -> Any:
    """Import ``"module:attr"`` targets; return anything else unchanged."""
    if not isinstance(target, str):
        return target
    module_name, _, attr = target.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split(".") if attr else ():
            obj = getattr(obj, part)
    except ImportError as exc:
        raise PluginError(f"{what}: cannot import {target!r}: {exc}") from exc
    except AttributeError:
        raise PluginError(f"{what}: {module_name!r} has no attribute {attr!r}") from None
    return obj


@dataclass
class PluginInfo:
    """What ``graft plugins`` shows for one plugin."""

    name: str
    version: str | None
    hooks: list[str]
    builtin: bool
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "hooks": self.hooks,
            "builtin": self.builtin,
            "status": "ok" if self.ok else "error",
            "errors": self.errors,
        }


def _entry_points_enabled() -> bool:
    return os.environ.get("GRAFTZOO_NO_PLUGINS", "") in ("", "0")


class Plugins:
    """Loads plugins once and collects what they register, kind by kind."""

    def __init__(self, entry_points: bool | None = None) -> None:
        self.pm = pluggy.PluginManager("graftzoo")
        self.pm.add_hookspecs(hookspecs)
        # None: GRAFTZOO_NO_PLUGINS decides when plugins are first loaded, not when the manager is made,
        # so a manager reset while the variable is set does not stay plugin-less after it is unset.
        self._use_entry_points = entry_points
        self._loaded = False
        self._lock = threading.RLock()
        self._infos: dict[str, PluginInfo] = {}
        self._order: list[str] = []
        self._collected: dict[str, dict[str, Registration]] = {}
        self._models: list[tuple[str, Any]] | None = None

    # -- loading ---------------------------------------------------------------
    def load(self) -> None:
        """Register built-ins and every entry point; safe to call again (no-op)."""
        with self._lock:
            if self._loaded:
                return
            self._loaded = True
            for module_name in BUILTIN_PLUGINS:
                self.add(importlib.import_module(module_name), module_name, builtin=True)
            use = _entry_points_enabled() if self._use_entry_points is None else self._use_entry_points
            if use:
                self._load_entry_points()

    def _load_entry_points(self) -> None:
        for ep in discover_entry_points():
            try:
                module = resolve(ep.value, f"plugin {ep.name!r}")
            except Exception as exc:  # noqa: BLE001 - any failure in third-party code is reported
                cause = exc.__cause__ if isinstance(exc, PluginError) and exc.__cause__ else exc
                self._record(ep.name, ep.version, f"failed to import {ep.value!r}: {type(cause).__name__}: {cause}")
                continue
            self.add(module, ep.name, version=ep.version)

    def add(self, plugin: Any, name: str, version: str | None = None, builtin: bool = False) -> None:
        """Register a plugin object (module or instance) under ``name``."""
        with self._lock:
            if name in self._infos and not self._infos[name].errors:
                self._record(name, version, f"plugin name {name!r} is used by two plugins; the second was skipped")
                return
            try:
                self.pm.register(plugin, name=name)
            except Exception as exc:  # noqa: BLE001 - pluggy validation errors, name clashes
                self._record(name, version, f"cannot register: {exc}")
                return
            hooks = sorted(impl_name for impl_name in dir(plugin) if impl_name.startswith("register_")
                           and hasattr(self.pm.hook, impl_name))
            self._infos[name] = PluginInfo(name, version, hooks, builtin)
            self._order.append(name)
            self._collected.clear()
            self._models = None

    def remove(self, name: str) -> None:
        """Unregister a plugin (used by ``graftzoo.testing`` to undo ``add``)."""
        with self._lock:
            plugin = self.pm.get_plugin(name)
            if plugin is not None:
                self.pm.unregister(plugin, name=name)
            self._infos.pop(name, None)
            if name in self._order:
                self._order.remove(name)
            self._collected.clear()
            self._models = None

    def _record(self, name: str, version: str | None, error: str) -> None:
        info = self._infos.get(name)
        if info is None:
            info = self._infos[name] = PluginInfo(name, version, [], builtin=False)
            self._order.append(name)
        if error not in info.errors:
            info.errors.append(error)

    def record_problem(self, plugin: str, error: str) -> None:
        """Attach a problem found later (e.g. a registry collision) to a plugin."""
        with self._lock:
            self._record(plugin, None, error)

    # -- collection --------------------------------------------------------------
    def _impls(self, hook_name: str) -> Iterator[tuple[str, Callable[..., Any]]]:
        """Hook implementations in plugin registration order (built-ins first)."""
        by_plugin = {impl.plugin_name: impl.function for impl in getattr(self.pm.hook, hook_name).get_hookimpls()}
        for name in self._order:
            if name in by_plugin:
                yield name, by_plugin[name]

    def collect(self, kind: str) -> dict[str, Registration]:
        """Everything registered for one kind, by name; collisions recorded, first wins."""
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}")
        self.load()
        with self._lock:
            if kind in self._collected:
                return self._collected[kind]
            table: dict[str, Registration] = {}
            label = _KIND_LABEL[kind]
            for plugin_name, function in self._impls(f"register_{kind}"):
                staged: dict[str, Registration] = {}

                def register(name: str, target: Any, _p: str = plugin_name, _s: dict[str, Registration] = staged,
                             **meta: Any) -> None:
                    if not isinstance(name, str) or not name:
                        raise PluginError(f"plugin {_p!r} registered a {label} with no name")
                    owner = table.get(name) or _s.get(name)
                    if owner is not None:
                        raise PluginError(
                            f"{label} {name!r} is registered by both {owner.plugin!r} and {_p!r}; "
                            f"uninstall one of them or rename the {label}"
                        )
                    _s[name] = Registration(kind, name, target, _p, meta)

                try:
                    function(register=register)
                except Exception as exc:  # noqa: BLE001 - third-party hook code
                    msg = str(exc) if isinstance(exc, GraftError) else (
                        f"register_{kind} raised {type(exc).__name__}: {exc}"
                    )
                    self._record(plugin_name, None, msg)
                    continue  # nothing of a failing hook is kept
                table.update(staged)
            self._collected[kind] = table
            return table

    def get(self, kind: str, name: str) -> Registration:
        """One registration, or a ``PluginError`` listing the valid names."""
        table = self.collect(kind)
        if name not in table:
            valid = ", ".join(sorted(table)) or "none installed"
            raise PluginError(f"unknown {_KIND_LABEL[kind]} {name!r}; valid: {valid}")
        return table[name]

    def models(self) -> list[tuple[str, Any]]:
        """(plugin name, raw entry) pairs from ``register_models``; see ``registry.load_registry``."""
        self.load()
        with self._lock:
            if self._models is None:
                out: list[tuple[str, Any]] = []
                for plugin_name, function in self._impls("register_models"):
                    staged: list[tuple[str, Any]] = []
                    try:
                        function(register=lambda entry, _p=plugin_name, _s=staged: _s.append((_p, entry)))
                    except Exception as exc:  # noqa: BLE001
                        self._record(plugin_name, None, f"register_models raised {type(exc).__name__}: {exc}")
                        continue
                    out.extend(staged)
                self._models = out
            return self._models

    def register_commands(self, cli: Any) -> None:
        """Let each plugin add click commands; failures are recorded, not raised."""
        self.load()
        for plugin_name, function in self._impls("register_commands"):
            try:
                function(cli=cli)
            except Exception as exc:  # noqa: BLE001
                self._record(plugin_name, None, f"register_commands raised {type(exc).__name__}: {exc}")

    def infos(self, collect_all: bool = True) -> list[PluginInfo]:
        """Every plugin with its version, hooks and problems (every kind is collected first if asked).

        Problems with the models a plugin registers are found by
        ``registry.load_registry`` (``Registry.problems``); ``record_problem``
        attaches them where they should be shown.
        """
        self.load()
        if collect_all:
            for kind in KINDS:
                self.collect(kind)
        return [self._infos[name] for name in self._order]


@dataclass(frozen=True)
class EntryPoint:
    """A ``graftzoo`` entry point: plugin name, ``module[:attr]`` and its distribution's version."""

    name: str
    value: str
    version: str | None


def _path_key() -> list[list[Any]]:
    """Modification times of every sys.path entry: they change when a distribution is added or removed."""
    key: list[list[Any]] = []
    for entry in sys.path:
        try:
            key.append([entry, os.stat(entry or ".").st_mtime_ns])
        except OSError:
            key.append([entry, None])
    return key


def discover_entry_points() -> list[EntryPoint]:
    """Entry points of the ``graftzoo`` group, cached on disk.

    Scanning every installed distribution's metadata costs more than the rest of
    ``graft list`` together, so the result is kept in ``$GRAFTZOO_HOME`` keyed by
    the modification times of the ``sys.path`` directories (installing or removing
    a distribution changes them) and rescanned only when they change.
    """
    from graftzoo.home import graftzoo_home

    cache = graftzoo_home() / ENTRY_POINT_INDEX
    key = _path_key()
    try:
        cached = json.loads(cache.read_text())
        if cached.get("key") == key:
            return [EntryPoint(**ep) for ep in cached["entry_points"]]
    except (OSError, ValueError, TypeError, KeyError):
        pass
    import importlib.metadata

    found: dict[tuple[str, str], EntryPoint] = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        # The same distribution can be found twice on sys.path; keep the first.
        found.setdefault((ep.name, ep.value), EntryPoint(ep.name, ep.value, ep.dist.version if ep.dist else None))
    result = list(found.values())
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"key": key, "entry_points": [ep.__dict__ for ep in result]}))
        os.replace(tmp, cache)
    except OSError:
        pass  # a read-only home only costs speed
    return result


def forget_entry_point_index() -> None:
    """Drop the on-disk entry-point index (after pip changed what is installed)."""
    from graftzoo.home import graftzoo_home

    (graftzoo_home() / ENTRY_POINT_INDEX).unlink(missing_ok=True)


_plugins: Plugins | None = None
_plugins_lock = threading.Lock()


def get_plugins() -> Plugins:
    """The process-wide plugin manager, created on first use."""
    global _plugins
    with _plugins_lock:
        if _plugins is None:
            _plugins = Plugins()
        return _plugins


def reset_plugins(entry_points: bool | None = None) -> Plugins:
    """Drop the process-wide manager and start a fresh one (tests, after ``graft install``)."""
    global _plugins
    with _plugins_lock:
        _plugins = Plugins(entry_points)
        return _plugins

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
KINDS = ("modalities", "backbones", "heads", "datasets", "freeze_policies")
_KIND_LABEL = {
    "modalities": "modality",
    "backbones": "backbone adapter",
    "heads": "head",
    "datasets": "dataset",
    "freeze_policies": "freeze policy",
}
_STRINGS = (str,)
_TARGET = (str, object)  # an object, or "module:attr"


@dataclass(frozen=True)
class HookSpec:
    """What one registering hook's ``register`` accepts: a target or not, and its keywords with their types."""

    hook: str
    kind: str
    label: str
    target: bool
    keywords: dict[str, tuple[type, ...]]
    required: tuple[str, ...] = ()
    fixed: dict[str, Any] = field(default_factory=dict)  # metadata this hook implies (``named`` of datasets)


_OPT_STR = (str, type(None))
_SEQ = (list, tuple)
HOOKS = (
    HookSpec("register_modalities", "modalities", "modality", False,
             {"task": _STRINGS, "pipeline_tag": _STRINGS, "inputs": _STRINGS, "description": _STRINGS},
             required=("task",)),
    HookSpec("register_backbones", "backbones", "backbone adapter", True,
             {"modality": _STRINGS, "description": _STRINGS, "hub_libraries": _SEQ, "hub_tasks": _SEQ,
              "hub_entry": _TARGET}),
    HookSpec("register_heads", "heads", "head", True, {"description": _STRINGS}),
    HookSpec("register_data_formats", "datasets", "data format", True,
             {"modality": _OPT_STR, "detect": _TARGET, "task": _STRINGS, "description": _STRINGS},
             fixed={"named": False}),
    HookSpec("register_named_datasets", "datasets", "named dataset", True,
             {"modality": _OPT_STR, "task": _STRINGS, "description": _STRINGS}, fixed={"named": True}),
    HookSpec("register_datasets", "datasets", "dataset", True,
             {"modality": _OPT_STR, "detect": _TARGET, "named": (bool,), "task": _STRINGS, "description": _STRINGS},
             ),
    HookSpec("register_freeze_policies", "freeze_policies", "freeze policy", True, {"description": _STRINGS}),
)


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


class _Register:
    """The ``register`` callable one plugin's hook receives: checks the call, then stages a ``Registration``."""

    def __init__(self, plugin: str, spec: HookSpec, table: dict[str, Registration],
                 staged: dict[str, Registration]) -> None:
        self.plugin, self.spec, self.table, self.staged = plugin, spec, table, staged

    def __call__(self, name: str, target: Any = None, **meta: Any) -> None:
        spec, where = self.spec, f"plugin {self.plugin!r}: {self.spec.hook}()"
        if not isinstance(name, str) or not name:
            raise PluginError(f"{where} registered a {spec.label} with no name")
        if spec.target and target is None:
            raise PluginError(f"{where}: {spec.label} {name!r} has no factory/loader (register(name, target, ...))")
        if not spec.target and target is not None:
            raise PluginError(f"{where}: a {spec.label} takes no target; call register({name!r}, "
                              f"{', '.join(f'{k}=...' for k in spec.required)})")
        _check_keywords(where, spec, name, meta)
        owner = self.table.get(name) or self.staged.get(name)
        if owner is not None:
            raise PluginError(f"{spec.label} {name!r} is registered by both {owner.plugin!r} and {self.plugin!r}; "
                              f"the first wins (built-ins, then plugins by entry-point name): uninstall one of "
                              f"them or rename the {spec.label}")
        defaults = {"named": False} if spec.kind == "datasets" else {}
        self.staged[name] = Registration(spec.kind, name, target, self.plugin, {**defaults, **meta, **spec.fixed})


def _check_keywords(where: str, spec: HookSpec, name: str, meta: dict[str, Any]) -> None:
    for key, value in meta.items():
        if key not in spec.keywords:
            import difflib

            close = difflib.get_close_matches(key, spec.keywords, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise PluginError(f"{where}: unknown keyword {key!r} for {spec.label} {name!r}; {hint}valid keywords: "
                              f"{', '.join(spec.keywords) or 'none'}")
        if not isinstance(value, spec.keywords[key]):
            raise PluginError(f"{where}: {key}={value!r} for {spec.label} {name!r} is a {type(value).__name__}; "
                              f"expected {' or '.join(t.__name__ for t in spec.keywords[key])}")
    missing = [key for key in spec.required if key not in meta]
    if missing:
        raise PluginError(f"{where}: {spec.label} {name!r} needs {missing[0]}=...")


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
        # Sorted, so which plugin wins a name collision never depends on the order of sys.path or the disk.
        for ep in sorted(discover_entry_points(), key=lambda e: (e.name, e.value)):
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
        """Hook implementations in plugin load order (built-ins first, then plugins by entry-point name)."""
        for name in self._order:
            function = self._impl(name, hook_name)
            if function is not None:
                yield name, function

    def _impl(self, plugin_name: str, hook_name: str) -> Callable[..., Any] | None:
        for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
            if impl.plugin_name == plugin_name:
                function: Callable[..., Any] = impl.function
                return function
        return None

    def collect(self, kind: str) -> dict[str, Registration]:
        """Everything registered for one kind, by name; collisions recorded, first wins (see ``load``)."""
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}")
        self.load()
        with self._lock:
            if kind in self._collected:
                return self._collected[kind]
            table: dict[str, Registration] = {}
            for plugin_name in self._order:
                for spec in (s for s in HOOKS if s.kind == kind):
                    self._run_hook(plugin_name, spec, table)
            self._collected[kind] = table
            return table

    def _run_hook(self, plugin_name: str, spec: HookSpec, table: dict[str, Registration]) -> None:
        """Call one plugin's implementation of one hook; keep its registrations only if all of them are valid."""
        function = self._impl(plugin_name, spec.hook)
        if function is None:
            return
        staged: dict[str, Registration] = {}
        register = _Register(plugin_name, spec, table, staged)
        try:
            function(register=register)
        except Exception as exc:  # noqa: BLE001 - third-party hook code
            msg = str(exc) if isinstance(exc, GraftError) else f"{spec.hook} raised {type(exc).__name__}: {exc}"
            self._record(plugin_name, None, msg)
            return  # nothing of a failing hook is kept
        table.update(staged)

    def get(self, kind: str, name: str) -> Registration:
        """One registration, or a ``PluginError`` listing the valid names (and plugins that failed to load)."""
        table = self.collect(kind)
        if name not in table:
            valid = ", ".join(sorted(table)) or "none installed"
            broken = self.problems()
            hint = (f"; plugin(s) with problems, which may be why: {', '.join(i.name for i in broken)} "
                    f"({broken[0].errors[0]}; see 'graft plugins')") if broken else ""
            raise PluginError(f"unknown {_KIND_LABEL[kind]} {name!r}; valid: {valid}{hint}")
        return table[name]

    def problems(self) -> list[PluginInfo]:
        """Plugins with problems found so far (load, hooks collected so far)."""
        return [info for info in self._infos.values() if info.errors]

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
        from graftzoo.storage import atomic

        atomic.write_json(cache, {"key": key, "entry_points": [ep.__dict__ for ep in result]})
    except (OSError, GraftError):
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

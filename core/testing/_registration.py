"""Registering a plugin for one test, and checks of what a plugin registers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

from graftzoo.errors import GraftError
from graftzoo.plugins import KINDS, Plugins, Registration, get_plugins, resolve
from graftzoo.registry import ModelEntry, entry_from_dict
from graftzoo.testing._base import fail

#: Modules a hook module must not import: ``graft list`` and ``graft plugins`` load every hook module.
HEAVY_MODULES = ("torch", "torchvision", "timm", "transformers", "accelerate", "peft")


def _plugin_name(plugin: object, name: str | None) -> str:
    if name:
        return name
    return str(getattr(plugin, "__name__", None) or type(plugin).__name__)


@contextmanager
def registered(plugin: object, name: str | None = None) -> Iterator[Plugins]:
    """Register ``plugin`` (a hooks module or object) with the process-wide manager inside a ``with`` block.

    A plugin that is already registered (installed and loaded through its entry
    point) is left as it is. Anything the manager reports against the plugin
    while registering it raises ``ConformanceError``; the plugin is removed on
    exit either way, so tests need no installed distribution.
    """
    manager = get_plugins()
    manager.load()
    if manager.pm.is_registered(plugin):
        yield manager
        return
    plugin_name = _plugin_name(plugin, name)
    if manager.pm.get_plugin(plugin_name) is not None:
        raise fail(f"plugin {plugin_name!r}", "that name is already registered by another plugin",
                   "pass another name to registered()/graftzoo_plugin()")
    manager.add(plugin, plugin_name)
    try:
        problems = next((i.errors for i in manager.infos(collect_all=False) if i.name == plugin_name), [])
        if problems or not manager.pm.is_registered(plugin):
            raise fail(f"plugin {plugin_name!r}", "cannot be registered: " + "; ".join(problems or ["refused"]))
        yield manager
    finally:
        manager.remove(plugin_name)


def registrations(plugin_name: str) -> dict[str, dict[str, Registration]]:
    """What ``plugin_name`` registered, by kind (backbones, heads, datasets, freeze_policies) and name."""
    manager = get_plugins()
    return {kind: {n: r for n, r in manager.collect(kind).items() if r.plugin == plugin_name} for kind in KINDS}


def check_plugin(plugin_name: str, *, with_installed: bool = False) -> dict[str, dict[str, Registration]]:
    """Check that a registered plugin loads cleanly: no hook errors, no name collisions, every target imports.

    With ``with_installed`` it is also loaded beside every plugin installed in
    this environment (their entry points), and a name that one of them
    registers too is a failure naming both. Returns what it registered, by
    kind and name (see ``registrations``).
    """
    if with_installed:
        _check_beside_installed(plugin_name)
    manager = get_plugins()
    infos = {i.name: i for i in manager.infos()}
    where = f"plugin {plugin_name!r}"
    if plugin_name not in infos:
        known = ", ".join(sorted(infos)) or "none"
        raise fail(where, f"is not registered (registered: {known})",
                   "register it with graftzoo.testing.registered() or the graftzoo_plugin fixture")
    if infos[plugin_name].errors:
        raise fail(where, "reported problems: " + "; ".join(infos[plugin_name].errors))
    found = registrations(plugin_name)
    for table in found.values():
        for reg in table.values():
            try:
                reg.resolve()
                if reg.meta.get("detect") is not None:
                    resolve(reg.meta["detect"], f"detector of {reg.name!r}")
            except GraftError as exc:
                raise fail(where, str(exc), "fix the 'module:attr' target it registered") from None
    if not any(found.values()) and not plugin_models(plugin_name):
        raise fail(where, "registers nothing", "implement at least one register_* hook with @graftzoo.hookimpl")
    return found


def _check_beside_installed(plugin_name: str) -> None:
    plugin = get_plugins().pm.get_plugin(plugin_name)
    if plugin is None:
        raise fail(f"plugin {plugin_name!r}", "is not registered", "register it with the graftzoo_plugin fixture")
    manager = Plugins(entry_points=True)
    manager.load()
    if not manager.pm.is_registered(plugin) and manager.pm.get_plugin(plugin_name) is None:
        manager.add(plugin, plugin_name)
    clashes = [f"{info.name}: {error}" for info in manager.infos() for error in info.errors
               if f"{plugin_name!r}" in error]
    if clashes:
        raise fail(f"plugin {plugin_name!r}", "clashes with the installed plugins: " + "; ".join(clashes),
                   "rename what both register (prefix generic names with your plugin's name)")


def check_light_import(module: str, heavy: tuple[str, ...] = HEAVY_MODULES) -> None:
    """Check, in a fresh interpreter, that importing ``module`` pulls in none of ``heavy``.

    Hook modules are imported by ``graft list``, ``graft plugins`` and
    ``graft --help``; a torch import there slows every command for every user.
    """
    code = (
        "import importlib, json, sys\n"
        f"importlib.import_module({module!r})\n"
        f"print(json.dumps(sorted(m for m in {list(heavy)!r} if m in sys.modules)))\n"
    )
    # The child sees exactly this process's import path (pytest's pythonpath, editable installs).
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p), "GRAFTZOO_NO_PLUGINS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    if proc.returncode != 0:
        raise fail(f"module {module!r}", f"cannot be imported: {proc.stderr.strip().splitlines()[-1:]}")
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    if loaded:
        raise fail(f"module {module!r}", f"imports {', '.join(loaded)} at import time",
                   "import heavy libraries inside the functions that use them and register 'module:attr' strings")


def plugin_models(plugin_name: str) -> list[ModelEntry]:
    """The registry entries ``plugin_name`` registers through ``register_models``, validated."""
    out = []
    for owner, raw in get_plugins().models():
        if owner != plugin_name:
            continue
        origin = f"plugin {plugin_name!r}"
        try:
            if isinstance(raw, ModelEntry):
                out.append(raw if raw.origin else replace(raw, origin=origin))
            else:
                out.append(entry_from_dict(raw, origin))
        except GraftError as exc:
            raise fail(origin, f"registers a bad registry entry: {exc}") from None
    return out


def check_model_entries(plugin_name: str, verify_files: bool = True) -> list[ModelEntry]:
    """Check the registry entries a plugin ships: valid, in the catalogue, buildable, weights pinned.

    Each entry must name a registered backbone adapter of its modality and
    list its tasks; with ``verify_files`` every local (``file://``) or
    installed (``pkg://``) source is fetched and its sha256 verified.
    """
    from graftzoo.registry import load_registry

    entries = plugin_models(plugin_name)
    where = f"plugin {plugin_name!r}"
    if not entries:
        raise fail(where, "registers no models", "register entries in a register_models hook")
    catalogue = load_registry()
    problems = next((i.errors for i in get_plugins().infos(collect_all=False) if i.name == plugin_name), [])
    if problems:
        raise fail(where, "; ".join(problems))
    adapters = get_plugins().collect("backbones")
    for entry in entries:
        what = f"{where}: entry {entry.id!r}"
        if entry.id not in catalogue:
            raise fail(what, "is missing from load_registry()")
        adapter = adapters.get(entry.backbone)
        if adapter is None:
            raise fail(what, f"names backbone adapter {entry.backbone!r}, which no registered plugin provides",
                       "register it in register_backbones or fix the entry's 'backbone'")
        if adapter.meta.get("modality") not in (None, entry.modality):
            raise fail(what, f"is {entry.modality} but adapter {entry.backbone!r} is {adapter.meta['modality']}")
        if not entry.tasks:
            raise fail(what, "lists no tasks", "add e.g. tasks = ['image-classification'] for 'graft list --task'")
        if verify_files and entry.parsed_source.scheme in ("file", "pkg"):
            from graftzoo.sources import fetch

            try:
                fetch(entry)
            except GraftError as exc:
                raise fail(what, f"weights do not verify: {exc}") from None
    return entries

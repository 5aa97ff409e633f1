"""pytest fixtures of the conformance kit, loaded through graftzoo's ``pytest11`` entry point.

Nothing here runs unless a test asks for a fixture: the plugin is active in
every pytest session of an environment where graftzoo is installed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from graftzoo.plugins import Plugins, reset_plugins


@pytest.fixture
def graftzoo_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, empty ``GRAFTZOO_HOME`` (cache, entry-point index) for one test."""
    home = tmp_path / "graftzoo-home"
    home.mkdir()
    monkeypatch.setenv("GRAFTZOO_HOME", str(home))
    return home


@pytest.fixture
def graftzoo_plugins() -> Iterator[Plugins]:
    """A fresh plugin manager with the built-ins only (installed plugins are not loaded); reset afterwards."""
    # A private MonkeyPatch: undoing it must not undo the test's own monkeypatching.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRAFTZOO_NO_PLUGINS", "1")
        yield reset_plugins()
    reset_plugins()


@pytest.fixture
def graftzoo_plugin(graftzoo_plugins: Plugins) -> Iterator[Callable[..., None]]:
    """Register plugin objects (hooks modules) for one test: ``graftzoo_plugin(hooks, "name")``.

    They join the built-ins in a fresh manager, so installed plugins cannot
    collide with them; everything is removed when the test ends.
    """
    from graftzoo.testing import registered

    with ExitStack() as stack:

        def register(plugin: object, name: str | None = None) -> None:
            stack.enter_context(registered(plugin, name))

        yield register

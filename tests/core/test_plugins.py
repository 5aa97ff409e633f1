"""Plugin discovery through real entry-point metadata: broken and colliding plugins are isolated."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from graftzoo.errors import PluginError
from graftzoo.hookspecs import hookimpl
from graftzoo.plugins import Plugins

from .conftest import run_graft

PLUGINS = {
    # name: (module source, version)
    "good_plugin": (
        """
        from graftzoo import hookimpl

        @hookimpl
        def register_models(register):
            register({"id": "goodnet.v1", "modality": "vision", "backbone": "goodbone",
                      "source": "file://goodnet.safetensors", "sha256": "%s", "license": "MIT",
                      "tasks": ["image-classification"]})

        @hookimpl
        def register_heads(register):
            register("good-head", "good_plugin:make_head")

        @hookimpl
        def register_backbones(register):
            register("goodbone", "good_plugin:make_backbone", modality="vision")

        @hookimpl
        def register_freeze_policies(register):
            register("thaw-half", "good_plugin:ThawHalf", description="half of it")

        @hookimpl
        def register_commands(cli):
            import click

            @cli.command()
            @click.argument("who")
            def hello(who):
                "Say hello."
                click.echo(f"hello {who}")
        """ % ("b" * 64),
        "1.2.3",
    ),
    "broken_plugin": ("import no_such_module_anywhere\n", "0.1"),
    "colliding_plugin": (
        """
        from graftzoo import hookimpl

        @hookimpl
        def register_heads(register):
            register("linear", "colliding_plugin:head")
        """,
        "2.0",
    ),
    "raising_plugin": (
        """
        from graftzoo import hookimpl

        @hookimpl
        def register_datasets(register):
            raise RuntimeError("disk on fire")

        @hookimpl
        def register_models(register):
            register({"id": "mobilenetv2_100.tv_in1k", "modality": "vision", "backbone": "timm",
                      "source": "file://x.pth", "sha256": "%s", "license": "MIT"})
        """ % ("c" * 64),
        "0.0.1",
    ),
}


def install_fake_dists(root: Path) -> None:
    """Write each plugin module plus a real .dist-info with a graftzoo entry point."""
    for name, (source, version) in PLUGINS.items():
        (root / f"{name}.py").write_text(textwrap.dedent(source))
        dist = root / f"{name}-{version}.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        (dist / "entry_points.txt").write_text(f"[graftzoo]\n{name} = {name}\n")


@pytest.fixture
def fake_site(tmp_path: Path) -> dict[str, str]:
    site = tmp_path / "site"
    site.mkdir()
    install_fake_dists(site)
    return {"PYTHONPATH": str(site), "GRAFTZOO_HOME": str(tmp_path / "home")}


def test_list_survives_broken_and_colliding_plugins(fake_site: dict[str, str]) -> None:
    result = run_graft("list", "--json", env=fake_site)
    assert result.returncode == 0, result.stderr
    ids = [e["id"] for e in json.loads(result.stdout)]
    assert "goodnet.v1" in ids  # a plugin's own registry entries are listed
    assert "mobilenetv2_100.tv_in1k" in ids  # the core catalogue is intact
    good = next(e for e in json.loads(result.stdout) if e["id"] == "goodnet.v1")
    assert good["origin"] == "plugin 'good_plugin'"


def test_plugins_command_names_each_problem(fake_site: dict[str, str]) -> None:
    result = run_graft("plugins", "--json", env=fake_site)
    assert result.returncode == 0, result.stderr
    infos = {p["name"]: p for p in json.loads(result.stdout)}
    assert infos["good_plugin"]["status"] == "ok"
    assert infos["good_plugin"]["version"] == "1.2.3"
    assert infos["good_plugin"]["hooks"] == [
        "register_backbones", "register_commands", "register_freeze_policies", "register_heads", "register_models"]
    assert infos["broken_plugin"]["status"] == "error"
    assert "no_such_module_anywhere" in infos["broken_plugin"]["errors"][0]
    (collision,) = infos["colliding_plugin"]["errors"]
    assert "head 'linear' is registered by both 'graftzoo.builtins' and 'colliding_plugin'" in collision
    raising = " ".join(infos["raising_plugin"]["errors"])
    assert "register_datasets raised RuntimeError: disk on fire" in raising
    assert "duplicate id" in raising and "mobilenetv2_100.tv_in1k" in raising
    # The table form shows the same, and still exits 0.
    table = run_graft("plugins", env={**fake_site, "COLUMNS": "60"})
    assert table.returncode == 0
    assert "ERROR" in table.stdout and "broken_plugin" in table.stdout
    # Whole messages, wrapped to the terminal: nothing is cut off.
    text = " ".join(table.stdout.split())
    for error in (*infos["raising_plugin"]["errors"], collision):
        assert " ".join(error.split()) in text, error
    assert max(len(line) for line in table.stdout.splitlines()[table.stdout.splitlines().index(""):]) <= 60


def test_list_and_tune_warn_about_plugins_with_problems(fake_site: dict[str, str]) -> None:
    listed = run_graft("list", env=fake_site)
    assert listed.returncode == 0
    warning = [line for line in listed.stderr.splitlines() if line.startswith("Warning: ")]
    assert warning == ["Warning: plugin(s) broken_plugin, colliding_plugin, raising_plugin have problems, so some of "
                       "what they provide is missing; 'graft plugins' shows them"]
    tuned = run_graft("tune", "nosuch.model", "digits", env=fake_site)
    assert tuned.returncode == 1 and tuned.stderr.startswith("Warning: plugin(s) broken_plugin")


def test_plugin_registrations_are_collected(fake_site: dict[str, str]) -> None:
    code = (
        "from graftzoo.plugins import get_plugins\n"
        "p = get_plugins()\n"
        "print(p.get('backbones', 'goodbone').meta['modality'], p.get('freeze_policies', 'thaw-half').plugin,"
        " p.get('heads', 'good-head').target)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**os.environ, **fake_site})
    assert out.stdout.split() == ["vision", "good_plugin", "good_plugin:make_head"], out.stderr


def test_plugin_commands(fake_site: dict[str, str]) -> None:
    assert run_graft("hello", "world", env=fake_site).stdout == "hello world\n"
    assert "hello" in run_graft("--help", env=fake_site).stdout
    missing = run_graft("nonesuch", env=fake_site)
    assert missing.returncode == 2 and "No such command 'nonesuch'" in missing.stderr


def test_no_plugins_switch(fake_site: dict[str, str]) -> None:
    result = run_graft("plugins", "--json", env={**fake_site, "GRAFTZOO_NO_PLUGINS": "1"})
    assert [p["name"] for p in json.loads(result.stdout)] == ["graftzoo.builtins"]


def test_entry_point_cache_sees_new_plugins(fake_site: dict[str, str], tmp_path: Path) -> None:
    first = json.loads(run_graft("plugins", "--json", env=fake_site).stdout)
    site = Path(fake_site["PYTHONPATH"])
    (site / "late_plugin.py").write_text("x = 1\n")
    dist = site / "late_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: late_plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[graftzoo]\nlate_plugin = late_plugin\n")
    second = json.loads(run_graft("plugins", "--json", env=fake_site).stdout)
    assert "late_plugin" not in {p["name"] for p in first}
    assert "late_plugin" in {p["name"] for p in second}


class _Head:
    @hookimpl
    def register_heads(self, register):  # type: ignore[no-untyped-def]
        register("linear", "x:y")


def test_collision_is_an_error_naming_both_plugins() -> None:
    plugins = Plugins(entry_points=False)
    plugins.load()
    plugins.add(_Head(), "second")
    assert "linear" in plugins.collect("heads")
    assert plugins.collect("heads")["linear"].plugin == "graftzoo.builtins"  # the first owner keeps it
    (info,) = [i for i in plugins.infos(collect_all=False) if i.name == "second"]
    assert info.errors == [
        "head 'linear' is registered by both 'graftzoo.builtins' and 'second'; the first wins (built-ins, then "
        "plugins by entry-point name): uninstall one of them or rename the head"
    ]


def test_unknown_name_lists_valid_ones() -> None:
    plugins = Plugins(entry_points=False)
    with pytest.raises(PluginError, match="unknown freeze policy 'thaw'; valid: bitfit, frozen, full, gradual"):
        plugins.get("freeze_policies", "thaw")


def test_loading_is_lazy_and_idempotent() -> None:
    plugins = Plugins(entry_points=False)
    assert plugins.pm.get_plugins() == set()
    plugins.load()
    plugins.load()
    assert [i.name for i in plugins.infos(collect_all=False)] == ["graftzoo.builtins"]
    assert plugins.collect("heads") is plugins.collect("heads")


def test_unresolvable_target_names_the_plugin() -> None:
    plugins = Plugins(entry_points=False)

    class Bad:
        @hookimpl
        def register_heads(self, register):  # type: ignore[no-untyped-def]
            register("ghost", "no_such_module_xyz:ghost")

    plugins.add(Bad(), "ghostly")
    with pytest.raises(PluginError, match="head 'ghost' of plugin 'ghostly': cannot import 'no_such_module_xyz:ghost'"):
        plugins.get("heads", "ghost").resolve()


def test_a_manager_reset_under_no_plugins_loads_entry_points_once_the_variable_is_gone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """GRAFTZOO_NO_PLUGINS is read at first load: a reset made while it was set must not stay plugin-less."""
    from graftzoo import plugins as plugins_mod

    monkeypatch.setenv("GRAFTZOO_NO_PLUGINS", "1")
    manager = plugins_mod.Plugins()
    monkeypatch.delenv("GRAFTZOO_NO_PLUGINS")
    seen: list[bool] = []
    monkeypatch.setattr(plugins_mod.Plugins, "_load_entry_points", lambda self: seen.append(True))
    manager.load()
    assert seen == [True]
    monkeypatch.setenv("GRAFTZOO_NO_PLUGINS", "1")
    off = plugins_mod.Plugins()
    off.load()
    assert seen == [True]

"""'graft plugin new' makes a plugin that installs, passes its own tests and shows up in 'graft list/plugins'."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import types
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from graftzoo import testing as kit
from graftzoo.cli import cli
from graftzoo.hookspecs import hookimpl
from graftzoo.scaffold import new_plugin, plugin_names


def graft(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m graftzoo ARGS`` as a user runs it, with installed plugins enabled."""
    env = {k: v for k, v in os.environ.items() if k != "GRAFTZOO_NO_PLUGINS"}
    return subprocess.run([sys.executable, "-m", "graftzoo", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)


def unique_name() -> str:
    return f"graftzoo-devkit{uuid.uuid4().hex[:8]}"


@pytest.mark.slow
def test_new_plugin_installs_passes_its_tests_and_is_listed(tmp_path: Path) -> None:
    names = plugin_names(unique_name())
    created = graft("plugin", "new", names.dist, "--modality", "vision", "--dir", str(tmp_path))
    assert created.returncode == 0, created.stderr
    root = tmp_path / names.dist
    assert (root / names.pkg / "weights" / f"{names.model_id}.safetensors").is_file()
    try:
        installed = graft("install", "--no-deps", "--no-build-isolation", "-q", "-e", str(root))
        assert installed.returncode == 0, installed.stdout + installed.stderr
        assert f"Added plugin {names.short!r}" in installed.stdout
        row = next(line for line in installed.stdout.splitlines() if line.startswith(names.short + " "))
        assert row.split()[1:2] == ["0.1.0"] and row.endswith("ok")

        env = {k: v for k, v in os.environ.items() if k != "GRAFTZOO_NO_PLUGINS"}
        tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=root,
                               capture_output=True, text=True, env=env, timeout=600)
        assert tests.returncode == 0, tests.stdout[-4000:]
        assert "8 passed" in tests.stdout

        listed = {e["id"]: e for e in json.loads(graft("list", "--json").stdout)}
        entry = listed[names.model_id]
        assert (entry["backbone"], entry["modality"], entry["license"]) == (names.short, "vision", "Apache-2.0")
        assert entry["origin"] == str(root / names.pkg / "registry.toml")

        plugins = {p["name"]: p for p in json.loads(graft("plugins", "--json").stdout)}
        assert plugins[names.short]["status"] == "ok", plugins[names.short]
        assert plugins[names.short]["version"] == "0.1.0"
        assert {"register_backbones", "register_heads", "register_data_formats", "register_freeze_policies",
                "register_models"} <= set(plugins[names.short]["hooks"])
    finally:
        removed = graft("uninstall", "-q", names.dist)
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert f"Removed plugin {names.short!r}" in removed.stdout
    assert names.short not in {p["name"] for p in json.loads(graft("plugins", "--json").stdout)}


@pytest.mark.slow
@pytest.mark.parametrize("modality", ["text", "audio"])
def test_every_modality_scaffold_conforms(modality: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         graftzoo_plugin: Callable[..., None]) -> None:
    """The text and audio templates pass the kit too (in-process: the vision test covers install and pytest)."""
    names = plugin_names(unique_name())
    root = new_plugin(names.dist, modality, tmp_path)
    monkeypatch.syspath_prepend(str(root))
    hooks = importlib.import_module(f"{names.pkg}.hooks")
    data = importlib.import_module(f"{names.pkg}.data")
    try:
        graftzoo_plugin(hooks, names.short)
        suffix = "tsv" if modality == "text" else "npz"
        assert set(kit.check_plugin(names.short)["datasets"]) == {f"{names.short}-{suffix}"}
        assert [e.id for e in kit.check_model_entries(names.short)] == [names.model_id]
        results = kit.check_backbone_adapter(names.model_id, data.example_samples(), tmp_path=tmp_path)
        assert all(results[p] == "ok" for p in ("bitfit", "frozen", "full", "gradual", "top-k")), results
        # The text template declares LoRA targets; the audio CNN declares none, and the policy says so.
        assert results["lora"] == "ok" if modality == "text" else results["lora"].startswith("not applicable")
        kit.check_head(f"{names.short}-cosine", tokens=True)
        sample = data.write_sample(tmp_path / f"sample.{suffix}")
        loaded = kit.check_dataset_format(f"{names.short}-{sample.suffix[1:]}", sample,
                                          expected_classes=data.SAMPLE_CLASSES)
        assert len(loaded) == data.SAMPLE_SIZE
    finally:
        for module in [m for m in sys.modules if m == names.pkg or m.startswith(names.pkg + ".")]:
            del sys.modules[module]


@pytest.mark.parametrize(("name", "message"), [
    ("Bad_Name", "plugin name 'Bad_Name' is not valid: use lowercase letters, digits and single hyphens"),
    ("graftzoo", "plugin name 'graftzoo' is reserved"),
    ("torch", "a module named 'torch' is already importable"),
    ("graftzoo-taken", "backbone adapter name 'taken' is taken by plugin 'other'"),
])
def test_bad_names_are_refused(name: str, message: str, tmp_path: Path, graftzoo_plugin: Callable[..., None]) -> None:
    other = types.ModuleType("other")
    other.register_backbones = hookimpl(lambda register: register("taken", "other:create"))  # type: ignore[attr-defined]
    graftzoo_plugin(other, "other")
    result = CliRunner().invoke(cli, ["plugin", "new", name, "--dir", str(tmp_path)])
    assert result.exit_code == 1
    assert message in result.output
    assert list(tmp_path.iterdir()) == []


def test_existing_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "graftzoo-taken").mkdir()
    result = CliRunner().invoke(cli, ["plugin", "new", "graftzoo-taken", "--dir", str(tmp_path)])
    assert result.exit_code == 1
    assert f"{tmp_path / 'graftzoo-taken'} already exists" in result.output


def test_failed_pip_install_is_one_error_line(tmp_path: Path) -> None:
    result = graft("install", "--no-deps", "--no-index", str(tmp_path / "no-such-plugin"))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == "Error: pip install failed (exit code 1); see pip's output above"

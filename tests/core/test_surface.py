"""The public surface: exported names, documented and tested hooks, a light CLI."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import graftzoo
from graftzoo import hookspecs

from .conftest import REPO, run_graft

HEAVY = ("torch", "timm", "torchvision", "transformers")


def test_exported_members() -> None:
    assert graftzoo.__all__ == [
        "ChecksumError",
        "DataError",
        "GraftError",
        "ModelEntry",
        "OptionError",
        "PluginError",
        "Registry",
        "RegistryError",
        "SourceError",
        "StorageError",
        "TrainingError",
        "__version__",
        "get_plugins",
        "hookimpl",
        "load_registry",
        "parse_source",
    ]
    for name in graftzoo.__all__:
        assert hasattr(graftzoo, name), name


def hook_names() -> list[str]:
    return [name for name, obj in vars(hookspecs).items() if inspect.isfunction(obj) and name.startswith("register_")]


def test_the_hooks() -> None:
    assert sorted(hook_names()) == [
        "register_backbones",
        "register_commands",
        "register_data_formats",
        "register_datasets",
        "register_freeze_policies",
        "register_heads",
        "register_modalities",
        "register_models",
        "register_named_datasets",
    ]


@pytest.mark.parametrize("hook", hook_names())
def test_plugin_hooks_have_docs_and_tests(hook: str) -> None:
    """As datasette does: a hook without a docstring, or that no test exercises, fails here."""
    assert (getattr(hookspecs, hook).__doc__ or "").strip(), f"hook {hook} has no docstring"
    this = Path(__file__).resolve()
    test_files = [p for p in REPO.glob("**/tests/**/*.py") if p.resolve() != this and ".venv" not in p.parts]
    users = [p for p in test_files if f"def {hook}(" in p.read_text(encoding="utf-8")]
    assert users, f"no test implements hook {hook}"


@pytest.mark.parametrize("args", [["--help"], ["list"], ["list", "--json"], ["plugins"], ["info",
                                  "mobilenetv2_100.tv_in1k"]])
def test_listing_imports_no_heavy_library(args: list[str], tmp_path: Path) -> None:
    code = (
        "import sys, io, contextlib\n"
        f"sys.argv = ['graft', *{args!r}]\n"
        "from graftzoo.cli import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        "    try:\n        main()\n    except SystemExit as exc:\n        code = exc.code\n"
        f"print(__import__('json').dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "GRAFTZOO_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_list_json_has_the_documented_keys(tmp_path: Path) -> None:
    result = run_graft("list", "--json", env={"GRAFTZOO_HOME": str(tmp_path)})
    entries = json.loads(result.stdout)
    assert {"id", "modality", "backbone", "source", "license", "tasks"} <= set(entries[0])
    env = {"GRAFTZOO_HOME": str(tmp_path)}
    vision = json.loads(run_graft("list", "--json", "--modality", "vision", env=env).stdout)
    assert vision and all(e["modality"] == "vision" for e in vision)


def test_info_and_unknown_id(tmp_path: Path) -> None:
    env = {"GRAFTZOO_HOME": str(tmp_path)}
    data = json.loads(run_graft("info", "ge2e_lstm3.resemblyzer", "--json", env=env).stdout)
    assert data["input"]["sample_rate"] == 16000
    assert data["license"] == "Apache-2.0"
    bad = run_graft("info", "resemblyzer", env=env)
    assert bad.returncode == 1
    assert bad.stderr.strip() == "Error: unknown model 'resemblyzer'; did you mean ge2e_lstm3.resemblyzer?"


def test_python_dash_m_and_version(tmp_path: Path) -> None:
    result = run_graft("--version", env={"GRAFTZOO_HOME": str(tmp_path)})
    assert result.returncode == 0 and graftzoo.__version__ in result.stdout

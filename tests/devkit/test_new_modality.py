"""A third-party plugin adds a modality, installed through real entry-point metadata; every command works on it.

The plugin (tests/devkit/signal) uses only the public API. It is copied into a
temporary site directory with a ``.dist-info`` (METADATA and entry_points.txt),
so Graftzoo finds it exactly as it finds a pip-installed distribution.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from graftzoo.cli import cli

SOURCE = Path(__file__).parent / "signal" / "graftzoo_signal"
MODEL = "sigcnn_tiny.seed0"
GREP_CORE = ("signal", "sigcnn")
STDLIB_SIGNAL = re.compile(r"\bimport signal\b|\bsignal\.(signal|sig\w+)\b")


def install_signal_plugin(site: Path) -> None:
    """Copy the plugin into ``site`` with weights, a registry fragment and dist-info metadata."""
    pkg = site / "graftzoo_signal"
    shutil.copytree(SOURCE, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    import importlib.util

    spec = importlib.util.spec_from_file_location("graftzoo_signal.backbone", pkg / "backbone.py")
    assert spec is not None and spec.loader is not None
    sys.path.insert(0, str(site))
    try:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        (pkg / "weights").mkdir()
        module.write_weights(pkg / "weights" / f"{MODEL}.safetensors")
    finally:
        sys.path.remove(str(site))
        for name in [n for n in sys.modules if n.startswith("graftzoo_signal")]:
            del sys.modules[name]
    sha = hashlib.sha256((pkg / "weights" / f"{MODEL}.safetensors").read_bytes()).hexdigest()
    (pkg / "registry.toml").write_text(
        f'[[model]]\nid = "{MODEL}"\nmodality = "signal"\nbackbone = "sigcnn"\n'
        f'source = "file://weights/{MODEL}.safetensors"\nsha256 = "{sha}"\nlicense = "MIT"\n'
        'tasks = ["signal-classification"]\npretrained_on = "synthetic sines at 3, 7 and 12 Hz"\n'
        '[model.input]\nlength = 128\n')
    info = site / "graftzoo_signal-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: graftzoo-signal\nVersion: 0.1.0\n"
                                   "Requires-Dist: graftzoo~=0.1.0\n")
    (info / "entry_points.txt").write_text("[graftzoo]\nsignal = graftzoo_signal.hooks\n")
    (info / "top_level.txt").write_text("graftzoo_signal\n")


@pytest.fixture
def signal_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    from graftzoo.plugins import reset_plugins

    site = tmp_path / "site"
    site.mkdir()
    install_signal_plugin(site)
    monkeypatch.setenv("GRAFTZOO_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("GRAFTZOO_NO_PLUGINS", raising=False)
    monkeypatch.syspath_prepend(str(site))
    reset_plugins()
    yield site
    reset_plugins()
    for name in [n for n in sys.modules if n.startswith("graftzoo_signal")]:
        del sys.modules[name]


def write_data(path: Path, per_class: int, seed: int) -> Path:
    from graftzoo_signal.data import synthetic  # the installed plugin (the site is on sys.path)

    signals, labels = synthetic(per_class=per_class, seed=seed)
    np.savez(path, signals=signals, labels=np.array(["low", "mid", "high"])[labels])
    return path


def run(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.slow
def test_a_plugin_adds_a_modality_used_by_every_command(signal_site: Path, tmp_path: Path) -> None:
    train = write_data(tmp_path / "train.npz", per_class=20, seed=1)
    listed = json.loads(run("list", "--modality", "signal", "--json"))
    assert [e["id"] for e in listed] == [MODEL] and listed[0]["origin"].endswith("graftzoo_signal/registry.toml")
    plugins = {p["name"]: p for p in json.loads(run("plugins", "--json"))}
    assert plugins["signal"]["status"] == "ok" and plugins["signal"]["version"] == "0.1.0"

    ranked = json.loads(run("rank", str(train), "--json", "--folds", "3"))
    assert [r["model"] for r in ranked["results"]] == [MODEL]  # only the signal modality's candidates
    assert ranked["results"][0]["error"] is None

    for policy, extra in (("frozen", []), ("top-k", ["--unfreeze", "1"])):
        out = tmp_path / policy
        run("tune", MODEL, str(train), "--policy", policy, *extra, "--epochs", "6", "--lr", "0.02",
            "--out", str(out))
        info = json.loads((out / "graft.json").read_text())
        assert info["final"]["accuracy"] > 0.6, info["final"]  # three classes: chance is 0.33
        card = (out / "README.md").read_text()
        assert "pipeline_tag: time-series-classification" in card and '- "signal"' in card

    test = write_data(tmp_path / "test.npz", per_class=10, seed=2)
    metrics = json.loads(run("evaluate", str(tmp_path / "frozen"), str(test), "--json"))
    assert metrics["n"] == 30 and metrics["accuracy"] > 0.6

    sample = tmp_path / "one.npy"
    np.save(sample, np.load(test)["signals"][0])
    predicted = json.loads(run("predict", str(tmp_path / "frozen"), str(sample), "--json"))
    assert predicted[0]["label"] in ("low", "mid", "high")

    run("export", str(tmp_path / "top-k"), "--format", "onnx")
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "top-k" / "export" / "model.onnx")).metadata_props}
    assert meta["modality"] == "signal" and meta["pipeline_tag"] == "time-series-classification"


def test_core_never_mentions_the_plugin() -> None:
    core = Path(__file__).resolve().parents[2] / "core"
    for path in core.rglob("*"):
        if path.is_file() and path.suffix in (".py", ".toml", ".tmpl", ".md"):
            # Python's own signal module (the CLI stops on SIGTERM as on Ctrl-C) is not the plugin.
            text = STDLIB_SIGNAL.sub("", path.read_text(encoding="utf-8").lower())
            assert not any(word in text for word in GREP_CORE), path

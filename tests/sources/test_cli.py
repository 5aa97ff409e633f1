"""graft pull / cache / push / list --hub, end to end through the click group."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import TINY, TINY_V2, Hub, parts_left, sha
from hub_servers import FaultProxy, PushHub

from graftzoo.cli import cli

RESEMBLYZER = {"id": "ge2e_lstm3.resemblyzer", "modality": "audio", "backbone": "resemblyzer", "license": "Apache-2.0",
               "source": "pkg://resemblyzer==0.1.4/resemblyzer/pretrained.pt",
               "sha256": "39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e"}
TINY_MAIN = {"id": "tiny.acme", "modality": "vision", "backbone": "timm", "license": "MIT",
             "source": "hf://acme/tiny@main/model.safetensors"}


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_pull_prints_the_path_and_lock_reproduces(proxy: FaultProxy, hub: Hub, tmp_path: Path,
                                                  registry_file: Callable[..., Path]) -> None:
    registry_file(RESEMBLYZER, TINY_MAIN)
    lock = tmp_path / "graft.lock"
    code, out = run("pull", "tiny.acme", "--lock", str(lock))
    assert code == 0 and Path(out.strip()).read_bytes() == TINY_V2
    code, out = run("pull", "ge2e_lstm3.resemblyzer", "--lock", str(lock))
    assert code == 0 and out.strip().endswith("resemblyzer/pretrained.pt")
    locked = json.loads(lock.read_text())["models"]
    assert locked["tiny.acme"]["revision"] == hub.tiny_main
    assert locked["tiny.acme"]["files"]["model.safetensors"]["sha256"] == sha(TINY_V2)
    code, out = run("pull", "--locked", str(lock))
    assert code == 0 and "tiny.acme\t" in out and "ge2e_lstm3.resemblyzer\t" in out
    # A lock that records other bytes cannot be reproduced.
    locked["tiny.acme"]["files"]["model.safetensors"]["sha256"] = sha(TINY["model.safetensors"])
    lock.write_text(json.dumps({"version": 1, "models": locked}))
    code, out = run("pull", "--locked", str(lock), "tiny.acme")
    assert code == 1 and "does not reproduce the lock file" in out


def test_pull_revision_force_and_unknown_id(proxy: FaultProxy, hub: Hub, registry_file: Callable[..., Path]) -> None:
    registry_file(TINY_MAIN)
    code, out = run("pull", "tiny.acme", "--revision", "v1")
    assert code == 0 and Path(out.strip()).read_bytes() == TINY["model.safetensors"]
    gets = proxy.requests("GET", "/model.safetensors")
    assert run("pull", "tiny.acme", "--revision", "v1", "--force")[0] == 0
    assert proxy.requests("GET", "/model.safetensors") == gets + 1
    code, out = run("pull", "tiny.acmee")
    assert code == 1 and "did you mean tiny.acme" in out and "Traceback" not in out


def test_cache_ls_verify_rm(proxy: FaultProxy, hub: Hub, hf_env: Path, registry_file: Callable[..., Path]) -> None:
    registry_file(RESEMBLYZER, TINY_MAIN)
    assert run("pull", "tiny.acme")[0] == 0
    assert run("pull", "ge2e_lstm3.resemblyzer")[0] == 0
    code, out = run("cache", "ls", "--json")
    listed = {m["id"]: m for m in json.loads(out)}
    assert code == 0 and set(listed) == {"tiny.acme", "ge2e_lstm3.resemblyzer"}
    assert listed["tiny.acme"]["revision"] == hub.tiny_main and listed["tiny.acme"]["bytes"] == len(TINY_V2)
    assert run("cache", "verify") == (0, "2 files verified.\n")
    blob = Path(listed["tiny.acme"]["path"]).resolve()
    blob.write_bytes(b"x" * blob.stat().st_size)
    code, out = run("cache", "verify")
    assert code == 1 and "corrupt: tiny.acme model.safetensors" in out and "removed" in out
    assert not blob.exists() and not parts_left(hf_env)
    assert "tiny.acme" not in run("cache", "ls", "--json")[1]
    assert run("pull", "tiny.acme")[0] == 0 and blob.read_bytes() == TINY_V2  # pulled again
    code, out = run("cache", "rm", "tiny.acme")
    assert code == 0 and "2 file(s)" in out and not blob.exists()  # blob and snapshot link
    code, out = run("cache", "rm", "tiny.acme")
    assert code == 1 and "not in the cache" in out


def test_list_hub_marks_registry_models(push_hub: PushHub, monkeypatch: pytest.MonkeyPatch,
                                        registry_file: Callable[..., Path]) -> None:
    from graftzoo import hookimpl
    from graftzoo.plugins import reset_plugins

    class Adapters:  # what the vision and NLP plugins declare (their hooks are checked below)
        @hookimpl
        def register_backbones(self, register: Callable[..., None]) -> None:
            register("timm", "x:y", modality="vision", hub_libraries=["timm"])
            register("hf-encoder", "x:z", modality="text", hub_libraries=["transformers", "sentence-transformers"],
                     hub_tasks=["feature-extraction", "fill-mask", "sentence-similarity", "text-classification",
                                "token-classification"])

    registry_file(TINY_MAIN)
    monkeypatch.setenv("HF_ENDPOINT", push_hub.url)
    reset_plugins(entry_points=False).add(Adapters(), "test-adapters")
    try:
        code, out = run("list", "--hub", "tiny", "--json")
    finally:
        reset_plugins()
    hits = {h["repo_id"]: h for h in json.loads(out)}
    assert code == 0 and set(hits) == {"acme/tiny", "acme/tiny-bert"}  # nothing loads the gguf one
    assert hits["acme/tiny"]["adapter"] == "timm" and hits["acme/tiny"]["in_registry"] == ["tiny.acme"]
    assert hits["acme/tiny-bert"]["adapter"] == "hf-encoder" and hits["acme/tiny-bert"]["in_registry"] == []


@pytest.mark.parametrize(("hooks", "adapter", "libraries"), [
    ("graftzoo_vision.hooks", "timm", ["timm"]),
    ("graftzoo_nlp.hooks", "hf-encoder", ["transformers", "sentence-transformers"]),
    ("graftzoo_speech.hooks", "hf-audio", ["transformers"]),
])
def test_plugins_declare_what_hub_models_their_adapters_load(hooks: str, adapter: str, libraries: list[str]) -> None:
    import importlib

    from graftzoo.plugins import Plugins

    plugins = Plugins(entry_points=False)
    plugins.add(importlib.import_module(hooks), "under-test")
    assert plugins.get("backbones", adapter).meta["hub_libraries"] == libraries


def test_plain_list_imports_no_hub_library() -> None:
    code = ("import sys; from graftzoo.cli import main\n"
            "try: main(['list'])\nexcept SystemExit: pass\n"
            "print(sorted(m for m in ('huggingface_hub', 'torch', 'rich', 'filelock') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"

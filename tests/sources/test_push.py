"""graft push against a small HF-API server on 127.0.0.1; files checked on the server side."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from hub_servers import PushHub, safetensors_bytes

from graftzoo.cli import cli

WEIGHTS = safetensors_bytes(11, 2_048)


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "runs" / "digits-frozen"
    run.mkdir(parents=True)
    (run / "model.safetensors").write_bytes(WEIGHTS)
    (run / "graft.json").write_text(json.dumps({"entry_id": "mobilenetv2_100.tv_in1k", "metrics": {"acc": 0.9}}))
    (run / "README.md").write_text("# digits\n")
    (run / "metrics.jsonl").write_text("{}\n")
    return run


@pytest.fixture
def hub_env(push_hub: PushHub, monkeypatch: pytest.MonkeyPatch) -> PushHub:
    import huggingface_hub.constants

    monkeypatch.setenv("HF_ENDPOINT", push_hub.url)
    monkeypatch.setenv("HF_TOKEN", "hf_loopback_token")
    # The test hub speaks the classic LFS protocol, not Xet.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", True)
    return push_hub


def test_push_uploads_the_run(hub_env: PushHub, run_dir: Path) -> None:
    result = CliRunner().invoke(cli, ["push", str(run_dir), "me/digits", "--private"])
    assert result.exit_code == 0, (result.output, hub_env.unknown)
    repo = hub_env.repos["me/digits"]
    assert repo.private
    assert set(repo.files) == {"model.safetensors", "graft.json", "README.md"}  # not metrics.jsonl
    assert repo.files["model.safetensors"] == WEIGHTS  # went through LFS batch + PUT
    assert json.loads(repo.files["graft.json"])["entry_id"] == "mobilenetv2_100.tv_in1k"
    assert repo.files["README.md"] == b"# digits\n"
    assert result.output.strip().endswith(f"/me/digits/commit/{repo.commits[0]}")
    assert "Bearer hf_loopback_token" in hub_env.tokens


def test_push_twice(hub_env: PushHub, run_dir: Path) -> None:
    for _ in range(2):  # the repo exists the second time: still fine
        result = CliRunner().invoke(cli, ["push", str(run_dir), "me/digits"])
        assert result.exit_code == 0, result.output
    repo = hub_env.repos["me/digits"]
    assert not repo.private and len(repo.commits) == 2
    assert repo.files["README.md"] == b"# digits\n"


def test_push_refuses_a_run_without_its_model_card(hub_env: PushHub, run_dir: Path) -> None:
    (run_dir / "README.md").unlink()
    result = CliRunner().invoke(cli, ["push", str(run_dir), "me/digits"])
    assert result.exit_code == 1 and "not a run directory, README.md missing" in result.output
    assert hub_env.repos == {}


def test_push_refuses_a_folder_that_is_not_a_run(hub_env: PushHub, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["push", str(tmp_path), "me/x"])
    assert result.exit_code == 1
    assert "not a run directory, model.safetensors, graft.json, README.md missing" in result.output
    assert hub_env.repos == {}

"""Any hub model an installed adapter can load, by name: resolved, pinned, verified (issue 14).

The repositories are written by the real libraries (timm's ``save_for_hf``, a
sharded transformers BERT with a fast tokenizer, a wav2vec2 with its feature
extractor, a pickled-only and a remote-code repository; ``hub_models.py``) and
served by olah on 127.0.0.1.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from hub_servers import GIT_ENV, Olah, PushHub, commit_files, make_repo

pytest.importorskip("graftzoo_vision")
pytest.importorskip("graftzoo_nlp")
pytest.importorskip("graftzoo_speech")
pytest.importorskip("timm")
pytest.importorskip("transformers")

import hub_models


class ModelHub:
    def __init__(self, root: Path) -> None:
        self.mirrors = root / "mirrors"
        self.files = hub_models.build_all(root / "saved")
        self.commits = {repo: make_repo(self.mirrors, repo, files)[1] for repo, files in self.files.items()}
        self.server = Olah(self.mirrors, root / "olah")
        self.server.wait("/acme/tiny-timm/resolve/main/config.json")
        self.url = self.server.url
        self.data = root / "data"
        self.data.mkdir()
        self.inputs = {"vision": hub_models.images(self.data / "img"), "text": hub_models.texts(self.data / "t.csv"),
                       "audio": hub_models.tones(self.data / "tones")}

    def mirror(self, repo: str) -> Path:
        return self.mirrors / "models" / repo


@pytest.fixture(scope="module")
def model_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelHub]:
    hub = ModelHub(tmp_path_factory.mktemp("model-hub"))
    yield hub
    hub.server.stop()


@pytest.fixture(autouse=True)
def with_plugins(model_hub: ModelHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The three first-party plugins, one torch thread, HF_ENDPOINT at olah, a private GRAFTZOO_HOME."""
    import torch

    import graftzoo_nlp.hooks
    import graftzoo_speech.hooks
    import graftzoo_vision.hooks
    from graftzoo.plugins import reset_plugins

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    manager = reset_plugins(entry_points=False)
    for module, name in ((graftzoo_vision.hooks, "vision"), (graftzoo_nlp.hooks, "nlp"),
                         (graftzoo_speech.hooks, "speech")):
        manager.add(module, name)
    monkeypatch.setenv("HF_ENDPOINT", model_hub.url)
    monkeypatch.setenv("GRAFTZOO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GRAFTZOO_NO_CATALOGUE", "1")
    yield
    reset_plugins()
    torch.set_num_threads(threads)


def graft(*args: str) -> tuple[int, str]:
    from graftzoo.cli import cli

    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def ok(*args: str) -> str:
    code, out = graft(*args)
    assert code == 0, out
    return out


CASES = [("acme/tiny-timm", "vision", "timm", ["--image-size", "32"]),
         ("acme/tiny-bert", "text", "hf-encoder", []),
         ("acme/tiny-w2v", "audio", "hf-audio", [])]


@pytest.mark.slow
@pytest.mark.parametrize(("repo", "modality", "adapter", "extra"), CASES)
def test_resolved_pinned_listed_tuned_and_used_offline(model_hub: ModelHub, repo: str, modality: str, adapter: str,
                                                       extra: list[str], tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    commit = model_hub.commits[repo]
    info = json.loads(ok("info", f"hf://{repo}", "--json"))
    assert (info["commit"], info["adapter"], info["modality"]) == (commit, adapter, modality)
    assert info["license"] in ("apache-2.0", "mit")
    needed = info["needed"]
    assert "README.md" not in needed and all(not n.endswith(".bin") for n in needed)
    if repo == "acme/tiny-bert":  # the sharded checkpoint: the index and every shard, and the tokenizer
        assert "model.safetensors.index.json" in needed and sum(".safetensors" in n for n in needed) == 5
        assert "tokenizer.json" in needed and info["entry"]["input"]["max_length"] == 64
    if repo == "acme/tiny-timm":  # timm's pretrained_cfg became the entry's input facts
        assert info["entry"]["arch"] == "test_resnet" and info["entry"]["input"]["size"] == [3, 160, 160]
    if repo == "acme/tiny-w2v":
        assert info["entry"]["input"]["sample_rate"] == 16_000

    out = ok("add", f"hf://{repo}", "--id", f"pinned.{modality}")
    registry = tmp_path / "home" / "registry.toml"
    text = registry.read_text()
    assert commit in text and f'id = "pinned.{modality}"' in text
    for name in needed:  # every needed file pinned by its sha256
        data = model_hub.files[repo][name]
        import hashlib

        assert hashlib.sha256(data).hexdigest() in text, name
    listed = {e["id"]: e for e in json.loads(ok("list", "--json"))}
    assert listed[f"pinned.{modality}"]["weights"] == "needs network"
    assert listed[f"pinned.{modality}"]["origin"] == str(registry)
    del out

    data = str(model_hub.inputs[modality])
    run = tmp_path / "run"
    args = ["--epochs", "1", "--batch-size", "4", "--seed", "1", *extra]
    ok("tune", f"pinned.{modality}", data, "--out", str(run), *args)
    assert json.loads(ok("list", "--json"))[0]["weights"] == "cached"
    online = json.loads(ok("evaluate", str(run), data, "--no-shift", "--json"))
    sample = str(next(p for p in sorted(Path(data).rglob("*")) if p.is_file())) if modality != "text" else "good film"
    predicted = json.loads(ok("predict", str(run), sample, "--json"))

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    again = tmp_path / "again"
    ok("tune", f"pinned.{modality}", data, "--out", str(again), *args)
    offline = json.loads(ok("evaluate", str(again), data, "--no-shift", "--json"))
    assert offline["accuracy"] == online["accuracy"] and offline["loss"] == pytest.approx(online["loss"], abs=1e-6)
    assert json.loads(ok("predict", str(run), sample, "--json")) == predicted
    # The unpinned reference works offline too, as it was last resolved (here: by 'graft info').
    ok("tune", f"hf://{repo}", data, "--out", str(tmp_path / "by-ref"), *args)


def test_pickled_only_and_remote_code_are_refused_with_the_reason(model_hub: ModelHub) -> None:
    code, out = graft("info", "hf://acme/pickled-bert")
    assert code == 1 and "only pickled (pytorch_model.bin)" in out and "safetensors" in out
    code, out = graft("add", "hf://acme/custom-bert")
    assert code == 1 and "custom code" in out and "AutoModel" in out
    code, out = graft("tune", "hf://acme/custom-bert", str(model_hub.inputs["text"]))
    assert code == 1 and "refused" in out and "Traceback" not in out


def test_pull_downloads_only_what_the_adapter_needs_verified_and_pinned(model_hub: ModelHub,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    files = model_hub.files["acme/tiny-bert"]
    path = Path(ok("pull", "hf://acme/tiny-bert").strip().splitlines()[-1])
    commit = model_hub.commits["acme/tiny-bert"]
    assert commit in str(path)  # the snapshot of the resolved commit, not of the branch
    got = {p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()}
    assert "model.safetensors.index.json" in got and "tokenizer.json" in got and "config.json" in got
    assert not {n for n in got if n.endswith(".bin") or n == "README.md"}  # nothing the adapter does not need
    assert all((path / n).read_bytes() == files[n] for n in got)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # pulled once: the same reference works offline, same files
    assert Path(ok("pull", "hf://acme/tiny-bert").strip().splitlines()[-1]) == path
    monkeypatch.delenv("HF_HUB_OFFLINE")
    code, out = graft("pull", "hf://acme/pickled-bert")
    assert code == 1 and "only pickled" in out and "Traceback" not in out


def test_rank_takes_hub_references(model_hub: ModelHub) -> None:
    images = str(model_hub.inputs["vision"])
    report = json.loads(ok("rank", images, "--models", "hf://acme/tiny-timm", "--models", "hf://acme/tiny-timm:scratch",
                           "--image-size", "32", "--folds", "2", "--json"))
    rows = {(r["model"], r["pretrained"]): r for r in report["results"]}
    assert set(rows) == {("tiny-timm.acme", True), ("tiny-timm.acme", False)} and report["skipped"] == {}
    assert all(r["error"] is None and r["feature_dim"] > 0 for r in rows.values())
    code, out = graft("rank", images, "--models", "hf://acme/tiny-timm", "--models", "hf://acme/tiny-w2v")
    assert code == 1 and "hf://acme/tiny-w2v is a audio model but the data is vision" in out


def test_hub_search_filters_by_task_and_modality_and_sorts(model_hub: ModelHub,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    def model(repo: str, library: str, tag: str, downloads: int, likes: int) -> dict[str, object]:
        names = [{"rfilename": n} for n in model_hub.files.get(repo, {"model.gguf": b""})]
        return {"id": repo, "library_name": library, "pipeline_tag": tag, "tags": [library, "license:mit"],
                "downloads": downloads, "likes": likes, "siblings": names, "usedStorage": 1_500_000 + downloads}

    search = PushHub(models=[model("acme/tiny-timm", "timm", "image-classification", 5, 30),
                             model("acme/tiny-bert", "transformers", "fill-mask", 50, 10),
                             model("acme/tiny-w2v", "transformers", "audio-classification", 20, 20),
                             model("acme/pickled-bert", "transformers", "fill-mask", 7, 0),
                             model("acme/tiny-gguf", "llama.cpp", "text-generation", 900, 900)])
    monkeypatch.setenv("HF_ENDPOINT", search.url)
    try:
        def hits(*args: str) -> list[tuple[str, str, str]]:
            return [(h["repo_id"], h["adapter"], h["modality"]) for h in json.loads(ok("list", "--hub", "acme",
                                                                                         "--json", *args))]

        assert hits("--sort", "downloads") == [("acme/tiny-bert", "hf-encoder", "text"),
                                               ("acme/tiny-w2v", "hf-audio", "audio"),
                                               ("acme/pickled-bert", "hf-encoder", "text"),
                                               ("acme/tiny-timm", "timm", "vision")]  # nothing loads the gguf
        assert [h[0] for h in hits("--sort", "likes")] == ["acme/tiny-timm", "acme/tiny-w2v", "acme/tiny-bert",
                                                           "acme/pickled-bert"]
        assert [h[0] for h in hits("--sort", "name")] == sorted(h[0] for h in hits())
        assert hits("--modality", "audio") == [("acme/tiny-w2v", "hf-audio", "audio")]
        assert [h[0] for h in hits("--task", "fill-mask", "--sort", "downloads")] == ["acme/tiny-bert",
                                                                                      "acme/pickled-bert"]
        sizes = {h["repo_id"]: h["size"] for h in json.loads(ok("list", "--hub", "acme", "--json"))}
        assert sizes["acme/tiny-bert"] == 1_500_050 and sizes["acme/tiny-timm"] == 1_500_005
        table = ok("list", "--hub", "acme", "--modality", "text")
        assert "hf://acme/tiny-bert" in table and "mit" in table and "no (pickled or remote code)" in table
        assert "1.5 MB" in table  # the hub's stored size, before anything is downloaded
        assert "tiny-w2v" not in table and "tiny-timm" not in table
    finally:
        search.stop()
    # Each row is usable as-is: the listed reference resolves with the adapter the search named.
    monkeypatch.setenv("HF_ENDPOINT", model_hub.url)
    assert json.loads(ok("info", "hf://acme/tiny-w2v", "--json"))["adapter"] == "hf-audio"


@pytest.mark.slow
def test_a_moved_branch_does_not_change_a_pinned_entry_and_a_tampered_file_is_refused(
        model_hub: ModelHub, tmp_path: Path, hf_env: Path) -> None:
    ok("add", "hf://acme/tiny-w2v@main", "--id", "w2v.pinned")
    before = (tmp_path / "home" / "registry.toml").read_text()
    moved = commit_files(model_hub.mirror("acme/tiny-w2v"), {"model.safetensors": model_hub.files["acme/tiny-timm"]
                                                              ["model.safetensors"]}, message="moved")
    from graftzoo.registry import load_registry
    from graftzoo.sources import fetch

    entry = load_registry().get("w2v.pinned")
    assert moved not in entry.source and model_hub.commits["acme/tiny-w2v"] in entry.source
    path = Path(fetch(entry))
    assert (path / "model.safetensors").read_bytes() == model_hub.files["acme/tiny-w2v"]["model.safetensors"]
    assert (tmp_path / "home" / "registry.toml").read_text() == before
    assert json.loads(ok("info", "hf://acme/tiny-w2v", "--json"))["commit"] == moved  # the branch did move

    # Tamper with the cached blob: the next use re-verifies it and refuses it offline.
    blob = (path / "config.json").resolve()
    blob.chmod(0o644)
    blob.write_bytes(blob.read_bytes().replace(b"wav2vec2", b"wav2vec3"))
    import os

    from graftzoo.errors import ChecksumError

    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        with pytest.raises(ChecksumError, match=r"w2v\.pinned.*sha256 mismatch"):
            fetch(entry)
    finally:
        del os.environ["HF_HUB_OFFLINE"]
    subprocess.run(["git", "reset", "-q", "--hard", model_hub.commits["acme/tiny-w2v"]],
                   cwd=model_hub.mirror("acme/tiny-w2v"), env={**os.environ, **GIT_ENV}, check=True)


@pytest.mark.slow
def test_push_then_tune_from_the_pushed_run_then_evaluate_it(model_hub: ModelHub, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    data = str(model_hub.inputs["text"])
    run = tmp_path / "run"
    # --no-refit: these few texts are few-shot data, which is refitted on train+validation by default; this test
    # is about the pushed weights, so they stay the ones trained and validated here.
    ok("tune", "hf://acme/tiny-bert", data, "--out", str(run), "--epochs", "2", "--batch-size", "4",
       "--policy", "full", "--lr", "0.01", "--no-refit")
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", True)  # the push server speaks LFS
    pusher = PushHub()
    try:
        monkeypatch.setenv("HF_ENDPOINT", pusher.url)
        ok("push", str(run), "me/my-run")
        pushed = dict(pusher.repos["me/my-run"].files)
    finally:
        pusher.stop()
    # The push server keeps what it received; the same bytes become a repository olah serves.
    assert {"graft.json", "model.safetensors", "README.md", "extra/tokenizer.json"} <= set(pushed)
    make_repo(model_hub.mirrors, "me/my-run", pushed)
    monkeypatch.setenv("HF_ENDPOINT", model_hub.url)
    here = json.loads(ok("evaluate", str(run), data, "--no-shift", "--json"))
    there = json.loads(ok("evaluate", "hf://me/my-run", data, "--no-shift", "--json"))
    assert there["accuracy"] == here["accuracy"] and there["loss"] == pytest.approx(here["loss"], abs=1e-6)
    # What evaluate writes about a pushed run goes under GRAFTZOO_HOME, never into the hub cache's snapshot.
    assert Path(there["predictions_file"]).is_relative_to(tmp_path / "home" / "hub-runs" / "me--my-run")
    assert json.loads(ok("predict", "hf://me/my-run", "good film", "--json")) == \
        json.loads(ok("predict", str(run), "good film", "--json"))

    # Tune from the pushed run with its head: before any step the model is the pushed one.
    from graftzoo.cli._output import run_location
    from graftzoo.train.build import start_from_run
    from graftzoo.train.run import load_run

    start = run_location("hf://me/my-run")
    fresh = load_run(run)
    import torch

    from graftzoo.train.build import build_model, run_extra_files

    model = build_model(fresh.entry, fresh.config, 2, "classification", False,
                        extra_options=run_extra_files(start))
    start_from_run(model, start, fresh.classes, with_head=True)
    for (name, a), b in zip(model.state_dict().items(), fresh.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    second = tmp_path / "second"
    ok("tune", "hf://me/my-run", data, "--out", str(second), "--epochs", "1", "--batch-size", "4", "--init-head",
       "--lr", "1e-6")
    info = json.loads((second / "graft.json").read_text())
    assert info["config"]["model"] == "hf://me/my-run" and info["config"]["init_head"] is True
    after = json.loads(ok("evaluate", str(second), data, "--no-shift", "--json"))
    assert after["accuracy"] == here["accuracy"]  # a tiny step from the pushed model, not from the base model
    other = tmp_path / "other.csv"
    other.write_text(Path(data).read_text().replace(",pos", ",yes").replace(",neg", ",no"))
    code, out = graft("tune", "hf://me/my-run", str(other), "--out", str(tmp_path / "x"), "--init-head")
    assert code == 1 and "--init-head" in out and "labels" in out and not (tmp_path / "x").exists()

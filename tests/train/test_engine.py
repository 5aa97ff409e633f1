"""Engine behaviour: resume, feature cache, options, and bad input that must fail cleanly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from graftzoo.data import LabelledData
from graftzoo.errors import DataError, GraftError, OptionError, TrainingError
from graftzoo.train import optim as loop
from graftzoo.train.engine import resume, train
from graftzoo.train.run import load_run
from tests.train import tiny


@pytest.mark.slow
def test_resume_after_kill_matches_an_uninterrupted_run(config: Any, tmp_path: Path) -> None:
    cfg = config(policy="gradual", unfreeze_every=1, epochs=4)
    whole = train(cfg, tmp_path / "whole", progress=False)

    def kill(epoch: int, row: dict[str, Any]) -> None:
        if epoch == 2:
            raise KeyboardInterrupt

    out = tmp_path / "killed"
    with pytest.raises(TrainingError, match="--resume"):
        train(cfg, out, progress=False, on_epoch_end=kill)
    info = json.loads((out / "graft.json").read_text())
    assert info["status"] == "interrupted" and len(info["epochs"]) == 2
    assert not (out / "model.safetensors").exists()
    with pytest.raises(TrainingError, match="already exists"):
        train(cfg, out, progress=False)  # a partial run is not silently replaced
    with pytest.raises(TrainingError, match=r"is a run of tinycnn\.test"):
        resume(out, model="mobilenetv2_100.tv_in1k")
    resumed = resume(out, progress=False)
    assert [r["epoch"] for r in resumed["epochs"]] == [1, 2, 3, 4]
    for key in ("accuracy", "loss", "macro_f1"):
        assert resumed["final"][key] == pytest.approx(whole["final"][key], abs=1e-5)
    assert resumed["policy"]["state"] == whole["policy"]["state"] == {"unfrozen": 3}
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3, 4]
    with pytest.raises(TrainingError, match="already complete"):
        resume(out, progress=False)


def test_frozen_features_are_cached_across_runs(config: Any, tmp_path: Path, graftzoo_home: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    first = train(config(policy="frozen"), tmp_path / "a", progress=False)
    cached = list((graftzoo_home / "features").glob("*.safetensors"))
    assert len(cached) == 1

    def no_forward(self: Any, batch: Any) -> torch.Tensor:
        raise AssertionError("backbone ran although its features are cached")

    with monkeypatch.context() as patch:
        patch.setattr(tiny.TinyCNN, "forward", no_forward)
        second = train(config(policy="frozen"), tmp_path / "b", progress=False)
    assert second["final"]["accuracy"] == pytest.approx(first["final"]["accuracy"])
    train(config(policy="frozen", image_size=12), tmp_path / "c", progress=False)  # new preprocessing, new key
    assert len(list((graftzoo_home / "features").glob("*.safetensors"))) == 2


def test_unfreeze_out_of_range_writes_nothing(config: Any, tmp_path: Path) -> None:
    with pytest.raises(OptionError, match=r"--unfreeze 4 is out of range: this backbone has 3 groups"):
        train(config(policy="top-k", unfreeze=4), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_existing_run_dir_is_never_overwritten(config: Any, tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(TrainingError, match="--overwrite"):
        train(config(epochs=1), out, progress=False)
    assert (out / "keep.txt").read_text() == "mine"
    train(config(epochs=1), out, overwrite=True, progress=False)
    assert not (out / "keep.txt").exists() and (out / "model.safetensors").exists()


@pytest.mark.parametrize(("labels", "message"), [([], "no labelled samples"), (["3"] * 6, "only one class")])
def test_empty_or_single_class_data_is_an_error(config: Any, tmp_path: Path, labels: list[str],
                                                message: str) -> None:
    samples = tiny.digits().samples[: len(labels)]
    data = LabelledData(samples, labels, name="bad")
    with pytest.raises(DataError, match=message):
        train(config(), tmp_path / "run", data=data, progress=False)
    assert not (tmp_path / "run").exists()


def test_evaluate_rejects_labels_unseen_in_training(config: Any, tmp_path: Path) -> None:
    train(config(epochs=1, policy="frozen"), tmp_path / "run", progress=False)
    run = load_run(tmp_path / "run")
    seven = tiny.digits([7], per_class=3)
    with pytest.raises(DataError, match="labels never seen in training: 7"):
        run.evaluate(seven.samples, seven.labels)
    probs = run.predict(seven.samples)
    assert probs.shape == (3, 5) and torch.allclose(probs.sum(1), torch.ones(3))


def test_split_limit_and_early_stopping(config: Any, tmp_path: Path) -> None:
    # lr 0: the validation loss never improves after epoch 1, so patience 1 stops after epoch 2.
    info = train(config(policy="full", lr=0.0, epochs=6, early_stopping=1, limit_per_class=3), tmp_path / "run",
                 progress=False)
    assert len(info["epochs"]) == 2 and info["final"]["best_epoch"] == 1
    assert info["data"]["n_train"] == 15 and info["data"]["n_val"] == 25  # 5 classes: 3 train, 5 val each
    assert info["final"]["confusion"] and sum(map(sum, info["final"]["confusion"])) == 25
    for name in ("model.safetensors", "graft.json", "README.md", "metrics.jsonl", "curves.png", "confusion.png"):
        assert (tmp_path / "run" / name).is_file(), name
    card = (tmp_path / "run" / "README.md").read_text()
    # base_model names a hub repository only; the tiny model comes from a file:// source
    assert card.startswith("---\nlibrary_name: graftzoo\n") and "base_model" not in card
    assert {"torch", "accelerate", "graftzoo"} <= set(info["versions"])


def test_layerwise_lr_decay_groups(config: Any) -> None:
    from graftzoo.train.build import build_model, make_policy, resolve_entry

    cfg = config(policy="full")
    model = build_model(resolve_entry(cfg.model), cfg, 5, "classification", pretrained=False)
    make_policy(cfg.policy, cfg).apply(model)
    groups = {g["name"]: g["lr"] for g in loop.param_groups(model, 0.1, 0.5, 0.01)}
    assert groups["head"] == pytest.approx(0.1)
    assert groups["backbone.stage2"] == pytest.approx(0.1)
    assert groups["backbone.stage1"] == pytest.approx(0.05)
    assert groups["backbone.stem"] == pytest.approx(0.025)
    n_params = sum(len(g["params"]) for g in loop.param_groups(model, 0.1, 0.5, 0.01))
    assert n_params == len(list(model.parameters()))


@pytest.mark.slow
def test_l2sp_pulls_toward_the_pretrained_weights(config: Any, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    start = load_file(str(Path(load_run_entry_source(config))))

    def distance(run: Path) -> float:
        end = load_file(str(run / "model.safetensors"))
        return sum(float(((end[f"backbone.{k}"] - v) ** 2).sum()) for k, v in start.items()
                   if v.is_floating_point() and "running" not in k)

    train(config(policy="full", epochs=2), tmp_path / "plain", progress=False)
    train(config(policy="full", epochs=2, l2sp=50.0), tmp_path / "l2sp", progress=False)
    assert distance(tmp_path / "l2sp") < 0.5 * distance(tmp_path / "plain")


def load_run_entry_source(config: Any) -> str:
    from graftzoo.train.build import resolve_entry

    return resolve_entry(config().model).source[len("file://"):]


def test_unknown_model_policy_and_head_list_the_valid_names(config: Any, tmp_path: Path) -> None:
    with pytest.raises(GraftError, match=r"valid models: .*tinycnn\.test"):
        train(config(model="tinycnn.nope"), tmp_path / "a", progress=False)
    with pytest.raises(GraftError, match="unknown freeze policy 'sideways'; valid: bitfit, frozen, full"):
        train(config(policy="sideways"), tmp_path / "b", progress=False)
    with pytest.raises(GraftError, match="unknown head 'wide'; valid: linear, mlp, prototype, token"):
        train(config(head="wide"), tmp_path / "c", progress=False)
    assert not any((tmp_path / n).exists() for n in "abc")


def test_feature_cache_key_follows_the_source_revision() -> None:
    """An entry moved to another hub commit must not reuse the old commit's cached features."""
    from graftzoo.registry import entry_from_dict
    from graftzoo.train.build import weights_identity

    base = {"id": "tiny_w2v.acme", "modality": "audio", "backbone": "hf-audio", "license": "MIT"}
    old = entry_from_dict({**base, "source": "hf://acme/tiny-w2v@1111111"}, "r.toml")
    new = entry_from_dict({**base, "source": "hf://acme/tiny-w2v@2222222"}, "r.toml")
    assert weights_identity(old, True) != weights_identity(new, True)
    assert weights_identity(old, True) == weights_identity(old, True)
    assert weights_identity(old, False) is None

"""How training batches are drawn and scored: --sampler balanced, --mixup/--cutmix options and refusals, soft loss."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner

from graftzoo.data import LabelledData
from graftzoo.errors import OptionError, TrainingError
from graftzoo.train import balance, mixing
from graftzoo.train.engine import resume, train
from graftzoo.train.run import load_run
from tests.train import tiny, tiny_tokens


def test_soft_target_loss_is_soft_cross_entropy_by_hand() -> None:
    torch.manual_seed(0)
    logits = torch.randn(6, 4)
    soft = torch.softmax(torch.randn(6, 4), -1)
    log_p = torch.log_softmax(logits, -1)
    loss = mixing.cross_entropy(None, 0.1)  # smoothing is already inside soft targets: not applied twice
    assert loss(logits, soft) == pytest.approx(float(-(soft * log_p).sum(-1).mean()), abs=1e-6)
    weight = torch.tensor([1.0, 2.0, 0.5, 1.0])
    weighted = mixing.cross_entropy(weight, 0.0)(logits, soft)
    assert weighted == pytest.approx(float(-(weight * soft * log_p).sum(-1).mean()), abs=1e-6)
    hard = torch.tensor([0, 1, 2, 3, 0, 1])  # class ids: the plain loss, with --label-smoothing
    by_hand = -(0.9 * log_p[torch.arange(6), hard] + 0.1 * log_p.mean(-1)).mean()
    assert loss(logits, hard) == pytest.approx(float(by_hand), abs=1e-6)
    assert torch.equal(mixing.hard_labels(soft), soft.argmax(-1)) and mixing.hard_labels(hard) is hard


def test_balanced_sampler_draws_four_and_forty_equally_and_reproducibly() -> None:
    targets = [0] * 40 + [1] * 4
    sampler = balance.BalancedSampler(targets, seed=3)
    seen_minority: set[int] = set()
    majority_subsets = []
    for epoch in range(3):
        sampler.use_epoch(epoch)
        drawn = list(sampler)
        assert len(drawn) == len(sampler) == 44
        assert Counter(targets[i] for i in drawn) == {0: 22, 1: 22}
        seen_minority |= {i for i in drawn if targets[i] == 1}
        majority_subsets.append(frozenset(i for i in drawn if targets[i] == 0))
        assert list(sampler) == drawn  # (seed, epoch) decide the draw: a resumed epoch sees the same batches
    assert seen_minority == {40, 41, 42, 43} and len(set(majority_subsets)) == 3
    three = balance.BalancedSampler([0] * 30 + [1] * 5 + [2] * 3, seed=0)
    counts = Counter(([0] * 30 + [1] * 5 + [2] * 3)[i] for i in three)
    assert sum(counts.values()) == 38 and max(counts.values()) - min(counts.values()) <= 1
    assert isinstance(balance.make_sampler("shuffle", targets, 0), balance.EpochShuffle)


def _imbalanced(minority: int = 8, majority: int = 3) -> tuple[LabelledData, LabelledData]:
    """40 training digits of ``majority`` and 4 of ``minority``; held-out: 26 more of the minority digit."""
    a, b = tiny.digits([majority], per_class=40), tiny.digits([minority], per_class=30)
    data = LabelledData(a.samples + b.samples[:4], a.labels + b.labels[:4], name="four-vs-forty", modality="vision",
                        fingerprint_parts=[str(i) for i in range(44)])
    return data, LabelledData(b.samples[4:], b.labels[4:], name="held-out")


@pytest.mark.slow
def test_balanced_sampler_finds_the_rare_class_that_shuffling_misses(config: Any, tmp_path: Path) -> None:
    data, held_out = _imbalanced()

    def minority_recall(name: str, **options: Any) -> float:
        lines: list[str] = []
        info = train(config(policy="full", data="four-vs-forty", val_split=0, **options), tmp_path / name,
                     data=data, progress=False, echo=lines.append)
        assert info["config"]["sampler"] == options["sampler"]
        warning = next(line for line in lines if line.startswith("warning: imbalanced classes"))
        assert "8=4" in warning and "3=40" in warning and "--sampler balanced" in warning
        predicted = load_run(tmp_path / name).predict_labels(held_out.samples)
        return sum(p == "8" for p in predicted) / len(predicted)

    shuffled = minority_recall("shuffle", sampler="shuffle", class_weights="none")
    balanced = minority_recall("balanced", sampler="balanced")
    assert shuffled < 0.5 < 0.8 < balanced, (shuffled, balanced)


@pytest.mark.slow
def test_balanced_sampler_is_stored_and_resumed_batch_for_batch(config: Any, tmp_path: Path) -> None:
    data, _ = _imbalanced()
    cfg = config(policy="full", data="four-vs-forty", sampler="balanced", epochs=3)
    whole = train(cfg, tmp_path / "whole", data=data, progress=False)

    def kill(epoch: int, row: dict[str, Any]) -> None:
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(TrainingError, match="--resume"):
        train(cfg, tmp_path / "killed", data=data, progress=False, on_epoch_end=kill)
    assert json.loads((tmp_path / "killed" / "graft.json").read_text())["config"]["sampler"] == "balanced"
    resumed = resume(tmp_path / "killed", data=data, progress=False)
    assert [r["train_loss"] for r in resumed["epochs"]] == pytest.approx([r["train_loss"] for r in whole["epochs"]],
                                                                        abs=1e-5)
    assert "sampler balanced" in (tmp_path / "killed" / "README.md").read_text()


def test_balanced_sampler_refused_where_no_batches_are_drawn_by_class(config: Any, tmp_path: Path,
                                                                     tiny_weights_dir: Path) -> None:
    data, _ = _imbalanced()
    with pytest.raises(OptionError, match=r"--sampler balanced draws training batches, but policy 'frozen' fits "
                                          r"this head in one go.*--probe sgd"):
        train(config(policy="frozen", data="four-vs-forty", sampler="balanced"), tmp_path / "f", data=data,
              progress=False)
    assert not (tmp_path / "f").exists()
    undo = tiny_tokens.install(tiny_weights_dir / "tinycnn.safetensors")
    try:
        with pytest.raises(OptionError, match="--sampler balanced does not apply to token-classification"):
            train(config(model=tiny_tokens.MODEL_ID, data="tinyner", policy="full", sampler="balanced",
                         pretrained=False), tmp_path / "t", progress=False)
    finally:
        undo()


def test_frozen_balanced_sampler_with_the_sgd_probe_draws_equally(config: Any, tmp_path: Path) -> None:
    data, _ = _imbalanced()
    lines: list[str] = []
    info = train(config(policy="frozen", data="four-vs-forty", sampler="balanced", probe="sgd", epochs=2),
                 tmp_path / "f", data=data, progress=False, echo=lines.append)
    assert info["config"]["sampler"] == "balanced" and len(info["epochs"]) == 2
    assert any("--sampler balanced draws every class equally" in line for line in lines)


def _tune(*args: str) -> Any:
    from graftzoo.cli import cli

    return CliRunner().invoke(cli, ["tune", *args])


def test_mixing_refused_for_frozen_and_without_a_mixer(tiny_plugin: str, tmp_path: Path) -> None:
    out = tmp_path / "run"
    frozen = _tune(tiny_plugin, "tinydigits", "--mixup", "0.2", "--out", str(out))
    assert frozen.exit_code == 1 and frozen.output.count("Error:") == 1, frozen.output
    assert "Error: --mixup 0.2 does not apply to policy 'frozen'" in frozen.output
    assert "--augment-views" in frozen.output and not out.exists()
    knob = _tune(tiny_plugin, "tinydigits", "--policy", "full", "--mix-prob", "0.5", "--out", str(out))
    assert "Error: --mix-prob 0.5 applies only with --mixup or --cutmix" in knob.output and not out.exists()
    no_mixer = _tune(tiny_plugin, "tinydigits", "--policy", "full", "--cutmix", "1", "--out", str(out))
    assert no_mixer.exit_code == 1, no_mixer.output
    assert ("Error: --cutmix 1.0: tinycnn.test is a vision model whose adapter 'tinycnn-test' has no batch mixer"
            in no_mixer.output) and not out.exists()


def test_mixing_refused_for_text(config: Any, tmp_path: Path, tiny_weights_dir: Path) -> None:
    undo = tiny_tokens.install(tiny_weights_dir / "tinycnn.safetensors")
    try:
        sentences = LabelledData([["good", "film"], ["bad", "film"]] * 6, ["pos", "neg"] * 6, name="reviews",
                                 modality="text")
        with pytest.raises(OptionError, match=r"--mixup 0\.2: tinytagger\.test is a text model whose adapter "
                                              r"'tinytagger-test' has no batch mixer"):
            train(config(model=tiny_tokens.MODEL_ID, data="reviews", policy="full", mixup=0.2, pretrained=False),
                  tmp_path / "text", data=sentences, progress=False)
        with pytest.raises(OptionError, match=r"--mixup 0\.2 does not apply to token-classification"):
            train(config(model=tiny_tokens.MODEL_ID, data="tinyner", policy="full", mixup=0.2, pretrained=False),
                  tmp_path / "ner", progress=False)
        assert not (tmp_path / "text").exists() and not (tmp_path / "ner").exists()
    finally:
        undo()


def test_a_last_batch_of_one_joins_the_batch_before_it(config: Any, tmp_path: Path) -> None:
    from graftzoo.train.loaders import EpochShuffle, NoSingleBatches

    def sizes(n: int, batch: int) -> list[int]:
        batches = NoSingleBatches(EpochShuffle(n, seed=0), batch)
        drawn = list(batches)
        assert len(drawn) == len(batches) and sorted(i for b in drawn for i in b) == list(range(n))
        return [len(b) for b in drawn]

    assert sizes(17, 8) == [8, 9] and sizes(18, 8) == [8, 8, 2] and sizes(16, 8) == [8, 8] and sizes(1, 8) == [1]
    # 17 training images at batch size 8 through a BatchNorm network: no batch of one, so no BatchNorm error.
    data = tiny.digits([1, 2], per_class=9)
    data = LabelledData(data.samples[:17], data.labels[:17], name="seventeen", modality="vision",
                        fingerprint_parts=[str(i) for i in range(17)])
    info = train(config(policy="full", data="seventeen", val_split=0, batch_size=8, epochs=1), tmp_path / "run",
                 data=data, progress=False)
    assert info["epochs"][0]["train_loss"] > 0

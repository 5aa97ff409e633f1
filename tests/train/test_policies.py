"""Each freeze policy trains exactly what it says, and frozen BatchNorm statistics never move."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from graftzoo.train.engine import train

GROUPS = ("stem", "stage1", "stage2")


def changed(run: Path, weights_dir: Path) -> dict[str, bool]:
    """backbone tensor name -> whether training changed it (vs. the pretrained file)."""
    start = load_file(str(weights_dir / "tinycnn.safetensors"))
    end = load_file(str(run / "model.safetensors"))
    out = {}
    for name, before in start.items():
        if name.endswith("num_batches_tracked"):
            continue
        key = f"backbone.{name}"
        if key not in end:  # peft renames wrapped layers: base weights live under base_layer
            prefix, _, leaf = key.rpartition(".")
            key = f"{prefix}.base_layer.{leaf}"
        out[name] = not torch.equal(before, end[key])
    return out


def head_changed(run: Path) -> bool:
    end = load_file(str(run / "model.safetensors"))
    return any(k.startswith("head.") for k in end) and end["head.0.weight"].abs().sum() > 0


def run_policy(config: Any, tmp_path: Path, **options: Any) -> tuple[dict[str, bool], dict[str, Any]]:
    out = tmp_path / "run"
    info = train(config(**options), out, progress=False)
    return changed(out, Path(info["entry"]["source"][len("file://"):]).parent), info


def in_group(name: str, group: str) -> bool:
    return name.startswith(group + ".")


def stats(name: str) -> bool:
    return "running_" in name


def test_frozen_changes_nothing_in_the_backbone(config: Any, tmp_path: Path) -> None:
    diff, info = run_policy(config, tmp_path, policy="frozen", lr=0.05, epochs=6)
    assert not any(diff.values()), [n for n, c in diff.items() if c]
    assert head_changed(tmp_path / "run")
    assert info["final"]["accuracy"] > 0.4  # 5 classes: chance is 0.2


def test_full_changes_every_weight_and_bn_statistic(config: Any, tmp_path: Path) -> None:
    diff, _ = run_policy(config, tmp_path, policy="full")
    assert all(diff.values()), [n for n, c in diff.items() if not c]


@pytest.mark.parametrize("k", [1, 2])
def test_top_k_trains_only_the_last_k_groups(config: Any, tmp_path: Path, k: int) -> None:
    diff, _ = run_policy(config, tmp_path, policy="top-k", unfreeze=k)
    trained = GROUPS[-k:]
    for name, was_changed in diff.items():
        expected = any(in_group(name, g) for g in trained)
        assert was_changed == expected, (name, was_changed)


def test_gradual_unfreezes_one_group_per_epoch(config: Any, tmp_path: Path) -> None:
    # epochs 0, 1, 2 train: head; + stage2; + stage1. The stem never trains.
    diff, info = run_policy(config, tmp_path, policy="gradual", unfreeze_every=1)
    for name, was_changed in diff.items():
        assert was_changed == (not in_group(name, "stem")), (name, was_changed)
    trainable = [row["trainable_params"] for row in info["epochs"]]
    assert trainable[0] < trainable[1] < trainable[2]
    assert info["policy"]["state"] == {"unfrozen": 2}


def test_bitfit_trains_only_biases_and_keeps_bn_statistics(config: Any, tmp_path: Path) -> None:
    diff, _ = run_policy(config, tmp_path, policy="bitfit")
    for name, was_changed in diff.items():
        assert was_changed == name.endswith("bias"), (name, was_changed)


@pytest.mark.slow
def test_lora_trains_adapters_and_head_only_and_reloads(config: Any, tmp_path: Path) -> None:
    from graftzoo.train.run import load_run
    from tests.train.tiny import digits

    diff, info = run_policy(config, tmp_path, policy="lora", lora_rank=2)
    assert not any(diff.values()), [n for n, c in diff.items() if c]
    saved = load_file(str(tmp_path / "run" / "model.safetensors"))
    lora_b = [k for k in saved if "lora_B" in k]
    assert lora_b and all(saved[k].abs().sum() > 0 for k in lora_b)  # B starts at zero: nonzero means trained
    run = load_run(tmp_path / "run")
    data = digits()
    metrics = run.evaluate(data.samples, data.labels)
    assert metrics["n"] == 120 and metrics["accuracy"] > 0.3
    val = info["final"]
    assert val["n"] == 25


def test_bitfit_counts_recurrent_biases() -> None:
    """nn.LSTM names its biases bias_ih_l0/bias_hh_l0: BitFit must train them too."""
    from torch import nn

    from graftzoo.train.policies import is_bias

    names = [n for n, _ in nn.LSTM(4, 8).named_parameters()] + [n for n, _ in nn.Linear(2, 2).named_parameters()]
    assert [n for n in names if is_bias(n)] == ["bias_ih_l0", "bias_hh_l0", "bias"]
    assert not is_bias("biasless.weight") and not is_bias("unbiased")

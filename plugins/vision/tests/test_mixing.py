"""--mixup / --cutmix through timm's Mixup: soft targets, the loss on them, a tuned run that stores and resumes them."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from graftzoo.data import LabelledData
from graftzoo.errors import TrainingError
from graftzoo.train import mixing
from graftzoo_vision.backbone import create
from graftzoo_vision.data import digits_arrays


def _mixer(make_entry: Any, **settings: float) -> Any:
    backbone = create(make_entry("mobilenetv2_100"), None, {"image_size": 16})
    return backbone.batch_mixer({"mixup": 0.0, "cutmix": 0.0, "prob": 1.0, "switch_prob": 0.5,
                                 "label_smoothing": 0.0, **settings}, 3)


def test_mixup_blends_images_and_labels_by_one_weight_and_the_loss_is_soft_cross_entropy(make_entry: Any) -> None:
    from timm.loss import SoftTargetCrossEntropy

    mixer = _mixer(make_entry, mixup=0.2)
    x, y = torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 1])
    np_state = np.random.get_state()[1].copy()
    torch.manual_seed(1)
    mixed, soft = mixer(x, y)
    assert np.array_equal(np.random.get_state()[1], np_state)  # numpy's generator is left alone
    assert soft.shape == (4, 3) and soft.is_floating_point() and torch.allclose(soft.sum(-1), torch.ones(4))
    lam = float(soft[0, 0])  # sample 0 (label 0) is blended with sample 3 (label 1)
    assert 0.0 < lam < 1.0 and soft[0, 1] == pytest.approx(1 - lam)
    assert torch.allclose(mixed[0], lam * x[0] + (1 - lam) * x[3], atol=1e-5)
    assert torch.allclose(mixed[1], lam * x[1] + (1 - lam) * x[2], atol=1e-5)
    torch.manual_seed(1)
    again, _ = mixer(x, y)
    assert torch.equal(again, mixed)  # the draw follows torch's seed (the engine's per-epoch seed)
    logits = torch.randn(4, 3)
    by_hand = -(soft * torch.log_softmax(logits, -1)).sum(-1).mean()
    ours = mixing.cross_entropy(None, 0.0)(logits, soft)
    assert float(ours) == pytest.approx(float(by_hand), abs=1e-6)
    assert float(ours) == pytest.approx(float(SoftTargetCrossEntropy()(logits, soft)), abs=1e-6)


def test_cutmix_pastes_a_box_and_weights_labels_by_its_area_with_smoothing(make_entry: Any) -> None:
    mixer = _mixer(make_entry, cutmix=1.0, label_smoothing=0.3)
    x, y = torch.randn(5, 3, 16, 16), torch.tensor([0, 1, 2, 1, 2])  # odd: the last sample is left as it is
    torch.manual_seed(2)
    mixed, soft = mixer(x, y)
    pasted = (mixed[0] != x[0]).any(0)  # sample 0 gets a box from sample 3 (the even part, reversed)
    assert torch.equal(mixed[0][:, pasted], x[3][:, pasted]) and 0 < int(pasted.sum()) < 256
    lam = 1 - float(pasted.float().mean())
    off = 0.3 / 3
    assert soft[0, 0] == pytest.approx(lam * (1 - 0.3 + off) + (1 - lam) * off, abs=1e-5)
    assert torch.equal(mixed[4], x[4]) and torch.allclose(soft[4], torch.tensor([off, off, 1 - 0.3 + off]))


def _digits(per_class: int = 8) -> LabelledData:
    images, targets = digits_arrays()
    picks = [i for d in range(3) for i in np.flatnonzero(targets == d)[:per_class]]
    return LabelledData([images[i] for i in picks], [str(targets[i]) for i in picks], name="digits3",
                        modality="vision", fingerprint_parts=[str(i) for i in picks])


@pytest.mark.slow
def test_tune_with_mixup_and_cutmix_is_stored_and_resumes_exactly(tmp_path: Path) -> None:
    from graftzoo.train.config import TrainConfig
    from graftzoo.train.engine import resume, train

    data = _digits()
    cfg = TrainConfig(model="mobilenetv2_100.tv_in1k", data="digits3", policy="full", pretrained=False,
                      image_size=32, epochs=2, batch_size=6, lr=1e-3, mixup=0.2, cutmix=1.0,
                      label_smoothing=0.1)
    whole = train(cfg, tmp_path / "whole", data=data, progress=False)
    plain = train(dataclasses.replace(cfg, mixup=0.0, cutmix=0.0, epochs=1), tmp_path / "plain", data=data,
                  progress=False)
    assert whole["epochs"][0]["train_loss"] != pytest.approx(plain["epochs"][0]["train_loss"], abs=1e-3)

    def kill(epoch: int, row: dict[str, Any]) -> None:
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(TrainingError, match="--resume"):
        train(cfg, tmp_path / "killed", data=data, progress=False, on_epoch_end=kill)
    stored = json.loads((tmp_path / "killed" / "graft.json").read_text())["config"]
    assert (stored["mixup"], stored["cutmix"], stored["mix_prob"], stored["mix_switch_prob"]) == (0.2, 1.0, 1.0, 0.5)
    resumed = resume(tmp_path / "killed", data=data, progress=False)
    assert [r["train_loss"] for r in resumed["epochs"]] == pytest.approx([r["train_loss"] for r in whole["epochs"]],
                                                                        abs=1e-5)
    assert resumed["final"]["loss"] == pytest.approx(whole["final"]["loss"], abs=1e-5)
    card = (tmp_path / "killed" / "README.md").read_text()
    assert "mixing: mixup alpha 0.2 + cutmix alpha 1.0" in card


@pytest.mark.slow
def test_mixing_flags_reach_graft_json_and_the_card(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from graftzoo.cli import cli
    from graftzoo_vision.data import write_imagefolder

    root = write_imagefolder(_digits(5), tmp_path / "digits3")  # 12 training images: batches of 4
    run = tmp_path / "run"
    result = CliRunner().invoke(cli, ["tune", "mobilenetv2_100.tv_in1k", str(root), "--policy", "full",
                                      "--no-pretrained", "--image-size", "32", "--epochs", "1", "--batch-size", "4",
                                      "--mixup", "0.4", "--cutmix", "1", "--mix-prob", "0.8", "--mix-switch-prob",
                                      "0.25",
                                      "--out", str(run)])
    assert result.exit_code == 0, result.output
    cfg = json.loads((run / "graft.json").read_text())["config"]
    assert (cfg["mixup"], cfg["cutmix"], cfg["mix_prob"], cfg["mix_switch_prob"]) == (0.4, 1.0, 0.8, 0.25)
    assert "cutmix chosen for 25% of them" in (run / "README.md").read_text()

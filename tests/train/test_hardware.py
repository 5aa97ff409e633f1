"""Hardware flags: --device, --precision (refused where the hardware lacks it), --workers, --grad-accum."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from graftzoo.errors import OptionError
from graftzoo.train import hardware
from graftzoo.train.engine import train
from graftzoo.train.features import extract_features
from tests.train import tiny


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusals of a machine without a GPU")
def test_what_the_hardware_lacks_is_refused_before_anything_is_written(config: Any, tmp_path: Path) -> None:
    with pytest.raises(OptionError, match="fp16 needs a CUDA GPU"):
        train(config(precision="fp16"), tmp_path / "a", progress=False)
    with pytest.raises(OptionError, match="--device cuda: no CUDA GPU"):
        train(config(device="cuda"), tmp_path / "b", progress=False)
    with pytest.raises(OptionError, match="--grad-accum 0"):
        train(config(grad_accum=0), tmp_path / "c", progress=False)
    assert not any(tmp_path.iterdir())


def test_bf16_on_cpu_follows_the_cpu_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hardware, "cpu_has_bf16", lambda: False)
    with pytest.raises(OptionError, match="no bf16 instructions"):
        hardware.resolve_precision("bf16", "cpu")
    monkeypatch.setattr(hardware, "cpu_has_bf16", lambda: True)
    assert hardware.resolve_precision("bf16", "cpu") == "bf16"
    assert hardware.resolve_precision(None, "cpu") == "fp32"


def test_grad_accum_equals_the_larger_batch_and_is_stored(config: Any, tmp_path: Path) -> None:
    # 96 training samples: 2 accumulated batches of 8 are exactly one batch of 16 (mean losses, same order)
    big = train(config(policy="frozen", batch_size=16, epochs=2), tmp_path / "big", progress=False)
    accum = train(config(policy="frozen", batch_size=8, grad_accum=2, epochs=2, device="cpu", precision="fp32",
                         workers=0), tmp_path / "accum", progress=False)
    assert accum["final"]["loss"] == pytest.approx(big["final"]["loss"], abs=1e-5)
    assert accum["final"]["accuracy"] == big["final"]["accuracy"]
    stored = json.loads((tmp_path / "accum" / "graft.json").read_text())
    assert {k: stored["config"][k] for k in ("device", "precision", "workers", "grad_accum")} == {
        "device": "cpu", "precision": "fp32", "workers": 0, "grad_accum": 2}
    assert stored["hardware"] == {"device": "cpu", "precision": "no", "processes": 1, "grad_accum": 2}


def test_decoding_workers_give_the_same_features(tiny_plugin: str) -> None:
    from graftzoo.registry import load_registry
    from graftzoo.train.build import build_backbone

    backbone = build_backbone(load_registry().get(tiny_plugin), pretrained=True, options={})
    data = tiny.digits(per_class=10)
    inline = extract_features(backbone, data, batch_size=8, progress=False, workers=0)
    workers = extract_features(backbone, data, batch_size=8, progress=False, workers=2)
    assert inline.shape == (50, 16) and not inline.requires_grad
    assert torch.equal(inline, workers)
    assert torch.equal(inline, extract_features(backbone, data, batch_size=8, progress=False))  # workers chosen


def test_decoding_goes_where_it_costs_least(monkeypatch: pytest.MonkeyPatch) -> None:
    from graftzoo.train import extract

    plan = extract.decoding_plan
    monkeypatch.setattr(extract, "default_workers", lambda: 3)
    assert plan(6, 0.008, None) == ("thread", 1)  # 48 ms of decoding left: not worth starting processes
    assert plan(28, 0.02, None) == ("processes", 3)  # 0.56 s left, three spare CPUs
    assert plan(0, 0.02, None) == ("here", 0)
    assert plan(6, 0.008, 2) == ("processes", 2) and plan(28, 0.02, 0) == ("here", 0)  # --workers wins
    monkeypatch.setattr(extract, "default_workers", lambda: 1)
    assert plan(28, 0.02, None) == ("thread", 1)  # one spare CPU: a thread, no process and no shared memory
    monkeypatch.setattr(extract, "default_workers", lambda: 0)
    assert plan(28, 0.02, None) == ("here", 0)

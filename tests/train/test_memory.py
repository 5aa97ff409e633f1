"""A frozen run holds no autograd state and no optimiser state for the backbone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from graftzoo.train.engine import Trainer
from graftzoo.train.plan import plan_run


def test_a_frozen_run_keeps_nothing_for_the_backbone(config: Any, tmp_path: Path) -> None:
    trainer = Trainer(plan_run(config(policy="frozen", epochs=1)), tmp_path / "run", progress=False)
    trainer.set_up()
    trainer.build()
    trainer.prepare_features()
    trainer.make_optimiser()
    backbone, head = trainer.model.backbone, trainer.model.head
    assert not any(p.requires_grad for p in backbone.parameters())
    optimised = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert optimised == {id(p) for p in head.parameters()}
    # features: plain tensors without a graph (not inference tensors: the head trains on them)
    val = trainer.val_feats.tensor()
    batch, _ = next(iter(trainer.loader))
    for feats in (val, batch):
        assert feats.grad_fn is None and not feats.requires_grad
        assert not feats.is_inference()
    trainer.write_start()
    trainer.checkpoint(trainer.fit_epoch(0))
    assert all(p.grad is None for p in backbone.parameters())
    assert set(trainer.optimizer.state_dict()["state"]) == {0, 1}  # the head's weight and bias only


# -- no second copy of weights or features (issue 19) -----------------------------------------------
MB = 1 << 20


def _rss_anon() -> int:
    """Anonymous resident memory of this process (bytes): the heap, not memory-mapped files."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no RssAnon in /proc/self/status")


def _weights(n_mb: int) -> dict[str, Any]:
    import torch

    g = torch.Generator().manual_seed(0)
    return {f"layer{i}.weight": torch.randn(n_mb * MB // 4 // 8, generator=g) for i in range(8)}


def test_converted_weights_are_written_and_read_without_a_second_copy(tmp_path: Path, monkeypatch: Any) -> None:
    import gc
    import tracemalloc

    import pytest
    import torch

    from graftzoo.sources import _safeload

    if not Path("/proc/self/status").exists():
        pytest.skip("needs /proc (Linux) to read the process's anonymous memory")
    monkeypatch.setenv("GRAFTZOO_HOME", str(tmp_path / "home"))
    state, size = _weights(32), 32 * MB
    source = tmp_path / "w.pth"
    torch.save(state, source)
    target = tmp_path / "converted.safetensors"
    tracemalloc.start()
    _safeload._save_converted(state, target, source)  # a bytes copy of the weights would show here
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < size // 8, f"writing the conversion held {peak / MB:.1f} MB of Python memory"
    gc.collect()
    before = _rss_anon()
    loaded = _safeload._read_converted(target, source)
    grew = _rss_anon() - before
    assert loaded is not None and all(torch.equal(loaded[k], v) for k, v in state.items())
    # memory-mapped: the tensors are the file's pages, not a heap copy (a bytes read + load was 2x the size)
    assert grew < size // 2, f"reading the conversion grew the heap by {grew / MB:.1f} MB"


def test_cached_features_are_written_and_read_without_a_second_copy(tmp_path: Path) -> None:
    import gc
    import tracemalloc

    import pytest
    import torch

    from graftzoo.train import features

    if not Path("/proc/self/status").exists():
        pytest.skip("needs /proc (Linux) to read the process's anonymous memory")
    feats = torch.randn(8192, 1024)  # 32 MB
    size = feats.numel() * 4
    path = tmp_path / "f.safetensors"
    tracemalloc.start()
    features._save(path, feats)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < size // 8, f"writing the features held {peak / MB:.1f} MB of Python memory"
    gc.collect()
    before = _rss_anon()
    back = features._read_cached(path, feats.shape[0])
    grew = _rss_anon() - before
    assert back is not None and torch.equal(back, feats)
    assert grew < size // 2, f"reading the features grew the heap by {grew / MB:.1f} MB"

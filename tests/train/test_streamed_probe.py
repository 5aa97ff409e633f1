"""Issue 19's flat memory for a frozen fit: features read from the cache chunk by chunk, the probe fitted on them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from graftzoo.storage.tensorfile import tensor_layout, write_safetensors
from graftzoo.train import probe, rows
from graftzoo.train.rows import ConcatRows, FileRows, RowsDataset, TensorRows


def _blobs(n: int, d: int, classes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    return torch.randn(classes, d, generator=g)[y] * 0.6 + torch.randn(n, d, generator=g) + 3, y


def _file_rows(tmp_path: Path, x: torch.Tensor) -> FileRows:
    path = tmp_path / "features.safetensors"
    write_safetensors(path, {"features": x})
    fh = open(path, "rb")  # kept open by the rows, closed with them
    layout = tensor_layout(fh, "features")
    assert layout is not None
    return FileRows(fh, layout)


def test_file_rows_read_a_shuffled_subset_in_chunks_of_a_fixed_size(tmp_path: Path, monkeypatch: Any) -> None:
    x = torch.randn(103, 5)
    monkeypatch.setattr(rows, "CHUNK_BYTES", 8 * 5 * 4)  # 8 rows a chunk
    every = _file_rows(tmp_path, x)
    index = [*torch.randperm(103, generator=torch.Generator().manual_seed(0))[:70].tolist(), 3, 3]  # a repeat
    subset = every.take(index)
    seen = torch.zeros(len(index), dtype=torch.long)
    sizes = []
    for pos, chunk in subset.chunks():
        assert torch.equal(chunk, x[torch.tensor(index)[pos]])
        seen[pos] += 1
        sizes.append(len(pos))
    assert seen.eq(1).all() and max(sizes) <= 8 and len(sizes) >= 70 // 8
    assert torch.equal(subset.tensor(), x[index]) and torch.equal(every.tensor(), x)
    assert torch.equal(subset.row(5), x[index[5]])
    both = ConcatRows([subset, TensorRows(x[:4])])
    assert torch.equal(both.tensor(), torch.cat([x[index], x[:4]])) and torch.equal(both.row(len(index)), x[0])
    item, target = RowsDataset(subset, [7] * len(index))[2]
    assert torch.equal(item, x[index[2]]) and int(target) == 7


def test_streamed_probe_equals_the_in_memory_fit(tmp_path: Path, monkeypatch: Any) -> None:
    """Cross-validation (C, held-out scores) and the final weights agree; the chunked path is the one taken."""
    x, y = _blobs(240, 12, 3, seed=4)
    y[::7] = (y[::7] + 1) % 3  # label noise: the held-out loss has a minimum inside the grid
    index = torch.randperm(240, generator=torch.Generator().manual_seed(1))[:200]
    memory = probe.fit_probe(x[index], y[index], 3)
    assert memory.features == "in memory"
    monkeypatch.setattr(probe, "IN_MEMORY_BYTES", 0)
    monkeypatch.setattr(rows, "CHUNK_BYTES", 16 * 12 * 4)  # 16 rows a chunk: 13 per pass
    chunk_rows: list[int] = []
    real = FileRows.chunks

    def counted(self: FileRows) -> Any:
        for pos, chunk in real(self):
            chunk_rows.append(len(pos))
            yield pos, chunk

    monkeypatch.setattr(FileRows, "chunks", counted)
    streamed = probe.fit_probe(_file_rows(tmp_path, x).take(index.tolist()), y[index], 3)
    assert streamed.features.startswith("streamed") and "16 rows" in streamed.features
    assert max(chunk_rows) == 16 and len(chunk_rows) > 100 * 13  # many passes, each of 13 chunks
    assert streamed.c == memory.c and list(streamed.scores) == list(memory.scores)
    for key, score in memory.scores.items():
        assert streamed.scores[key] == pytest.approx(score, abs=1e-4)
    assert torch.allclose(streamed.weight, memory.weight, atol=1e-4)
    assert torch.allclose(streamed.bias, memory.bias, atol=1e-4)


def test_rules_for_c_lowest_loss_one_standard_error_and_accuracy() -> None:
    scores = {c: {"log_loss": v, "log_loss_se": se, "accuracy": acc} for c, v, se, acc in
              [("0.1", 0.90, 0.05, 0.7), ("0.3", 0.585, 0.05, 0.8), ("1", 0.58, 0.04, 0.8), ("3", 0.55, 0.04, 0.78),
               ("10", 0.56, 0.1, 0.75)]}
    assert probe.pick(scores, 3, "one-standard-error") == 1  # 0.585 <= 0.55 + 0.04 < 0.90: C=0.3
    assert probe.pick(scores, 3) == probe.pick(scores, 3, "lowest") == 3  # the default
    tight = {**scores, "3": {"log_loss": 0.55, "log_loss_se": 0.01}}
    assert probe.pick(tight, 3, "one-standard-error") == 3  # nothing else within one SE: the lowest
    assert probe.pick(scores, 3, "accuracy") == 2  # the best accuracy, 0.8, twice: the lower log-loss
    with pytest.raises(ValueError, match="unknown rule"):
        probe.pick(scores, 3, "median")


def _peak_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/self/status")


def test_a_streamed_fit_keeps_peak_memory_far_below_the_features(tmp_path: Path, monkeypatch: Any) -> None:
    """Peak RSS (anonymous and file-backed pages alike) grows by a fraction of the features' size."""
    import gc

    from graftzoo.train import features

    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets the peak RSS (VmHWM) to the current RSS
    except OSError:
        pytest.skip("needs Linux's /proc/self/clear_refs to reset the peak RSS")
    x, y = _blobs(8192, 512, 4, seed=5)  # 16 MB of float32, 32 MB as float64
    path = tmp_path / "f.safetensors"
    features._save(path, x)  # the cache's own writer, with its checksum record
    size = x.numel() * 4
    monkeypatch.setattr(rows, "CHUNK_BYTES", 256 * 1024)
    monkeypatch.setattr(probe, "IN_MEMORY_BYTES", 0)
    del x
    opened = features._open_rows(path, 8192)
    assert opened is not None
    # the first torch optimiser built imports torch._dynamo, sympy and more: a one-off ~150 MB, not the fit's
    probe.fit_probe(opened.take(range(64)), y[:64], 4, c=0.01)
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")
    before = _peak_rss()
    fit = probe.fit_probe(opened.take(range(0, 8192, 2)), y[::2], 4, c=0.01)
    grew = _peak_rss() - before
    assert fit.features.startswith("streamed") and fit.iterations > 0
    assert grew < size // 4, f"a streamed fit on {size / 2**20:.0f} MB of features peaked {grew / 2**20:.1f} MB up"


@pytest.mark.slow
def test_a_frozen_run_streams_its_cached_features_into_the_same_probe(config: Any, tmp_path: Path,
                                                                      monkeypatch: Any) -> None:
    from graftzoo.train.engine import Trainer, train
    from graftzoo.train.plan import plan_run

    plain = train(config(policy="frozen", refit=False), tmp_path / "memory", progress=False)
    monkeypatch.setattr(probe, "IN_MEMORY_BYTES", 0)
    monkeypatch.setattr(rows, "CHUNK_BYTES", 4096)
    trainer = Trainer(plan_run(config(policy="frozen", refit=False)), tmp_path / "streamed", progress=False)
    info = trainer.run()
    assert isinstance(trainer.val_feats, FileRows) and isinstance(trainer.train_feats, FileRows)  # the cache file
    assert info["head_fit"]["features"].startswith("streamed") and plain["head_fit"]["features"].startswith("in mem")
    assert info["head_fit"]["C"] == plain["head_fit"]["C"]
    assert info["final"]["accuracy"] == plain["final"]["accuracy"]
    assert info["final"]["loss"] == pytest.approx(plain["final"]["loss"], abs=1e-3)


@pytest.mark.slow
def test_the_probe_rule_is_a_run_option_recorded_in_graft_json(config: Any, tmp_path: Path) -> None:
    from graftzoo.errors import OptionError
    from graftzoo.train.engine import train
    from graftzoo.train.plan import plan_run

    info = train(config(policy="frozen", refit=False, probe_rule="one-standard-error"), tmp_path / "run",
                 progress=False)
    fit = info["head_fit"]
    assert info["config"]["probe_rule"] == "one-standard-error" and fit["rule"].startswith("one-standard-error")
    assert fit["C"] == float(next(c for c, s in fit["cv"].items() if s["log_loss"] <= min(
        v["log_loss"] + v["log_loss_se"] for v in fit["cv"].values() if v["log_loss"] == min(
            w["log_loss"] for w in fit["cv"].values()))))
    with pytest.raises(OptionError, match="probe_rule 'median'"):
        plan_run(config(policy="frozen", probe_rule="median"))

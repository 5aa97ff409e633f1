"""Adapting a finished run to unlabelled target data and saving the result as a new run.

The new run directory is a copy of the source run (model card, plots, labels,
preprocessing) with the adapted ``model.safetensors`` and an ``adaptation``
section in ``graft.json`` that says what was done, on which data, from which
run. ``graft evaluate`` / ``predict`` / ``export`` use it like any other run.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graftzoo.errors import DataError, TrainingError
from graftzoo.storage import atomic

if TYPE_CHECKING:
    from graftzoo.data import LabelledData
    from graftzoo.train.model import GraftModel

METHODS = ("adabn", "tent")


class TargetBatches:
    """Re-iterable batches of target samples, collated by the run's backbone (no augmentation).

    Collation happens on the fly so that large target sets need not fit in
    memory as tensors; the sample order is shuffled once (seeded) so that
    BatchNorm batch statistics are not skewed by class-sorted data.
    """

    def __init__(self, model: GraftModel, samples: Sequence[Any], batch_size: int, seed: int = 0) -> None:
        import random

        self.model = model
        self.samples = list(samples)
        random.Random(seed).shuffle(self.samples)
        self.batch_size = batch_size

    def __iter__(self) -> Iterator[Any]:
        from graftzoo.train.features import to_device
        from graftzoo.train.inference import model_device

        backbone = self.model.backbone
        dev = model_device(self.model)
        for start in range(0, len(self.samples), self.batch_size):
            part = self.samples[start:start + self.batch_size]
            if len(part) < 2 and start > 0:
                return  # a batch of one has no batch statistics; BatchNorm would fail on it
            yield to_device(backbone.collate(part, train=False), dev, backbone.channels_last)


def _accuracy(run: Any, data: LabelledData, batch_size: int) -> float | None:
    """Accuracy on target data when it carries labels the run knows; None otherwise (reporting only)."""
    if data.task != "classification" or any(label is None for label in data.labels):
        return None
    if not {str(label) for label in data.labels} <= set(run.classes):
        return None
    acc: float = run.evaluate(data.samples, data.labels, batch_size=batch_size)["accuracy"]
    return acc


def adapt_run(
    run_dir: str | Path,
    target: LabelledData,
    method: str,
    *,
    out: str | Path | None = None,
    steps: int = 1,
    lr: float = 1e-3,
    batch_size: int = 64,
    seed: int = 0,
    target_spec: str | None = None,
    report_accuracy: bool = True,
) -> dict[str, Any]:
    """Adapt the run in ``run_dir`` to ``target`` (labels unused) with AdaBN or TENT; write a new run.

    ``out`` defaults to ``<run_dir>-<method>``; it must not exist. Returns the
    ``adaptation`` record written to the new run's graft.json, including the
    accuracy before and after on ``target`` when ``report_accuracy`` and the
    target has labels the run knows (those labels are only ever used for this
    report, never for the adaptation).
    """
    import torch

    from graftzoo.train.run import load_run

    if method not in METHODS:
        raise TrainingError(f"unknown adaptation method {method!r}; use one of {', '.join(METHODS)}")
    src = Path(run_dir)
    dest = Path(out) if out is not None else src.with_name(f"{src.name}-{method}")
    if dest.exists():
        raise TrainingError(f"{dest}: already exists; pass --out with a new directory")
    if len(target) < 2:
        raise DataError(f"{target.name}: {len(target)} samples; adaptation needs at least 2 target samples")
    run = load_run(src)
    if run.task != "classification":
        raise TrainingError(f"{src}: adaptation supports classification runs; this one is {run.task}")
    torch.manual_seed(seed)
    before = _accuracy(run, target, batch_size) if report_accuracy else None
    record = _adapt(run, target, method, steps=steps, lr=lr, batch_size=batch_size, seed=seed)
    after = _accuracy(run, target, batch_size) if report_accuracy else None
    record = {"method": method, "source_run": str(src.resolve()), "target": target_spec or target.name,
              "target_fingerprint": target.fingerprint(), "target_samples": len(target), **record}
    if before is not None and after is not None:
        record["target_accuracy_before"] = before
        record["target_accuracy_after"] = after
    _write_adapted_run(run.model, src, dest, record)
    record["run"] = str(dest)
    return record


def _adapt(run: Any, target: LabelledData, method: str, *, steps: int, lr: float, batch_size: int,
           seed: int) -> dict[str, Any]:
    """Run AdaBN or TENT on ``run.model`` in place; the record's numbers (entropy before/after, time)."""
    from graftzoo.diagnostics.adapt import adabn, mean_entropy, tent

    batches = TargetBatches(run.model, target.samples, batch_size, seed)
    start = time.perf_counter()
    entropy_before = mean_entropy(run.model, batches)
    details: dict[str, Any]
    if method == "adabn":
        details = {"layers": adabn(run.model, batches)}
    else:
        details = tent(run.model, batches, steps=steps, lr=lr)
        details.update(steps=steps, lr=lr)
    entropy_after = mean_entropy(run.model, batches)
    return {"batch_size": batch_size, "seed": seed, "entropy_before": entropy_before,
            "entropy_after": entropy_after, "seconds": time.perf_counter() - start,
            "created": datetime.now(UTC).isoformat(timespec="seconds"), **details}


def _write_adapted_run(model: GraftModel, src: Path, dest: Path, record: dict[str, Any]) -> None:
    """Copy the source run into a temporary sibling, update it and rename: a failure leaves nothing behind."""
    from graftzoo.train.run import INFO, WEIGHTS, read_info, save_weights, write_json_atomic

    with atomic.atomic_dir(dest, f"the adapted run {dest}") as tmp:  # a failure or a kill leaves nothing behind
        # The source's exports (ONNX, transformers, timm...) hold the source's weights: never carry them over.
        shutil.copytree(src, tmp, ignore=lambda folder, _names: ["export"] if Path(folder) == src else [],
                        dirs_exist_ok=True)
        save_weights(model, tmp / WEIGHTS)
        info = read_info(tmp)
        info.setdefault("adaptations", []).append(record)
        info["adaptation"] = record
        info["metrics_note"] = "metrics were measured before adaptation, on the source run's data"
        write_json_atomic(tmp / INFO, info)
        _append_card(tmp / "README.md", record)


def _append_card(card: Path, record: dict[str, Any]) -> None:
    """Add an 'Adaptation' section to the copied model card."""
    lines = [
        "",
        "## Adaptation",
        "",
        f"Adapted with `{record['method']}` on {record['target_samples']} unlabelled samples of "
        f"`{record['target']}` (from run `{record['source_run']}`).",
        f"Mean prediction entropy on the target: {record['entropy_before']:.4f} -> {record['entropy_after']:.4f}.",
    ]
    if "target_accuracy_before" in record:
        lines.append(f"Target accuracy (labels used for this report only): {record['target_accuracy_before']:.4f} "
                     f"-> {record['target_accuracy_after']:.4f}.")
    lines.append("The metrics above were measured before adaptation.")
    with card.open("a", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")

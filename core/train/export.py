"""Exporting a run: ONNX (example batch saved with the run -> probabilities) or standalone safetensors.

ONNX graphs have a dynamic batch axis, and text and audio graphs a dynamic
length axis (tokens / samples; ``words`` for the word positions of token
tasks), so any input length runs. ``labels.json``, ``preprocessing.json`` and
the run's tokenizer or feature-extractor files are written beside the model:
everything needed to feed it without Graftzoo.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from graftzoo.errors import TrainingError
from graftzoo.storage import atomic
from graftzoo.train.model import GraftModel

EXAMPLE = "example_input.safetensors"


def save_example(model: GraftModel, samples: list[Any], out: Path) -> None:
    """Store one collated batch beside the run so ONNX export can trace it without the data."""
    from safetensors.torch import save_file

    batch = model.backbone.collate(samples, train=False)
    tensors = {"input": batch} if isinstance(batch, torch.Tensor) else dict(batch)
    if not all(isinstance(v, torch.Tensor) for v in tensors.values()):
        return  # a batch that is not tensors cannot be traced; ONNX export will say so
    atomic.write_with(out / EXAMPLE, lambda tmp: save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp)),
                      EXAMPLE)


class _Probabilities(nn.Module):
    """Positional tensors in -> class probabilities out (ONNX needs positional inputs)."""

    def __init__(self, model: GraftModel, keys: list[str] | None) -> None:
        super().__init__()
        self.model = model
        self.keys = keys

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        batch: Any = dict(zip(self.keys, inputs, strict=True)) if self.keys else inputs[0]
        probs: torch.Tensor = self.model(batch).softmax(-1)
        return probs


def export_run(run_dir: str | Path, fmt: str, out: Path | None = None, overwrite: bool = False) -> Path:
    """Write ``model.onnx`` or ``model.safetensors`` for the run; returns the path."""
    from graftzoo.train.run import load_run

    run = load_run(run_dir)
    path = Path(out) if out is not None else run.path / "export" / f"model.{fmt}"
    if path.exists() and not overwrite:
        raise TrainingError(f"{path} already exists; pass --overwrite or --out")
    path.parent.mkdir(parents=True, exist_ok=True)
    from graftzoo.train.card import pipeline_tag

    meta = {"model": run.entry.id, "labels": json.dumps(run.classes), "task": run.task,
            "modality": run.entry.modality, "pipeline_tag": pipeline_tag(run.info),
            "preprocessing": json.dumps(run.preprocessing, default=str)}
    if fmt == "safetensors":
        from graftzoo.train.run import save_weights

        save_weights(run.model, path, metadata=meta)
        return path
    if fmt != "onnx":
        raise TrainingError(f"unknown export format {fmt!r}; use onnx or safetensors")
    atomic.write_with(path, lambda tmp: _export_onnx(run.model, run.path, tmp, meta), f"the ONNX export {path}")
    _ship_beside(run, path)
    return path


def _ship_beside(run: Any, path: Path) -> None:
    """labels.json, preprocessing.json and the run's tokenizer / feature-extractor files next to the model."""
    import shutil

    from graftzoo.train.run import write_json_atomic

    write_json_atomic(path.parent / "labels.json", list(run.classes))
    write_json_atomic(path.parent / "preprocessing.json", {"task": run.task, **run.preprocessing})
    for rel in run.info.get("extra_files", {}).values():
        src = run.path / rel
        if src.is_file():
            shutil.copy2(src, path.parent / src.name)


def _dynamic_axes(name: str, ndim: int, sequences: bool) -> dict[int, str]:
    """Batch is always dynamic; text and audio inputs (dict batches) also vary in length along dim 1."""
    axes = {0: "batch"}
    if sequences and ndim >= 2:
        axes[1] = "words" if name.startswith("word_") else "length"
    return axes


def _export_onnx(model: GraftModel, run_dir: Path, path: Path, meta: dict[str, str]) -> Path:
    from safetensors.torch import load_file

    example = run_dir / EXAMPLE
    if not example.is_file():
        raise TrainingError(f"{run_dir}: no {EXAMPLE} (its backbone's batches are not plain tensors), so it cannot "
                            "be traced to ONNX; export --format safetensors instead")
    # One sample: a batch of equal-length inputs takes the same path through every adapter (an audio
    # encoder without attention masks runs unequal lengths one by one, which tracing would unroll).
    tensors = {k: v[:1] for k, v in load_file(str(example)).items()}
    keys = None if list(tensors) == ["input"] else sorted(tensors)
    inputs = tuple(tensors[k] for k in (keys or ["input"]))
    names = keys or ["input"]
    wrapper = _Probabilities(model.float().eval(), keys)
    dynamic = {n: _dynamic_axes(n, tensors[n].dim(), keys is not None) for n in names}
    dynamic["probabilities"] = {0: "batch", 1: "words"} if model.task == "token-classification" else {0: "batch"}
    try:
        torch.onnx.export(wrapper, inputs, str(path), input_names=names, output_names=["probabilities"],
                          dynamic_axes=dynamic, dynamo=False)
    except Exception as exc:  # tracing failures come in many types; report them as one
        raise TrainingError(f"ONNX export of {meta['model']} failed: {type(exc).__name__}: {exc}") from exc
    import onnx

    proto = onnx.load(str(path))
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))
    return path

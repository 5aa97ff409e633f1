"""Running a model over samples: logits, probabilities and metrics, for classification and token tasks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from graftzoo.metrics import classification_metrics, token_metrics
from graftzoo.progress import progress_bar
from graftzoo.train.features import to_device
from graftzoo.train.model import GraftModel

IGNORE = -100


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of a model's first parameter (CPU for a model without parameters)."""
    return next(iter(model.parameters()), torch.empty(0)).device


@torch.no_grad()
def classify(model: GraftModel, samples: Sequence[Any], batch_size: int = 64, progress: bool = False) -> torch.Tensor:
    """Logits ``[N, C]`` of ``samples`` in eval mode (the model's mode is restored)."""
    was = model.training
    model.eval()
    dev = model_device(model)
    out: list[torch.Tensor] = []
    try:
        with progress_bar("predicting", total=len(samples), enabled=progress) as advance:
            for start in range(0, len(samples), batch_size):
                part = list(samples[start:start + batch_size])
                batch = to_device(model.backbone.collate(part, train=False), dev, model.backbone.channels_last)
                out.append(model(batch).float().cpu())
                advance(len(part))
    finally:
        model.train(was)
    return torch.cat(out) if out else torch.zeros(0, 0)


@torch.no_grad()
def tag(model: GraftModel, samples: Sequence[Sequence[str]], batch_size: int = 32) -> list[torch.Tensor]:
    """Per-word logits ``[len(words), C]`` for each sample (token classification)."""
    was = model.training
    model.eval()
    dev = model_device(model)
    result: list[torch.Tensor] = []
    try:
        for start in range(0, len(samples), batch_size):
            part = [list(s) for s in samples[start:start + batch_size]]
            batch = model.backbone.collate(part, train=False)
            positions = model.backbone.token_labels(batch, [[0] * len(words) for words in part])
            logits = model(to_device(batch, dev)).float().cpu()
            for b in range(len(part)):
                result.append(logits[b][positions[b] != IGNORE])
    finally:
        model.train(was)
    return result


def evaluate_samples(model: GraftModel, samples: Sequence[Any], targets: Sequence[Any], classes: Sequence[str],
                     batch_size: int = 64, progress: bool = False) -> dict[str, Any]:
    """Metrics of ``model`` on labelled samples; ``targets`` are class ids (or per-word id lists)."""
    if model.task == "token-classification":
        per_word = tag(model, samples, batch_size)
        return token_metrics(per_word, targets, classes)
    logits = classify(model, samples, batch_size, progress=progress)
    return classification_metrics(logits, torch.tensor(list(targets), dtype=torch.long), len(classes))

"""The shift and bias section of ``graft evaluate``: one feature pass, every diagnostic.

Features of the evaluation data are computed once with the run's own
(fine-tuned) backbone; the head turns them into the logits behind the metrics,
so the report costs no second pass. For the domain-shift score the run's
training split is re-created by ``graftzoo.train.plan.training_data`` (the
same loader options, ``--skip-bad``, seed and split as the run) and a sample
of it is passed through the same backbone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from graftzoo.data import LabelledData
from graftzoo.errors import GraftError
from graftzoo.metrics import classification_metrics
from graftzoo.train.features import extract_features

if TYPE_CHECKING:
    from graftzoo.train.run import Run

#: Training samples passed through the backbone for the shift score: enough for
#: a stable domain classifier, few enough to keep evaluate quick on CPU.
TRAIN_SAMPLE = 400


def training_split(run: Run) -> LabelledData:
    """A seeded sample (at most ``TRAIN_SAMPLE``) of the run's training split."""
    from graftzoo.train.plan import training_data

    data = training_data(run)
    if len(data) <= TRAIN_SAMPLE:
        return data
    gen = torch.Generator().manual_seed(run.config.seed)
    return data.subset(sorted(torch.randperm(len(data), generator=gen)[:TRAIN_SAMPLE].tolist()))


def evaluate_with_report(run: Run, data: LabelledData, batch_size: int = 64, shift: bool = True,
                         progress: bool = True) -> dict[str, Any]:
    """Metrics plus per-class metrics, calibration and (with ``shift``) a domain-shift score."""
    from graftzoo.diagnostics.evaluation_report import evaluation_report

    targets = torch.tensor(run.targets(data.labels), dtype=torch.long)
    backbone = run.model.backbone
    feats = extract_features(backbone, data, batch_size=batch_size, progress=progress)
    with torch.no_grad():
        logits = run.model.head(feats).float()
    metrics = classification_metrics(logits, targets, len(run.classes))
    train_feats = None
    note = None
    if shift:
        try:
            train_feats = extract_features(backbone, training_split(run), batch_size=batch_size, progress=progress)
        except GraftError as exc:
            note = f"no shift score: the training data is not available ({exc})"
    report = evaluation_report(targets.numpy(), torch.softmax(logits, -1).numpy(), run.classes,
                               train_features=None if train_feats is None else train_feats.numpy(),
                               eval_features=feats.numpy() if train_feats is not None else None)
    if note:
        report.setdefault("warnings", []).append(note)
    from graftzoo.diagnostics.samples import per_sample

    return {**metrics, "report": report, "per_sample": per_sample(data.samples, targets, logits, run.classes)}

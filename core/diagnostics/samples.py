"""Per-sample results of ``graft evaluate``: every prediction, and the worst ones (fastai's top losses).

Written into the run as ``evaluations/<data>-<split>/predictions.csv`` and
``worst.csv``, so that "which samples does it get wrong, and how sure was
it?" is answered by opening a file: a mislabelled image or an ambiguous
review sits at the top of ``worst.csv``.
"""

from __future__ import annotations

import csv
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

COLUMNS = ["index", "input", "label", "predicted", "confidence", "p_label", "loss", "correct"]


def sample_name(sample: Any, index: int) -> str:
    """A readable identity: the file path or text itself, else ``#index`` (arrays, tensors)."""
    if isinstance(sample, str | Path):
        return str(sample)
    return f"#{index}"


def per_sample(samples: Sequence[Any], targets: torch.Tensor, logits: torch.Tensor,
               classes: Sequence[str]) -> list[dict[str, Any]]:
    """One row per sample: true label, prediction, its confidence, p(true label), cross-entropy loss."""
    probs = logits.float().softmax(-1)
    losses = torch.nn.functional.cross_entropy(logits.float(), targets, reduction="none")
    conf, pred = probs.max(-1)
    rows = []
    for i, sample in enumerate(samples):
        t, p = int(targets[i]), int(pred[i])
        rows.append({"index": i, "input": sample_name(sample, i), "label": classes[t], "predicted": classes[p],
                     "confidence": round(float(conf[i]), 6), "p_label": round(float(probs[i, t]), 6),
                     "loss": round(float(losses[i]), 6), "correct": t == p})
    return rows


def worst(rows: Sequence[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """The ``n`` rows with the highest loss (most confidently wrong first)."""
    return sorted(rows, key=lambda r: (-r["loss"], r["index"]))[:n]


def write_rows(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """CSV with a header, written to a temp file and renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_evaluation(run_dir: Path, data_name: str, split: str, rows: Sequence[dict[str, Any]],
                    n_worst: int) -> dict[str, Any]:
    """Write predictions.csv and worst.csv under ``RUN/evaluations/``; returns paths and the worst rows."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(data_name).name or "data").strip("-") or "data"
    folder = run_dir / "evaluations" / f"{slug}-{split}"
    bad = worst(rows, n_worst)
    write_rows(folder / "predictions.csv", rows)
    write_rows(folder / "worst.csv", bad)
    return {"predictions_file": str(folder / "predictions.csv"), "worst_file": str(folder / "worst.csv"),
            "worst": bad}

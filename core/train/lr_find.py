"""``--lr auto``: a learning-rate range test (Smith 2017; fastai's ``lr_find``).

The learning rate grows exponentially from ``start`` to ``end`` over a few
dozen optimiser steps on training batches while the (smoothed) training loss
is recorded; the sweep stops once the loss diverges. The suggestion is the
rate where the smoothed loss falls fastest (fastai's "steep" point), capped
at a tenth of the rate with the lowest loss. The model and optimiser are
restored afterwards, so the run itself starts from the same weights. The
curve is saved in the run as ``lr_find.png`` and ``lr_find.json``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from graftzoo.storage import atomic

Step = Callable[[Any, Any], torch.Tensor]  # (batch, targets) -> loss, after backward() is NOT yet called


@dataclass
class RangeTest:
    """The sweep: lrs tried, smoothed losses, and the suggestion."""

    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    suggestion: float = float("nan")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"suggestion": self.suggestion, "lrs": self.lrs, "losses": self.losses}


def _cycle(loader: Iterable[Any]) -> Iterator[Any]:
    while True:
        empty = True
        for item in loader:
            empty = False
            yield item
        if empty:
            return


def suggest(lrs: list[float], losses: list[float]) -> float:
    """The lr of steepest descent of the loss over log(lr), no higher than a tenth of the min-loss lr.

    The first tenth of the sweep (at least two points) is left out of the
    search, as fastai's plot leaves out its start: there the smoothed loss
    still moves with the first batches' noise, not with the learning rate (a
    speaker-ID sweep once "fell fastest" at its second point, 1.3e-6, and the
    run trained at that rate to below scratch).
    """
    if len(lrs) < 3:
        return lrs[0] if lrs else float("nan")
    logs = [math.log10(v) for v in lrs]
    first = min(max(2, len(lrs) // 10), len(lrs) - 2)
    slopes = {i: (losses[i + 1] - losses[i - 1]) / (logs[i + 1] - logs[i - 1]) for i in range(first, len(lrs) - 1)}
    steep = lrs[min(slopes, key=lambda i: slopes[i])]
    at_min = lrs[min(range(len(losses)), key=lambda i: losses[i])]
    return min(steep, at_min / 10) if at_min / 10 >= lrs[0] else steep


def range_test(params: list[dict[str, Any]], loader: Iterable[Any], step: Step, *, start: float = 1e-6,
               end: float = 1.0, steps: int = 60, beta: float = 0.8) -> RangeTest:
    """Sweep the lr of every optimiser group (keeping their ratios) and return the curve and suggestion.

    ``params`` are optimiser groups as ``optim.param_groups`` builds them; their
    ``lr`` values set the ratios between groups (the head's is the reference).
    """
    base = max(g["lr"] for g in params)
    ratios = [g["lr"] / base for g in params]
    opt = torch.optim.AdamW([{**g, "lr": start * r} for g, r in zip(params, ratios, strict=True)])
    result = RangeTest()
    avg, best = 0.0, float("inf")
    factor = (end / start) ** (1 / max(1, steps - 1))
    lr = start
    for i, (batch, y) in zip(range(steps), _cycle(loader), strict=False):
        for g, r in zip(opt.param_groups, ratios, strict=True):
            g["lr"] = lr * r
        loss = step(batch, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        value = float(loss.detach())
        if not math.isfinite(value):
            break
        avg = beta * avg + (1 - beta) * value
        smooth = avg / (1 - beta ** (i + 1))
        result.lrs.append(lr)
        result.losses.append(smooth)
        best = min(best, smooth)
        if i > 5 and smooth > 4 * best:
            break
        lr *= factor
    result.suggestion = suggest(result.lrs, result.losses)
    return result


def save(result: RangeTest, out: Path) -> None:
    """lr_find.json and lr_find.png (loss over lr, log scale, the suggestion marked)."""
    atomic.write_text(out / "lr_find.json", json.dumps(result.to_dict(), indent=1) + "\n", "the lr range test")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(result.lrs, result.losses)
    ax.set_xscale("log")
    if math.isfinite(result.suggestion):
        ax.axvline(result.suggestion, color="red", linestyle="--", label=f"suggested {result.suggestion:.2g}")
        ax.legend()
    ax.set_xlabel("learning rate (head)")
    ax.set_ylabel("training loss (smoothed)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic.write_with(out / "lr_find.png", lambda tmp: fig.savefig(tmp, dpi=80, format="png"), "lr_find.png")
    plt.close(fig)

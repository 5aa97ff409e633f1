"""``--lr auto``: a learning-rate range test (Smith 2017; fastai's ``lr_find``).

The learning rate grows exponentially from ``start`` to ``end`` over a few
dozen optimiser steps on training batches while the (smoothed) training loss
is recorded; the sweep stops once the loss diverges. The suggestion is the
median of fastai's three suggestions on that curve (``suggest``): the lowest
loss's lr over 10, the steepest descent, and the middle of the valley the loss
falls through. The model and optimiser are restored afterwards, so the run
itself starts from the same weights. The curve is saved in the run as
``lr_find.png`` and ``lr_find.json`` (with the three candidates).
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
    #: fastai's three suggestions, whose median is ``suggestion``
    candidates: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"suggestion": self.suggestion, "candidates": self.candidates, "lrs": self.lrs, "losses": self.losses}


def _cycle(loader: Iterable[Any]) -> Iterator[Any]:
    while True:
        empty = True
        for item in loader:
            empty = False
            yield item
        if empty:
            return


def _skipped(n: int) -> int:
    """How many points at the sweep's start no suggestion looks at: a tenth (at least two).

    fastai's suggestions leave out the first tenth of the sweep too: there the smoothed loss still moves with
    the first batches' noise, not with the learning rate (a speaker-ID sweep once "fell fastest" at its second
    point, 1.3e-6, and the run trained at that rate to below scratch).
    """
    return min(max(2, n // 10), n - 2)


def _valley(lrs: list[float], losses: list[float], first: int, low: int) -> float:
    """The geometric middle of the stretch the loss falls through on its way to ``losses[low]``.

    The stretch runs from the last point within a tenth of the fall of the starting level (the mean of the
    ``first`` skipped points) to the first point within a tenth of it of the minimum. No fall: a tenth of the
    lowest point's lr.
    """
    level = sum(losses[:first]) / first
    fall = level - losses[low]
    if fall <= 0:
        return lrs[low] / 10
    end = next(i for i in range(first, low + 1) if losses[i] <= losses[low] + fall / 10)
    start = end
    while start > first and losses[start - 1] < level - fall / 10:
        start -= 1
    return math.sqrt(lrs[max(first, start - 1)] * lrs[end])


def candidates(lrs: list[float], losses: list[float]) -> dict[str, float]:
    """fastai's three suggestions: ``minimum`` (lowest loss's lr / 10), ``steep`` (fastest fall), ``valley``.

    ``valley`` is fastai's default since 2.5: the middle, in log lr, of the stretch the loss falls through. fastai
    finds that stretch as the longest decreasing subsequence, which on a flat, noisy start (a small text set:
    the loss falls 0.1 nat under +-0.05 of batch noise) reaches deep into the flat part and lands below the fall;
    here the stretch is found from the loss levels (``_valley``).
    """
    first = _skipped(len(lrs))
    logs = [math.log10(v) for v in lrs]
    slopes = {i: (losses[i + 1] - losses[i - 1]) / (logs[i + 1] - logs[i - 1]) for i in range(first, len(lrs) - 1)}
    low = min(range(first, len(lrs)), key=lambda i: losses[i])
    return {"minimum": lrs[low] / 10, "steep": lrs[min(slopes, key=lambda i: slopes[i])],
            "valley": _valley(lrs, losses, first, low)}


def suggest(lrs: list[float], losses: list[float]) -> float:
    """The median of fastai's three suggestions (``candidates``): the odd one out is dropped.

    Each fails on some curves; in the sweeps measured (digits, text, speaker ID) never two on the same one.
    ``minimum`` assumes the loss bottoms out just before it diverges; where it bottoms out early and then only
    wanders (MiniLM on 320 short texts: lowest at 8.9e-4, ragged up to 1e-2) a tenth of it under-trains (the
    run's training loss 0.69 -> 0.62 in 3 epochs, validation 0.66 where 1.5e-4 and 3e-4 got 0.73 and 0.75).
    ``steep`` follows batch noise; ``valley`` runs low where the fall is long and slow.
    """
    if len(lrs) < 3:
        return lrs[0] if lrs else float("nan")
    return sorted(candidates(lrs, losses).values())[1]


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
    if len(result.lrs) >= 3:
        result.candidates = candidates(result.lrs, result.losses)
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
        for (name, lr), color in zip(sorted(result.candidates.items()), ("tab:green", "tab:orange", "tab:purple"),
                                     strict=False):
            ax.axvline(lr, color=color, linestyle=":", alpha=0.7, label=f"{name} {lr:.2g}")
        ax.legend()
    ax.set_xlabel("learning rate (head)")
    ax.set_ylabel("training loss (smoothed)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic.write_with(out / "lr_find.png", lambda tmp: fig.savefig(tmp, dpi=80, format="png"), "lr_find.png")
    plt.close(fig)

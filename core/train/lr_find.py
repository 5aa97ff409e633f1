"""``--lr auto``: a learning-rate range test (Smith 2017; fastai's ``lr_find``).

The learning rate grows exponentially from ``start`` to ``end`` over a few
dozen optimiser steps on training batches while the (smoothed) training loss
is recorded; the sweep stops once the loss diverges. The suggestion
(``suggest``) is a tenth of the lowest loss's lr (fastai's ``minimum``), but
no lower than where the loss has clearly begun to fall. The model and
optimiser are restored afterwards, so the run itself starts from the same
weights. The curve is saved in the run as ``lr_find.png`` and
``lr_find.json`` (with both candidates).
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
    #: the candidates ``suggest`` chooses between (``suggestion`` is the higher)
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


def _fall_begun(lrs: list[float], losses: list[float], first: int, low: int) -> float:
    """The first lr of the stretch, ending at the minimum, where the loss has made a fifth of its fall.

    The fall runs from the starting level (the mean of the ``first`` skipped points) to ``losses[low]``; the
    stretch is walked back from the minimum, so a dip in the flat start does not count. No fall: a tenth of the
    lowest point's lr.
    """
    level = sum(losses[:first]) / first
    fall = level - losses[low]
    if fall <= 0:
        return lrs[low] / 10
    start = low
    while start > first and losses[start - 1] <= level - fall / 5:
        start -= 1
    return lrs[start]


def candidates(lrs: list[float], losses: list[float]) -> dict[str, float]:
    """``minimum``: a tenth of the lowest loss's lr (fastai's ``minimum``); ``falling``: where the fall has begun.

    ``falling`` is the lowest lr at which the smoothed loss has made a fifth of its way from its starting level
    down to its minimum (``_fall_begun``): the loss is clearly decreasing there.
    """
    first = _skipped(len(lrs))
    low = min(range(first, len(lrs)), key=lambda i: losses[i])
    return {"minimum": lrs[low] / 10, "falling": _fall_begun(lrs, losses, first, low)}


def suggest(lrs: list[float], losses: list[float]) -> float:
    """A tenth of the lowest loss's lr, but no lower than where the loss is clearly falling (``candidates``).

    fastai's and fastbook's rule of thumb, "one order of magnitude less than where the minimum loss was
    achieved", rests on the loss bottoming out at the edge of divergence: so it does on digits and speaker ID
    (lowest at 1.5e-2, diverging two or three points later), where a tenth of it trains well. Where the loss
    bottoms out early and then wanders (MiniLM on 320 short texts: flat to 1e-4, lowest at 8.9e-4 or 2.3e-3 by
    the batches' noise, ragged up to 1e-2), a tenth of it lands in the flat start, where a short run cannot
    train (8.9e-5: training loss 0.69 -> 0.62 in 3 epochs, validation accuracy 0.66; fixed 1.5e-4, 3e-4 and
    5.5e-4 got 0.73, 0.75 and 0.74 on that validation set). Then the rate where the loss has clearly begun to
    fall is taken instead. fastai's ``valley`` (the middle of the longest decreasing stretch) was no cure: on
    that text sweep it gives 8.6e-5, its stretch starting in the flat part, and the middle of the fall (1.8e-3)
    under-trained LoRA on digits against a tenth of the minimum (0.908 vs 0.932 held out).
    """
    if len(lrs) < 3:
        return lrs[0] if lrs else float("nan")
    return max(candidates(lrs, losses).values())


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
    if len(result.lrs) >= 3:
        result.candidates = candidates(result.lrs, result.losses)
        result.suggestion = max(result.candidates.values())  # what suggest() returns, candidates computed once
    else:
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
        for (name, lr), color in zip(sorted(result.candidates.items()), ("tab:green", "tab:orange"), strict=False):
            ax.axvline(lr, color=color, linestyle=":", alpha=0.7, label=f"{name} {lr:.2g}")
        ax.legend()
    ax.set_xlabel("learning rate (head)")
    ax.set_ylabel("training loss (smoothed)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic.write_with(out / "lr_find.png", lambda tmp: fig.savefig(tmp, dpi=80, format="png"), "lr_find.png")
    plt.close(fig)

"""The one paired-timing helper of bench/: ratios as the median of alternating pairs, with min-max.

On a shared, noisy machine two back-to-back measurements drift apart; a ratio
is only trustworthy when both sides are measured in turns (A B A B ...) and
summarised by the median of the per-pair ratios, printed with their min-max so
a reader sees whether the spread crosses the goal. Child processes (peak RSS
is per process) speak one ``RESULT {json}`` line, read by ``child``.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Ratio:
    """Per-pair ratios A/B and their summary."""

    values: list[float] = field(default_factory=list)
    a: list[float] = field(default_factory=list)
    b: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def show(self) -> str:
        return f"{self.median:.3f} ({min(self.values):.3f}-{max(self.values):.3f})"

    def to_dict(self) -> dict[str, Any]:
        return {"median": self.median, "min": min(self.values), "max": max(self.values), "values": self.values,
                "a": self.a, "b": self.b}


def paired(a: Callable[[], float], b: Callable[[], float], pairs: int = 5, warmup: int = 0) -> Ratio:
    """Measure ``a`` and ``b`` in turns (A B A B ...), ``pairs`` times after ``warmup`` unrecorded pairs.

    Each callable returns its measurement (a rate, seconds, megabytes); the
    ratio of each pair is ``a() / b()``.
    """
    if pairs < 5:
        raise SystemExit(f"--pairs {pairs}: a ratio needs at least 5 alternating pairs")
    result = Ratio()
    for i in range(warmup + pairs):
        x, y = a(), b()
        if i >= warmup:
            result.a.append(x)
            result.b.append(y)
            result.values.append(x / y if y else float("inf"))
    return result


def seconds(fn: Callable[[], Any]) -> float:
    """Wall-clock seconds of one call."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def child(script: str, kind: str, argv: Sequence[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``script --child kind argv...`` in a fresh interpreter and return its ``RESULT`` JSON."""
    proc = subprocess.run([sys.executable, script, "--child", kind, *argv], capture_output=True, text=True,
                          env=env, check=False)
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode or not line:
        raise RuntimeError(f"{kind} failed:\n{proc.stderr[-3000:]}")
    return dict(json.loads(line[-1][len("RESULT "):]))


def emit(result: dict[str, Any]) -> None:
    """A child's answer to ``child``."""
    print("RESULT " + json.dumps(result), flush=True)


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (MB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def row(name: str, value: Ratio | float | str, goal: str = "", met: bool | None = None) -> str:
    """One line of a bench table: measure, value (median and min-max for a ratio), goal, verdict."""
    shown = value.show() if isinstance(value, Ratio) else f"{value:.3f}" if isinstance(value, float) else value
    verdict = "" if met is None else ("met" if met else "MISSED")
    return f"{name:<52}{shown:>26}{goal:>10}  {verdict}"

"""The run's plots, made to be read: curves.png and confusion.png.

- Curves: whole-number epochs on the x axis, the best validation epoch
  marked, the scratch baseline overlaid (dashed) when it ran, the run's name
  as the title.
- Confusion matrix: counts on the left and the row-normalised view (recall
  per class) on the right; each number is white on dark cells and black on
  light ones, so the diagonal stays readable; the figure grows with the
  number of classes (numbers are left out past 30 classes, where they would
  overlap).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from graftzoo.storage import atomic

#: Beyond this many classes the cells are too small for numbers.
MAX_ANNOTATED = 30


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def best_epoch(history: Sequence[dict[str, Any]]) -> int | None:
    """The epoch with the lowest validation loss (None without validation)."""
    scored = [(row["val_loss"], row["epoch"]) for row in history if row.get("val_loss") is not None]
    return min(scored)[1] if scored else None


def write_curves(out: Path, history: Sequence[dict[str, Any]], title: str,
                 baseline: Sequence[dict[str, Any]] | None = None) -> Path:
    """curves.png: loss and accuracy per epoch (train, val; scratch baseline dashed)."""
    return _save(curves_figure(history, title, baseline), out / "curves.png")


def _save(fig: Any, path: Path) -> Path:
    fmt = path.suffix.lstrip(".") or "png"  # the temporary name has no image suffix to infer it from
    atomic.write_with(path, lambda tmp: fig.savefig(tmp, dpi=80, format=fmt), path.name)
    _pyplot().close(fig)
    return path


def curves_figure(history: Sequence[dict[str, Any]], title: str,
                  baseline: Sequence[dict[str, Any]] | None = None) -> Any:
    """The curves figure (see ``write_curves``)."""
    from matplotlib.ticker import MaxNLocator

    plt = _pyplot()
    best = best_epoch(history)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        for rows, style, prefix in ((history, "-", ""), (baseline or [], "--", "scratch ")):
            epochs = [row["epoch"] for row in rows]
            for split, colour in (("train", "tab:blue"), ("val", "tab:orange")):
                values = [row.get(f"{split}_{metric}") for row in rows]
                if rows and any(v is not None for v in values):
                    ax.plot(epochs, values, style, marker="o" if not prefix else None, color=colour,
                            alpha=1.0 if not prefix else 0.6, label=f"{prefix}{split}")
        if best is not None:
            ax.axvline(best, color="tab:green", linestyle=":", linewidth=1.5, label=f"best epoch ({best})")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _matrix(ax: Any, values: Any, classes: Sequence[str], title: str, fmt: str) -> None:
    import numpy as np

    data = np.asarray(values, dtype=float)
    ax.imshow(data, cmap="Blues", vmin=0, vmax=max(float(data.max()), 1e-9))
    ticks = list(range(len(classes)))
    ax.set_xticks(ticks, list(classes), rotation=90)
    ax.set_yticks(ticks, list(classes))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if len(classes) <= MAX_ANNOTATED:
        threshold = data.max() / 2
        size = max(6, 11 - len(classes) // 4)
        for i in range(data.shape[0]):
            for j in range(data.shape[1]):
                ax.text(j, i, format(data[i, j], fmt), ha="center", va="center", fontsize=size,
                        color="white" if data[i, j] > threshold else "black")



def write_confusion(out: Path, confusion: Sequence[Sequence[int]], classes: Sequence[str], title: str) -> Path:
    """confusion.png: counts and the row-normalised matrix side by side."""
    return _save(confusion_figure(confusion, classes, title), out / "confusion.png")


def confusion_figure(confusion: Sequence[Sequence[int]], classes: Sequence[str], title: str) -> Any:
    """The confusion figure (see ``write_confusion``)."""
    import numpy as np

    plt = _pyplot()
    counts = np.asarray(confusion, dtype=float)
    normalised = counts / np.clip(counts.sum(1, keepdims=True), 1, None)
    side = max(4.5, 0.45 * len(classes) + 2.5)
    fig, axes = plt.subplots(1, 2, figsize=(2 * side, side))
    _matrix(axes[0], counts, classes, "counts", ".0f")
    _matrix(axes[1], normalised, classes, "normalised by true class (recall)", ".2f")
    fig.suptitle(title)
    fig.tight_layout()
    return fig

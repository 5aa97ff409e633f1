"""The run's plots are readable: contrasting numbers, a normalised view, integer epochs, best epoch, baseline."""

from __future__ import annotations

from pathlib import Path

from matplotlib.colors import to_rgb

from graftzoo.train.plots import confusion_figure, curves_figure, write_confusion, write_curves

HISTORY = [{"epoch": e, "train_loss": 1 / e, "val_loss": [0.9, 0.5, 0.4, 0.45, 0.6][e - 1],
            "train_accuracy": 0.5 + e / 20, "val_accuracy": 0.5 + e / 25} for e in range(1, 6)]


def test_confusion_numbers_contrast_with_their_cells_and_the_figure_grows() -> None:
    confusion = [[40, 2, 0], [1, 30, 9], [0, 3, 1]]
    fig = confusion_figure(confusion, ["cat", "dog", "fox"], "run-a")
    counts, normalised = fig.axes[0], fig.axes[1]
    texts = {(round(t.get_position()[1]), round(t.get_position()[0])): t for t in counts.texts}
    assert texts[(0, 0)].get_text() == "40" and to_rgb(texts[(0, 0)].get_color()) == (1, 1, 1)  # dark cell
    assert texts[(0, 1)].get_text() == "2" and to_rgb(texts[(0, 1)].get_color()) == (0, 0, 0)  # light cell
    shown = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in normalised.texts}
    assert shown[(1, 2)] == "0.23" and shown[(2, 2)] == "0.25"  # row-normalised: recall per class
    assert "run-a" in fig._suptitle.get_text()
    small = fig.get_size_inches()[1]
    big = confusion_figure([[1] * 25 for _ in range(25)], [f"c{i}" for i in range(25)], "b").get_size_inches()[1]
    assert big > small * 2


def test_curves_have_integer_epochs_best_epoch_and_scratch_overlay(tmp_path: Path) -> None:
    baseline = [{**row, "val_loss": 2.0, "train_loss": 2.0} for row in HISTORY]
    fig = curves_figure(HISTORY, "my-run", baseline)
    loss_ax = fig.axes[0]
    fig.canvas.draw()
    ticks = [t for t in loss_ax.get_xticks() if 1 <= t <= 5]
    assert ticks and all(float(t).is_integer() for t in ticks)
    labels = [line.get_label() for line in loss_ax.get_lines()]
    assert {"train", "val", "scratch train", "scratch val", "best epoch (3)"} <= set(labels)
    marker = next(line for line in loss_ax.get_lines() if line.get_label().startswith("best epoch"))
    assert list(marker.get_xdata()) == [3, 3]
    assert fig._suptitle.get_text() == "my-run"
    assert write_curves(tmp_path, HISTORY, "my-run").stat().st_size > 0
    assert write_confusion(tmp_path, [[1, 0], [0, 1]], ["a", "b"], "t").stat().st_size > 0

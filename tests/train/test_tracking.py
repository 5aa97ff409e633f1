"""``graft tune --log-with tensorboard,mlflow``: what the trackers stored, read back, equals metrics.jsonl."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from graftzoo.cli import cli

pytest.importorskip("tensorboard", reason="pip install 'graftzoo[tensorboard]' (make install does)")
pytest.importorskip("mlflow", reason="pip install 'graftzoo[mlflow]' (make install does)")


def test_tensorboard_and_mlflow_hold_what_metrics_jsonl_holds(tiny_plugin: str, tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = CliRunner().invoke(cli, ["tune", tiny_plugin, "tinydigits", "--policy", "top-k", "--unfreeze", "1",
                                      "--epochs", "3", "--lr", "0.01", "--batch-size", "16", "--log-with",
                                      "tensorboard,mlflow", "--project", "zoo", "--out", str(run)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 3

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard" / "zoo"), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    tags = events.Tags()
    for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_macro_f1", "lr"):
        logged = [e.value for e in events.Scalars(f"epoch/{key}")]
        assert logged == pytest.approx([row[key] for row in rows], rel=1e-6), key
    steps = events.Scalars("train/loss")
    n_train = json.loads((run / "graft.json").read_text())["data"]["n_train"]
    assert len(steps) == 3 * -(-n_train // 16)  # one per optimiser step
    assert [e.step for e in steps] == list(range(1, len(steps) + 1))
    lr_tags = {t for t in tags["scalars"] if t.startswith("lr/")}
    assert "lr/head" in lr_tags and len([t for t in lr_tags if t.startswith("lr/backbone.")]) >= 2  # every group
    assert {"confusion", "curves"} <= set(tags["images"])

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=(run / "mlruns").resolve().as_uri())
    experiment = client.get_experiment_by_name("zoo")
    assert experiment is not None
    (mlrun,) = client.search_runs([experiment.experiment_id])
    assert mlrun.data.params["policy"] == "top-k" and mlrun.data.params["epochs"] == "3"
    for key in ("val_loss", "val_accuracy", "train_loss"):
        history = sorted(client.get_metric_history(mlrun.info.run_id, f"epoch/{key}"), key=lambda m: m.step)
        assert [m.value for m in history] == pytest.approx([row[key] for row in rows], rel=1e-6), key
    assert len(client.get_metric_history(mlrun.info.run_id, "train/loss")) == len(steps)
    artifacts = {a.path for a in client.list_artifacts(mlrun.info.run_id)}
    assert {"confusion.png", "curves.png"} <= artifacts


def test_unknown_or_missing_trackers_are_one_error(tiny_plugin: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    result = CliRunner().invoke(cli, ["tune", tiny_plugin, "tinydigits", "--log-with", "tensorbored",
                                      "--out", str(tmp_path / "a")])
    assert result.exit_code == 1 and "unknown tracker 'tensorbored'" in result.output
    from graftzoo.train import tracking

    monkeypatch.setitem(tracking.TRACKERS, "mlflow", ("graftzoo_test_no_such_module", "'graftzoo[mlflow]'"))
    result = CliRunner().invoke(cli, ["tune", tiny_plugin, "tinydigits", "--log-with", "mlflow",
                                      "--out", str(tmp_path / "b")])
    assert result.exit_code == 1 and "pip install 'graftzoo[mlflow]'" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "b").exists()

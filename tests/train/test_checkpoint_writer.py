"""The background checkpoint writer: the state as it was at the epoch's end, errors raised to the trainer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from graftzoo.train.checkpoint import CHECKPOINT, CheckpointWriter, load_checkpoint


def test_the_written_checkpoint_is_the_state_when_it_was_handed_over(tmp_path: Path) -> None:
    weight = torch.zeros(3, 4)
    moments = {"state": {0: {"exp_avg": torch.ones(2), "step": torch.tensor(1.0)}}, "param_groups": [{"lr": 0.1}]}
    history = [{"epoch": 1, "train_loss": 0.5}]
    order: list[str] = []
    writer = CheckpointWriter()
    writer.submit(tmp_path, {"epoch": 1, "model": {"w": weight}, "optimizer": moments, "history": history},
                  then=lambda: order.append("then" if (tmp_path / CHECKPOINT).is_file() else "too early"))
    weight.add_(5.0)  # the next training steps change the live tensors and containers in place
    moments["state"][0]["exp_avg"].mul_(3.0)
    moments["param_groups"][0]["lr"] = 9.0
    history.append({"epoch": 2})
    writer.wait()
    state = load_checkpoint(tmp_path)
    assert state is not None and order == ["then"]
    assert torch.equal(state["model"]["w"], torch.zeros(3, 4))
    assert torch.equal(state["optimizer"]["state"][0]["exp_avg"], torch.ones(2))
    assert state["optimizer"]["param_groups"][0]["lr"] == 0.1 and state["history"] == [{"epoch": 1, "train_loss": 0.5}]


def test_a_failed_write_is_raised_at_the_next_wait_and_only_once(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the run directory should be")
    writer = CheckpointWriter()
    writer.submit(blocked, {"epoch": 1, "optimizer": {}})
    with pytest.raises(OSError):
        writer.wait()
    writer.wait()  # reported once; the writer is usable again
    writer.submit(tmp_path, {"epoch": 2, "optimizer": {}})
    writer.submit(tmp_path, {"epoch": 3, "optimizer": {}})  # waits for the previous write first
    writer.wait()
    state = load_checkpoint(tmp_path)
    assert state is not None and state["epoch"] == 3


@pytest.mark.parametrize(("budget", "expected"), [(0, [1, 2, 3, 4, 5, 6]), (10**9, [1, 6])])
def test_short_epochs_are_checkpointed_within_a_time_budget(config: Any, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch, budget: int,
                                                            expected: list[int]) -> None:
    """A checkpoint costs at most 1/CHECKPOINT_BUDGET of the training time; the first and last epochs always have
    one, and metrics.jsonl still gets every epoch."""
    import json

    from graftzoo.train import engine

    written: list[int] = []
    submit = CheckpointWriter.submit

    def recorded(self: CheckpointWriter, out: Path, state: dict[str, Any], then: Any = None) -> None:
        written.append(state["epoch"])
        submit(self, out, state, then)

    monkeypatch.setattr(CheckpointWriter, "submit", recorded)
    monkeypatch.setattr(engine, "CHECKPOINT_BUDGET", budget)
    engine.train(config(policy="full", epochs=6, refit=False), tmp_path / "run", progress=False)
    assert written == expected  # (a complete run then removes its checkpoint)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4, 5, 6]


def test_an_interruption_says_how_many_epochs_the_checkpoint_holds(config: Any, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from graftzoo.errors import TrainingError
    from graftzoo.train import engine

    monkeypatch.setattr(engine, "CHECKPOINT_BUDGET", 10**9)  # only the first epoch's checkpoint before the stop
    fit_epoch = engine.Trainer.fit_epoch

    def interrupted_at_four(self: Any, epoch: int) -> Any:
        if epoch == 3:
            raise KeyboardInterrupt
        return fit_epoch(self, epoch)

    monkeypatch.setattr(engine.Trainer, "fit_epoch", interrupted_at_four)
    with pytest.raises(TrainingError, match=r"interrupted during epoch 4; 1 epoch\(s\) are checkpointed"):
        engine.train(config(policy="full", epochs=6, refit=False), tmp_path / "run", progress=False)
    state = load_checkpoint(tmp_path / "run")
    assert state is not None and state["epoch"] == 1
    from graftzoo.train.run import read_info

    info = read_info(tmp_path / "run")  # graft.json lists the epochs a resume keeps, as the checkpoint does
    assert info["status"] == "interrupted" and [r["epoch"] for r in info["epochs"]] == [1]

"""The background checkpoint writer: the state as it was at the epoch's end, errors raised to the trainer."""

from __future__ import annotations

from pathlib import Path

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

"""A frozen run holds no autograd state and no optimiser state for the backbone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from graftzoo.train.engine import Trainer
from graftzoo.train.plan import plan_run


def test_a_frozen_run_keeps_nothing_for_the_backbone(config: Any, tmp_path: Path) -> None:
    trainer = Trainer(plan_run(config(policy="frozen", epochs=1)), tmp_path / "run", progress=False)
    trainer.set_up()
    trainer.build()
    trainer.prepare_features()
    trainer.make_optimiser()
    backbone, head = trainer.model.backbone, trainer.model.head
    assert not any(p.requires_grad for p in backbone.parameters())
    optimised = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert optimised == {id(p) for p in head.parameters()}
    # features: plain tensors without a graph (not inference tensors: the head trains on them)
    assert trainer.val_feats.grad_fn is None and not trainer.val_feats.requires_grad
    assert not trainer.val_feats.is_inference()
    trainer.write_start()
    trainer.checkpoint(trainer.fit_epoch(0))
    assert all(p.grad is None for p in backbone.parameters())
    assert set(trainer.optimizer.state_dict()["state"]) == {0, 1}  # the head's weight and bias only

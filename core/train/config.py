"""The options of one training run, as stored in graft.json."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass
class TrainConfig:
    """Everything ``graft tune`` was asked to do; enough to repeat or resume the run."""

    model: str
    data: str
    policy: str = "frozen"
    head: str = "linear"
    lr: float = 1e-3
    lr_decay: float = 1.0
    weight_decay: float = 0.0
    dropout: float = 0.0
    l2sp: float = 0.0
    epochs: int = 10
    batch_size: int = 32
    image_size: int | None = None
    val_split: float = 0.2
    limit_per_class: int | None = None
    seed: int = 0
    early_stopping: int | None = None
    unfreeze: int | None = None
    unfreeze_every: int | None = None
    format: str | None = None
    skip_bad: bool = False
    pretrained: bool = True
    baseline: str | None = None
    hidden: int = 256
    lora_rank: int = 8
    lora_alpha: int = 16
    #: experiment trackers (Accelerate's log_with: tensorboard, mlflow, trackio, wandb) and their project name
    log_with: list[str] = field(default_factory=list)
    project: str | None = None
    #: with MODEL a pushed run (hf://me/my-run): start from its head too (same labels only)
    init_head: bool = False
    #: adapter options beyond --image-size (e.g. max_length), passed to the backbone factory
    backbone_options: dict[str, Any] = field(default_factory=dict)
    #: loader options (text_column, label_column, ...), passed to the data loader
    data_options: dict[str, Any] = field(default_factory=dict)
    #: the head's own options (--head-option KEY=VALUE), typed from its factory's signature
    head_extra: dict[str, Any] = field(default_factory=dict)
    #: the policy's own options (--policy-option KEY=VALUE), typed from its factory's signature
    policy_extra: dict[str, Any] = field(default_factory=dict)

    def adapter_options(self) -> dict[str, Any]:
        """Options for the backbone factory (preprocessing overrides)."""
        opts = dict(self.backbone_options)
        if self.image_size is not None:
            opts["image_size"] = self.image_size
        return opts

    def policy_options(self) -> dict[str, Any]:
        """Options for the freeze-policy factory."""
        return {"unfreeze": self.unfreeze, "unfreeze_every": self.unfreeze_every,
                "lora_rank": self.lora_rank, "lora_alpha": self.lora_alpha, **self.policy_extra}

    def head_options(self) -> dict[str, Any]:
        """Options for the head factory."""
        return {"dropout": self.dropout, "hidden": self.hidden, **self.head_extra}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Inverse of ``to_dict``; unknown keys (from newer versions) are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

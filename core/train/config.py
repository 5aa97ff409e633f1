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
    #: ``--lr auto``: run a learning-rate range test first and train at the lr it suggests
    lr_auto: bool = False
    lr_decay: float = 1.0
    #: backbone lr = lr * this (top group); None: the policy family's default (lower than the head's)
    backbone_lr_scale: float | None = None
    weight_decay: float = 0.0
    dropout: float = 0.0
    l2sp: float = 0.0
    epochs: int = 10
    #: None: data-aware (``plan.auto_batch_size``: 32, smaller for small training sets); resolved before the run
    batch_size: int | None = None
    image_size: int | None = None
    val_split: float = 0.2
    limit_per_class: int | None = None
    seed: int = 0
    early_stopping: int | None = None
    #: what --early-stopping watches: loss (lower is better), accuracy or macro_f1 (higher is better)
    early_stopping_metric: str = "loss"
    #: frozen + linear head: "lbfgs" (converged logistic regression, C by cross-validation) or "sgd" (epochs of AdamW)
    probe: str = "lbfgs"
    #: lbfgs probe: its L2 strength (scikit-learn's C); None: chosen by cross-validation on the training split
    probe_c: float | None = None
    #: lbfgs probe: how cross-validation picks C: "lowest" held-out log-loss, "one-standard-error" or "accuracy"
    probe_rule: str = "lowest"
    #: none|light|strong or named transforms (comma-separated); None: the adapter's safe default
    augment: str | None = None
    #: frozen policy: cache this many augmented passes of the training data (None: 4 with --augment, else the
    #: adapter's default_views on small data; the run writes the count it used)
    augment_views: int | None = None
    #: evaluation centre-crop fraction (vision); None: the model's own
    crop_pct: float | None = None
    #: "auto": inverse-frequency class weights when the classes are imbalanced; "none": plain loss
    class_weights: str = "auto"
    #: "shuffle": every training sample once an epoch; "balanced": each class drawn equally often an epoch
    sampler: str = "shuffle"
    label_smoothing: float = 0.0
    #: mixup / cutmix Beta alphas (0: off), the share of batches mixed and cutmix's share when both are on
    mixup: float = 0.0
    cutmix: float = 0.0
    mix_prob: float = 1.0
    mix_switch_prob: float = 0.5
    scheduler: str = "cosine"
    warmup_epochs: int = 0
    #: retrain on train+validation for the epoch count (probe: the C) chosen on validation; None: data-aware
    #: (``engine.refit_reason``: the frozen probe, where it costs one more fit, and few-shot classification data)
    refit: bool | None = None
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
    #: hardware (graftzoo.train.hardware): auto|cpu|cuda|mps; fp32|bf16|fp16 (None: bf16 on a GPU that has it,
    #: else fp32); DataLoader decoding workers (None: from the CPU count for extraction, 0 for training batches);
    #: optimiser step every grad_accum batches
    device: str = "auto"
    precision: str | None = None
    workers: int | None = None
    grad_accum: int = 1
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
        if self.augment is not None:
            opts["augment"] = self.augment
        if self.crop_pct is not None:
            opts["crop_pct"] = self.crop_pct
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

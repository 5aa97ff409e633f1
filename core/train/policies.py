"""Freeze policies: which parts of a model train, and when.

A freeze policy is registered through the ``register_freeze_policies`` hook::

    register("top-k", "graftzoo.train.policies:TopK", description="...")

The registered object is a factory (usually a ``FreezePolicy`` subclass) called
as ``factory(**options)`` with the user's options -- ``unfreeze`` (K, an int or
None), ``unfreeze_every`` (N epochs), ``lora_rank``, ``lora_alpha`` and any
future ones; a policy must accept and ignore options it does not use. The
engine then talks to the policy only through this interface:

``validate(model)``
    Raise ``OptionError`` when the options do not fit this model (e.g.
    ``--unfreeze`` larger than its number of groups). Called before anything
    is written.
``apply(model)``
    Called once on the fresh ``GraftModel`` (backbone + head) before the
    optimiser exists. Sets ``requires_grad`` on every parameter and may change
    the model's structure (``Lora`` injects adapters). The engine builds one
    optimiser group per backbone group (plus the head) from whatever exists
    after ``apply``; parameters that are frozen now but may train later stay
    in the optimiser with no gradient, so ``Gradual`` keeps one consistent
    optimiser and scheduler as groups join.
``on_epoch_start(model, epoch) -> bool``
    Called at the start of every epoch (0-based), also after a resume. May
    flip ``requires_grad`` of whole groups; returns True when it changed
    anything.
``train_groups(model) -> set[str]``
    Names of backbone groups that run in train mode this epoch. Every other
    group stays in eval mode, so BatchNorm statistics (and dropout) of frozen
    groups never change.
``caches_features``
    True when the backbone never changes, so the engine may compute its
    features once (``graftzoo.train.features``) and train the head on them.
``state_dict() / load_state_dict(state)``
    JSON-ready state stored in every checkpoint and in ``graft.json``.
``describe() -> str``
    One line for the console and the model card.

``options_used``
    The option names the policy reads (a set), or None to receive them all
    unchecked. ``graft tune`` refuses a non-default option that the chosen
    policy does not read (``--unfreeze`` with ``frozen``), so what a run
    stores is what it used. The conformance kit (``graftzoo.testing``) checks
    that a policy does what it says on a given model.
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import nn

from graftzoo.errors import OptionError
from graftzoo.train.model import GraftModel


def set_trainable(module: nn.Module, flag: bool) -> None:
    """Set ``requires_grad`` on every parameter of ``module``."""
    for p in module.parameters():
        p.requires_grad_(flag)


class FreezePolicy:
    """Base class: trains the head only; subclasses choose what else trains."""

    name: ClassVar[str] = "policy"
    caches_features: ClassVar[bool] = False
    #: the options this policy reads (None: undeclared, every option is passed unchecked)
    options_used: ClassVar[frozenset[str] | None] = None
    #: Default backbone lr as a fraction of the head's (``--backbone-lr-scale``): pretrained weights are
    #: already good and move less than a fresh head; adapters (LoRA) and biases (BitFit) start fresh or tiny.
    backbone_lr_scale: ClassVar[float] = 0.3

    def __init__(self, **options: Any) -> None:
        self.options = options

    def validate(self, model: GraftModel) -> None:
        """Raise ``OptionError`` if the options do not fit ``model``."""

    def apply(self, model: GraftModel) -> None:
        """Freeze the backbone, train the head (subclasses unfreeze more)."""
        set_trainable(model.backbone, False)
        set_trainable(model.head, True)

    def on_epoch_start(self, model: GraftModel, epoch: int) -> bool:
        """Change what trains at an epoch boundary; True if anything changed."""
        return False

    def train_groups(self, model: GraftModel) -> set[str]:
        """Backbone groups in train mode (BatchNorm statistics update, dropout on)."""
        return set()

    def state_dict(self) -> dict[str, Any]:
        """JSON-ready state for checkpoints."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``state_dict()``'s output."""

    def describe(self) -> str:
        """One line for people."""
        return self.name


class Frozen(FreezePolicy):
    """Feature extraction: the backbone is frozen in eval mode and its features are cached."""

    name = "frozen"
    options_used = frozenset()
    caches_features = True

    def describe(self) -> str:
        return "frozen backbone (feature extraction), head trains on cached features"


class Full(FreezePolicy):
    """Everything trains."""

    name = "full"
    options_used = frozenset()

    def apply(self, model: GraftModel) -> None:
        set_trainable(model, True)

    def train_groups(self, model: GraftModel) -> set[str]:
        return {name for name, _ in model.group_modules()}

    def describe(self) -> str:
        return "full fine-tuning"


def _group_count_check(model: GraftModel, k: int | None, option: str, policy: str) -> int:
    groups = [name for name, _ in model.group_modules()]
    if k is None:
        raise OptionError(f"policy {policy!r} needs {option} (1..{len(groups)}; groups: {', '.join(groups)})")
    if not 1 <= int(k) <= len(groups):
        raise OptionError(f"{option} {k} is out of range: this backbone has {len(groups)} groups "
                            f"({', '.join(groups)}); use 1..{len(groups)}, or --policy full / frozen")
    return int(k)


class TopK(FreezePolicy):
    """The last ``unfreeze`` groups (and the head) train; earlier groups stay frozen in eval mode."""

    name = "top-k"
    options_used = frozenset({"unfreeze"})

    def validate(self, model: GraftModel) -> None:
        _group_count_check(model, self.options.get("unfreeze"), "--unfreeze", self.name)

    def _top(self, model: GraftModel) -> list[tuple[str, nn.Module]]:
        k = int(self.options["unfreeze"])
        return model.group_modules()[-k:]

    def apply(self, model: GraftModel) -> None:
        super().apply(model)
        for _, module in self._top(model):
            set_trainable(module, True)

    def train_groups(self, model: GraftModel) -> set[str]:
        return {name for name, _ in self._top(model)}

    def describe(self) -> str:
        return f"top-k: last {self.options.get('unfreeze')} groups and the head train"


class Gradual(FreezePolicy):
    """Head first; then one more group from the top every ``unfreeze_every`` epochs."""

    name = "gradual"
    options_used = frozenset({"unfreeze", "unfreeze_every"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.unfrozen = 0

    def validate(self, model: GraftModel) -> None:
        every = self.options.get("unfreeze_every") or 1
        if int(every) < 1:
            raise OptionError(f"--unfreeze-every must be at least 1 epoch, got {every}")
        if self.options.get("unfreeze") is not None:
            _group_count_check(model, self.options["unfreeze"], "--unfreeze", self.name)

    def _limit(self, model: GraftModel) -> int:
        limit = self.options.get("unfreeze")
        return int(limit) if limit is not None else len(model.group_modules())

    def on_epoch_start(self, model: GraftModel, epoch: int) -> bool:
        every = int(self.options.get("unfreeze_every") or 1)
        want = min(epoch // every, self._limit(model))
        changed = want != self.unfrozen
        self.unfrozen = want
        groups = model.group_modules()
        for i, (_, module) in enumerate(groups):
            set_trainable(module, i >= len(groups) - self.unfrozen)
        return changed

    def train_groups(self, model: GraftModel) -> set[str]:
        groups = model.group_modules()
        return {name for name, _ in groups[len(groups) - self.unfrozen:]} if self.unfrozen else set()

    def state_dict(self) -> dict[str, Any]:
        return {"unfrozen": self.unfrozen}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.unfrozen = int(state.get("unfrozen", 0))

    def describe(self) -> str:
        return f"gradual: one more group every {self.options.get('unfreeze_every') or 1} epoch(s)"


def is_bias(param_name: str) -> bool:
    """A bias term: ``...bias`` of Linear/Conv/norms, ``bias_ih_l0``/``bias_hh_l0`` of LSTM/GRU/RNN."""
    return param_name.rsplit(".", 1)[-1].startswith("bias")


class BitFit(FreezePolicy):
    """Only bias terms of the backbone (and the whole head) train; BatchNorm statistics stay fixed."""

    name = "bitfit"
    options_used = frozenset()
    backbone_lr_scale = 1.0

    def apply(self, model: GraftModel) -> None:
        super().apply(model)
        for pname, p in model.backbone.named_parameters():
            if is_bias(pname):
                p.requires_grad_(True)

    def validate(self, model: GraftModel) -> None:
        if not any(is_bias(n) for n, _ in model.backbone.named_parameters()):
            raise OptionError("policy 'bitfit': this backbone has no bias parameters; use top-k or lora")

    def describe(self) -> str:
        return "bitfit: backbone biases and the head train"


class Lora(FreezePolicy):
    """Low-rank adapters (peft) on ``backbone.lora_targets()``; base weights frozen, adapters + head train."""

    name = "lora"
    options_used = frozenset({"lora_rank", "lora_alpha"})
    backbone_lr_scale = 1.0

    def validate(self, model: GraftModel) -> None:
        if not model.backbone.lora_targets():
            raise OptionError(f"policy 'lora': {type(model.backbone).__name__} declares no lora_targets(); "
                                "use top-k or bitfit")

    def apply(self, model: GraftModel) -> None:
        inject_lora(model, int(self.options.get("lora_rank") or 8), int(self.options.get("lora_alpha") or 16))
        set_trainable(model.backbone, False)
        for pname, p in model.backbone.named_parameters():
            if "lora_" in pname:
                p.requires_grad_(True)
        set_trainable(model.head, True)

    def describe(self) -> str:
        return f"lora: rank-{self.options.get('lora_rank') or 8} adapters on the backbone, head trains"


def inject_lora(model: GraftModel, rank: int, alpha: int) -> None:
    """Insert peft LoRA adapters into ``model.backbone`` in place (also used to rebuild saved runs)."""
    from peft import LoraConfig, inject_adapter_in_model

    if getattr(model.backbone, "_graftzoo_lora", False):
        return
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=model.backbone.lora_targets(),
                        bias="none")
    inject_adapter_in_model(config, model.backbone)
    setattr(model.backbone, "_graftzoo_lora", True)  # noqa: B010 - nn.Module attribute typing

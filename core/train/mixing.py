"""mixup / cutmix: training batches blended in pairs, trained on soft targets; the loss that reads both kinds.

``--mixup ALPHA`` and ``--cutmix ALPHA`` (with ``--mix-prob`` and
``--mix-switch-prob``) ask the backbone adapter for a batch mixer
(``Backbone.batch_mixer``): the vision plugin returns timm's own ``Mixup``,
other modalities have none and the options are refused with one line. The
mixer turns a batch and its class ids into a blended batch and soft targets
``[B, C]`` (label smoothing is folded into them, as timm does), and
``cross_entropy`` scores soft targets as timm's ``SoftTargetCrossEntropy``
does. Validation never mixes: it stays hard-label.

Mixing needs input batches, so it is refused for a policy that trains its
head on cached features (``frozen``): a blend of two cached feature vectors
is not the feature of a blended image, and cutmix has no meaning there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import torch

from graftzoo.errors import OptionError

if TYPE_CHECKING:
    from graftzoo.plugins import Registration
    from graftzoo.registry import ModelEntry
    from graftzoo.train.backbone import Backbone, BatchMixer
    from graftzoo.train.config import TrainConfig

#: TrainConfig fields of mixing: field -> (command-line flag, default).
MIX_OPTIONS: dict[str, tuple[str, float]] = {
    "mixup": ("--mixup", 0.0),
    "cutmix": ("--cutmix", 0.0),
    "mix_prob": ("--mix-prob", 1.0),
    "mix_switch_prob": ("--mix-switch-prob", 0.5),
}

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def mixing(config: TrainConfig) -> bool:
    """Whether the run mixes its training batches (``--mixup`` or ``--cutmix`` above 0)."""
    return config.mixup > 0 or config.cutmix > 0


def mix_settings(config: TrainConfig) -> dict[str, float]:
    """What the adapter's mixer is asked for: alphas, probabilities and the label smoothing of the targets."""
    return {"mixup": config.mixup, "cutmix": config.cutmix, "prob": config.mix_prob,
            "switch_prob": config.mix_switch_prob, "label_smoothing": config.label_smoothing}


def check_mix_options(config: TrainConfig, policy: Registration, task: str) -> None:
    """Refuse mixing a run cannot do (cached features, token tasks) and mixing knobs without mixing."""
    for fld in ("mixup", "cutmix"):
        if getattr(config, fld) < 0:
            raise OptionError(f"{MIX_OPTIONS[fld][0]} {getattr(config, fld)}: the Beta alpha must be 0 (off) or "
                              "positive, e.g. 0.2")
    if not mixing(config):
        for fld in ("mix_prob", "mix_switch_prob"):
            flag, default = MIX_OPTIONS[fld]
            if getattr(config, fld) != default:
                raise OptionError(f"{flag} {getattr(config, fld)} applies only with --mixup or --cutmix: add one "
                                  "or drop it")
        return
    flag = _mix_flag(config)
    if getattr(policy.resolve(), "caches_features", False):
        raise OptionError(f"{flag} does not apply to policy {policy.name!r}: it trains its head on cached features, "
                          "where blending images (or pasting patches) cannot happen; use --augment with "
                          "--augment-views for a frozen run, or choose a policy that trains the backbone "
                          "(full, top-k, gradual, lora, bitfit)")
    if task != "classification":
        raise OptionError(f"{flag} does not apply to {task}: mixing blends whole samples under one label each; "
                          "drop it")


def make_mixer(backbone: Backbone, config: TrainConfig, num_classes: int, entry: ModelEntry) -> BatchMixer | None:
    """The adapter's mixer for the run, None when it does not mix; an adapter without one is refused."""
    if not mixing(config):
        return None
    mixer = backbone.batch_mixer(mix_settings(config), num_classes)
    if mixer is None:
        raise OptionError(f"{_mix_flag(config)}: {entry.id} is a {entry.modality} model whose adapter "
                          f"{entry.backbone!r} has no batch mixer (mixup and cutmix come with image adapters such as "
                          "timm's); drop the option")
    return mixer


def _mix_flag(config: TrainConfig) -> str:
    return " ".join(f"{MIX_OPTIONS[f][0]} {getattr(config, f)}" for f in ("mixup", "cutmix") if getattr(config, f))


def cross_entropy(weight: torch.Tensor | None, smoothing: float, token: bool = False) -> Loss:
    """The training loss: cross-entropy on class ids (``--label-smoothing``, ``--class-weights``; -100 ignored in
    token tasks) or, for mixed batches, on soft targets ``[B, C]`` as ``-(t * log_softmax(logits)).sum(-1)``
    (times the class weight of each column), averaged over the batch. Soft targets already carry the
    smoothing, so it is not applied twice."""

    def loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if y.is_floating_point():  # soft targets from a mixer
            return torch.nn.functional.cross_entropy(logits.float(), y.float(), weight=weight)
        flat, fy = (logits.flatten(0, -2), y.flatten()) if token else (logits, y)
        return torch.nn.functional.cross_entropy(flat.float(), fy, weight=weight, ignore_index=-100,
                                                 label_smoothing=smoothing)

    return loss


def hard_labels(y: torch.Tensor) -> torch.Tensor:
    """Class ids of a batch's targets: the ids themselves, or each soft target's largest share."""
    return y.argmax(-1) if y.is_floating_point() else y


def describe(config: TrainConfig) -> str | None:
    """The mixing of a run in words (model card), None without mixing."""
    if not mixing(config):
        return None
    parts = [f"{k} alpha {getattr(config, k)}" for k in ("mixup", "cutmix") if getattr(config, k)]
    extra: list[Any] = [f"applied to {config.mix_prob:.0%} of batches"]
    if config.mixup and config.cutmix:
        extra.append(f"cutmix chosen for {config.mix_switch_prob:.0%} of them")
    return f"{' + '.join(parts)} ({', '.join(extra)}; timm's Mixup, soft-target cross-entropy)"


class MixedBatches:
    """A training loader whose batches go through ``mixer`` (as they come; None: unchanged), re-iterable."""

    def __init__(self, loader: Iterable[tuple[Any, torch.Tensor]], mixer: BatchMixer | None) -> None:
        self.loader, self.mixer = loader, mixer

    def __iter__(self) -> Iterator[tuple[Any, torch.Tensor]]:
        for batch, y in self.loader:
            yield (batch, y) if self.mixer is None else self.mixer(batch, y)

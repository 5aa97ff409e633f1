"""Deliberately broken plugin pieces: each breaks one contract the conformance kit must catch."""

from __future__ import annotations

import random
from typing import Any

import torch
from torch import nn

from graftzoo.testing._reference import ReferenceBackbone
from graftzoo.train.model import GraftModel
from graftzoo.train.policies import TopK


class WrongFeatureDim(ReferenceBackbone):
    """Claims 7 features; forward() returns 6."""

    feature_dim = 7


class ParamInNoGroup(ReferenceBackbone):
    """A scale parameter that affects the features but belongs to no group."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, batch: Any) -> torch.Tensor:
        return super().forward(batch) * self.scale


class ParamInTwoGroups(ReferenceBackbone):
    def groups(self) -> list[tuple[str, nn.Module]]:
        return [*super().groups(), ("again", self.top)]


class GroupsReversed(ReferenceBackbone):
    def groups(self) -> list[tuple[str, nn.Module]]:
        return list(reversed(super().groups()))


class UnusedGroup(ReferenceBackbone):
    """A classifier left over from pretraining, listed as a group but not used by forward()."""

    def __init__(self) -> None:
        super().__init__()
        self.classifier = nn.Linear(6, 10)

    def groups(self) -> list[tuple[str, nn.Module]]:
        return [*super().groups(), ("classifier", self.classifier)]


class TuplePreprocessing(ReferenceBackbone):
    def preprocessing(self) -> dict[str, Any]:
        return {"image_size": 8, "mean": (0.0, 0.0, 0.0)}


class NoisyEval(ReferenceBackbone):
    """Dropout applied unconditionally: eval features are not reproducible, so cached features lie."""

    def forward(self, batch: Any) -> torch.Tensor:
        return nn.functional.dropout(super().forward(batch), 0.5, training=True)


class UnregisteredState(ReferenceBackbone):
    """Keeps a tensor outside parameters and buffers: it is not saved, so a reload changes the features."""

    built = 0

    def __init__(self) -> None:
        super().__init__()
        UnregisteredState.built += 1
        self.offset = torch.full((6,), float(UnregisteredState.built))  # differs between instances, like random init

    def forward(self, batch: Any) -> torch.Tensor:
        return super().forward(batch) + self.offset


class LeakyTopK(TopK):
    """Says top-k, but forgets to freeze the lower groups."""

    name = "leaky-top-k"

    def apply(self, model: GraftModel) -> None:
        for p in model.parameters():
            p.requires_grad_(True)


class DriftingTopK(TopK):
    """Freezes the right weights but puts every group in train mode, so frozen BatchNorm statistics drift."""

    name = "drifting-top-k"

    def train_groups(self, model: GraftModel) -> set[str]:
        return {name for name, _ in model.group_modules()}


def head_without_dropout(feature_dim: int, num_outputs: int, **_: Any) -> nn.Module:
    return nn.Linear(feature_dim, num_outputs)


def head_without_options(feature_dim: int, num_outputs: int, dropout: float = 0.0) -> nn.Module:
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(feature_dim, num_outputs))


class FusedLoraBypass(ReferenceBackbone):
    """LoRA targets inside nn.TransformerEncoderLayer, whose eval fast path reads linear1.weight directly."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.TransformerEncoderLayer(6, nhead=2, dim_feedforward=12, dropout=0.0, batch_first=True)

    def groups(self) -> list[tuple[str, nn.Module]]:
        return [*super().groups(), ("encoder", self.encoder)]

    def forward(self, batch: Any) -> torch.Tensor:
        tokens = super().forward(batch)[:, None, :].expand(-1, 3, -1)
        out: torch.Tensor = self.encoder(tokens).mean(dim=1)
        return out

    def lora_targets(self) -> list[str]:
        return ["linear1", "linear2"]


class HardTargetMixer(ReferenceBackbone):
    """A batch mixer that blends the inputs but hands back the class ids: the loss would ignore the blend."""

    def batch_mixer(self, settings: Any, num_classes: int) -> Any:
        return lambda batch, y: (0.5 * batch + 0.5 * batch.flip(0), y)


class UnseededMixer(ReferenceBackbone):
    """A batch mixer drawing from a generator of its own: a resumed epoch would mix differently."""

    def batch_mixer(self, settings: Any, num_classes: int) -> Any:
        rng = random.Random()

        def mix(batch: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            lam = rng.random()
            soft = nn.functional.one_hot(y, num_classes).float()
            return lam * batch + (1 - lam) * batch.flip(0), lam * soft + (1 - lam) * soft.flip(0)

        return mix


class EvenOnlyMixer(ReferenceBackbone):
    """timm's Mixup used as it comes: it refuses the odd last batch of an epoch."""

    def batch_mixer(self, settings: Any, num_classes: int) -> Any:
        from timm.data import Mixup

        return Mixup(mixup_alpha=0.4, num_classes=num_classes, label_smoothing=0.0)


class FixedAugmentation(ReferenceBackbone):
    """Asks for augmented views of a frozen run, but its training collation (a fixed flip) is the same for every
    seed: the views would repeat one set of features."""

    default_views = 4


class UnsavedFineTuning(ReferenceBackbone):
    """Changes its pipeline for fine-tuning without returning the option: a saved run would rebuild another one."""

    def __init__(self) -> None:
        super().__init__()
        self.tuned = False

    def fine_tuning(self) -> dict[str, Any]:
        self.tuned = True
        return {}

    def preprocessing(self) -> dict[str, Any]:
        return {**super().preprocessing(), "crop": 1.0 if self.tuned else 0.9}

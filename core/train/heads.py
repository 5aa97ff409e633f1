"""Built-in heads: what sits on top of a backbone's features.

Every head factory is called as ``factory(feature_dim, num_outputs, **options)``
and must accept (and ignore) options it does not use, so that one set of
command-line options (``--dropout``, ``--hidden``) serves every head. A head
maps ``[B, D]`` to ``[B, C]`` (classification) or ``[B, T, D]`` to
``[B, T, C]`` (token classification): ``nn.Linear`` works on both.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def linear_head(feature_dim: int, num_outputs: int, dropout: float = 0.0, **_: Any) -> nn.Module:
    """One linear layer (a linear probe), with optional dropout on the features."""
    _check(feature_dim, num_outputs, dropout)
    layers: list[nn.Module] = [nn.Dropout(dropout)] if dropout > 0 else []
    layers.append(nn.Linear(feature_dim, num_outputs))
    return nn.Sequential(*layers)


def mlp_head(feature_dim: int, num_outputs: int, hidden: int = 256, dropout: float = 0.0, **_: Any) -> nn.Module:
    """Linear -> GELU -> dropout -> linear; ``hidden`` units in the middle."""
    _check(feature_dim, num_outputs, dropout)
    if int(hidden) <= 0:
        raise ValueError(f"mlp head: hidden must be positive, got {hidden}")
    return nn.Sequential(
        nn.Dropout(dropout) if dropout > 0 else nn.Identity(),
        nn.Linear(feature_dim, int(hidden)),
        nn.GELU(),
        nn.Dropout(dropout) if dropout > 0 else nn.Identity(),
        nn.Linear(int(hidden), num_outputs),
    )


class PrototypeHead(nn.Module):
    """Scaled cosine similarity to one prototype per class (few-shot: prototypes start as class means).

    ``fit_prototypes`` sets each prototype to the mean of its class's features,
    which is a complete classifier on its own (nearest class centroid by
    cosine); a fine-tuning policy then trains prototypes, scale and backbone together.
    """

    def __init__(self, feature_dim: int, num_outputs: int, scale: float = 10.0) -> None:
        super().__init__()
        self.prototypes = nn.Parameter(torch.randn(num_outputs, feature_dim) * 0.01)
        self.log_scale = nn.Parameter(torch.tensor(float(scale)).log())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``scale * cos(x, prototype_c)``."""
        sims = nn.functional.normalize(x, dim=-1) @ nn.functional.normalize(self.prototypes, dim=-1).T
        return sims * self.log_scale.exp()

    @torch.no_grad()
    def fit_prototypes(self, features: torch.Tensor, targets: torch.Tensor) -> None:
        """Each prototype := the mean of its class's L2-normalised features (a class without samples keeps its)."""
        z = nn.functional.normalize(features.float(), dim=-1)
        for c in range(self.prototypes.shape[0]):
            rows = z[targets == c]
            if len(rows):
                self.prototypes[c] = rows.mean(0).to(self.prototypes)


def prototype_head(feature_dim: int, num_outputs: int, **_: Any) -> nn.Module:
    """Cosine similarity to class prototypes (class means), for few-shot data."""
    _check(feature_dim, num_outputs, 0.0)
    return PrototypeHead(feature_dim, num_outputs)


def token_head(feature_dim: int, num_outputs: int, dropout: float = 0.0, **_: Any) -> nn.Module:
    """Per-token linear classifier for ``[B, T, D]`` token features (NER, tagging)."""
    return linear_head(feature_dim, num_outputs, dropout=dropout)


def _check(feature_dim: int, num_outputs: int, dropout: float) -> None:
    if feature_dim <= 0 or num_outputs <= 0:
        raise ValueError(f"head needs positive sizes, got feature_dim={feature_dim}, num_outputs={num_outputs}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")

"""The backbone contract every adapter implements.

A backbone is the pretrained network without its original classifier (the
seeds' "remove the output layer"): it maps a batch to pooled features
``[B, feature_dim]`` and says how it is layered, from input to output, so that
freeze policies can talk in groups whatever the architecture.

Adapters are registered with ``register_backbones``::

    register("mynet", "graftzoo_mynet.backbone:create", modality="vision")

and called as ``factory(entry, weights, options)``: ``entry`` is the
``ModelEntry``; ``weights`` the local path the source resolved to (a file or a
directory), or None for random initialisation (``--no-pretrained``, and
rebuilding a saved run before its own weights are loaded); ``options`` the
user's preprocessing overrides (e.g. ``{"image_size": 96}``), stored in the run
so that predict/evaluate rebuild exactly the same input pipeline.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from graftzoo.registry import ModelEntry


class Backbone(nn.Module):
    """Base class for adapters: pooled features, ordered groups, preprocessing."""

    modality: str = "vision"
    feature_dim: int = 0
    #: True for CNNs, where channels_last memory format pays off on CPU.
    channels_last: bool = False
    #: True when ``forward_tokens`` is implemented (token classification).
    supports_tokens: bool = False
    #: Augmented views (``collate(train=True)`` passes) a frozen run on small data caches when the user sets
    #: neither ``--augment`` nor ``--augment-views``. 0, the default, is the linear-probe protocol (plain
    #: features only); an adapter whose own augmentation is known to help a probe on its features sets a count
    #: (the speech adapters: noise, as speaker-recognition back-ends are trained on noise-augmented embeddings).
    default_views: int = 0

    def groups(self) -> list[tuple[str, nn.Module]]:
        """Layer groups from input to output; every parameter is in exactly one."""
        raise NotImplementedError

    def forward(self, batch: Any) -> torch.Tensor:
        """Pooled features ``[B, feature_dim]``."""
        raise NotImplementedError

    def forward_tokens(self, batch: Any) -> torch.Tensor:
        """Per-token (per-word, after sub-word alignment) features ``[B, T, feature_dim]``."""
        raise NotImplementedError(f"{type(self).__name__} has no token features")

    def preprocessing(self) -> dict[str, Any]:
        """JSON-ready description of the input pipeline (size, mean/std, tokenizer, sample rate...)."""
        raise NotImplementedError

    def collate(self, samples: list[Any], train: bool) -> Any:
        """Turn raw samples (paths, texts, arrays) into a batch for ``forward``.

        ``train`` switches on augmentation; eval collation is deterministic.
        The result is a tensor or a dict of tensors (moved to the device by
        the engine).
        """
        raise NotImplementedError

    def token_labels(self, batch: Any, word_labels: list[list[int]]) -> torch.Tensor:
        """Align word-level label ids to the positions ``forward_tokens`` returns ([B, T], -100 = ignore)."""
        raise NotImplementedError(f"{type(self).__name__} has no token features")

    def lora_targets(self) -> list[str]:
        """Module name patterns that LoRA adapters attach to (peft ``target_modules``)."""
        return []

    def extra_files(self) -> dict[str, Path]:
        """Files a run must keep to rebuild the input pipeline offline (e.g. tokenizer files)."""
        return {}

    def fine_tuning(self) -> dict[str, Any]:
        """Adjust the input pipeline for a backbone whose weights will train on the user's data.

        The engine calls this once, before any sample is transformed, when the freeze policy trains
        the backbone (every policy but one that caches features). An adapter whose best pipeline
        differs between a frozen and a fine-tuned backbone changes it here (the vision adapter's
        evaluation crop) and returns the options that reproduce the change: they are stored with the
        run's backbone options, so evaluate, predict and export rebuild the same pipeline. Options the
        user gave must win. Default: no change.
        """
        return {}

    def batch_mixer(self, settings: Mapping[str, float], num_classes: int) -> BatchMixer | None:
        """mixup/cutmix of training batches, or None when the modality has none (the run refuses the options).

        ``settings``: ``mixup`` and ``cutmix`` (Beta alphas, 0 = off), ``prob`` (share of batches mixed),
        ``switch_prob`` (cutmix's share when both are on), ``label_smoothing``. The mixer takes a collated
        training batch and its class ids ``[B]`` and returns the mixed batch and soft targets ``[B, C]``
        (rows summing to 1), drawing from torch's generator so a run's seed and resume hold.
        """
        return None


BatchMixer = Callable[[Any, torch.Tensor], tuple[Any, torch.Tensor]]
BackboneFactory = Callable[["ModelEntry", "Path | None", Mapping[str, Any]], Backbone]

"""mixup / cutmix of image batches through timm's own ``Mixup`` (``--mixup``, ``--cutmix``).

timm draws its Beta samples and cutmix boxes from numpy's global generator;
the mixer seeds a private draw from torch's generator (seeded per epoch by the
engine) so mixing follows ``--seed`` and a resumed epoch, and leaves numpy's
state as it found it. ``Mixup`` refuses odd batches (a last, partial batch):
the even part is mixed and the odd sample keeps its own, smoothed label.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch


class TimmMixer:
    """Batch-mode mixup/cutmix: ``(images [B, 3, H, W], class ids [B]) -> (mixed images, soft targets [B, C])``."""

    def __init__(self, settings: Mapping[str, float], num_classes: int) -> None:
        from timm.data import Mixup

        self.num_classes = num_classes
        self.smoothing = float(settings.get("label_smoothing", 0.0))
        self.mixup = Mixup(mixup_alpha=float(settings.get("mixup", 0.0)),
                           cutmix_alpha=float(settings.get("cutmix", 0.0)),
                           prob=float(settings.get("prob", 1.0)), switch_prob=float(settings.get("switch_prob", 0.5)),
                           mode="batch", label_smoothing=self.smoothing, num_classes=num_classes)

    def __call__(self, images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from timm.data.mixup import mixup_target

        state = np.random.get_state()
        np.random.seed(int(torch.randint(0, 2**31 - 1, (1,)).item()))
        try:
            even = len(images) - len(images) % 2
            mixed, soft = self.mixup(images[:even].clone(), targets[:even])
        finally:
            np.random.set_state(state)
        if even == len(images):
            return mixed, soft
        rest = mixup_target(targets[even:], self.num_classes, 1.0, self.smoothing).to(soft.dtype)
        return torch.cat([mixed, images[even:]]), torch.cat([soft, rest])

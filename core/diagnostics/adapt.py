"""Unsupervised test-time adaptation of a trained model to a new domain: AdaBN and TENT.

Both use unlabelled target batches only.

- AdaBN (Li et al. 2016): BatchNorm running statistics are re-estimated on the
  target data; no weight changes. Covariate shift in a CNN shows up largely as
  shifted activation statistics, which this undoes.
- TENT (Wang et al., ICLR 2021): the affine parameters (weight, bias) of the
  normalisation layers are updated to minimise the entropy of the model's
  predictions on target batches, BatchNorm normalising with the batch's own
  statistics as in the paper. Everything else stays fixed. Because a saved run
  is used in eval mode, the running statistics are then re-estimated on the
  target data (AdaBN) so that inference normalises as TENT's updates assumed.

``model(batch)`` must return logits ``[B, C]``; pass ``forward`` when the model
needs something else (e.g. a dict batch).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from graftzoo.errors import TrainingError

if TYPE_CHECKING:
    import torch
    from torch import nn
    from torch.nn.modules.batchnorm import _BatchNorm

Forward = Callable[["nn.Module", Any], "torch.Tensor"]


def _call(model: nn.Module, batch: Any) -> torch.Tensor:
    out: torch.Tensor = model(batch)
    return out


def batchnorm_layers(model: nn.Module) -> list[_BatchNorm]:
    """BatchNorm layers (1d/2d/3d, sync) that keep running statistics."""
    from torch.nn.modules.batchnorm import _BatchNorm

    return [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]


def norm_layers(model: nn.Module) -> list[nn.Module]:
    """Normalisation layers with affine parameters: BatchNorm, LayerNorm, GroupNorm, InstanceNorm."""
    from torch import nn
    from torch.nn.modules.batchnorm import _BatchNorm
    from torch.nn.modules.instancenorm import _InstanceNorm

    kinds = (_BatchNorm, _InstanceNorm, nn.LayerNorm, nn.GroupNorm)
    return [m for m in model.modules() if isinstance(m, kinds) and getattr(m, "weight", None) is not None]


def _affine(layer: nn.Module) -> list[torch.nn.Parameter]:
    """The scale and shift of a normalisation layer (whichever it has)."""
    from torch.nn import Parameter

    return [p for p in (getattr(layer, "weight", None), getattr(layer, "bias", None)) if isinstance(p, Parameter)]


def adabn(model: nn.Module, batches: Iterable[Any], forward: Forward | None = None) -> int:
    """Replace every BatchNorm layer's running mean/var by the statistics of ``batches``.

    Uses a cumulative average over all batches (momentum None), so the result
    does not depend on batch order. Leaves the model in eval mode and returns
    the number of layers updated; raises ``TrainingError`` when the model has
    no BatchNorm (use TENT for LayerNorm models).
    """
    import torch

    call = forward or _call
    layers = batchnorm_layers(model)
    if not layers:
        raise TrainingError(f"{type(model).__name__} has no BatchNorm layers to re-estimate; "
                            "AdaBN only adapts BatchNorm models (try --method tent)")
    momenta = [m.momentum for m in layers]
    model.eval()  # dropout and every other layer stay in inference mode
    for m in layers:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    seen = 0
    try:
        with torch.no_grad():
            for batch in batches:
                call(model, batch)
                seen += 1
    finally:
        for m, momentum in zip(layers, momenta, strict=True):
            m.momentum = momentum
        model.eval()
    if seen == 0:
        raise TrainingError("AdaBN got no target batches; the target data is empty")
    return len(layers)


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Shannon entropy (nats) of softmax(logits), per row."""
    log_p = logits.log_softmax(dim=1)
    return -(log_p.exp() * log_p).sum(dim=1)


def mean_entropy(model: nn.Module, batches: Iterable[Any], forward: Forward | None = None) -> float:
    """Mean prediction entropy of the model in eval mode over ``batches``."""
    import torch

    call = forward or _call
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in batches:
            h = entropy(call(model, batch).float())
            total += float(h.sum())
            count += h.numel()
    return total / max(count, 1)


def tent(model: nn.Module, batches: Iterable[Any], steps: int = 1, lr: float = 1e-3,
         forward: Forward | None = None) -> dict[str, Any]:
    """Minimise prediction entropy on ``batches`` by updating normalisation affine parameters only.

    ``batches`` must be re-iterable (a list or a DataLoader): it is read
    ``steps`` times, one optimiser step per batch (Adam, ``lr``), then once
    more to re-estimate BatchNorm statistics. Returns the number of parameters
    updated and the mean entropy per pass. Leaves the model in eval mode.
    """
    import torch

    call = forward or _call
    layers = norm_layers(model)
    if not layers:
        raise TrainingError(f"{type(model).__name__} has no normalisation layers with affine parameters; "
                            "TENT has nothing to adapt")
    params = [p for m in layers for p in _affine(m)]
    flags = {p: p.requires_grad for p in model.parameters()}
    for p in model.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    bns = set(batchnorm_layers(model))
    optimiser = torch.optim.Adam(params, lr=lr)
    history: list[float] = []
    try:
        model.eval()
        for m in bns:
            m.train()  # normalise with the target batch's own statistics (TENT)
        for _ in range(steps):
            total, count = 0.0, 0
            for batch in batches:
                h = entropy(call(model, batch).float())
                loss = h.mean()
                optimiser.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]
                optimiser.step()
                total += float(h.detach().sum())
                count += h.numel()
            if count == 0:
                raise TrainingError("TENT got no target batches; the target data is empty")
            history.append(total / count)
    finally:
        for p, flag in flags.items():
            p.requires_grad_(flag)
        model.eval()
    if bns:
        adabn(model, batches, forward)
    return {"parameters_updated": sum(p.numel() for p in params), "layers": len(layers),
            "entropy_per_step": history}

"""Steps of a run that are not epochs of SGD: converged heads, augmented feature views, the lr range test.

Kept out of the engine so that it only decides *when* they run:

* ``fit_cached_head``: on cached features a linear head is fitted to
  convergence (``graftzoo.train.probe``) and a prototype head set to class
  means, instead of a fixed number of Adam epochs;
* ``augmented_views``: ``--augment-views K`` passes of the training samples
  through the frozen backbone with the training (augmenting) collation, cached
  like the plain features, so a frozen run gets augmentation at cache speed;
* ``find_lr``: ``--lr auto``'s range test on the run's own loader and groups.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn

from graftzoo.data import LabelledData
from graftzoo.train import probe
from graftzoo.train.backbone import Backbone
from graftzoo.train.heads import PrototypeHead
from graftzoo.train.lr_find import RangeTest, range_test
from graftzoo.train.rows import Rows

#: ``--augment-views`` when a frozen run asks for augmentation without saying how many views.
DEFAULT_VIEWS = 4
#: Labelled samples up to which a run counts as small data: a frozen run gets the adapter's ``default_views``
#: (``views_wanted``), and ``--refit`` is on (``engine.refit_reason``).
SMALL_DATA = 1000


def fit_cached_head(head: nn.Module, features: Rows, targets: torch.Tensor, num_classes: int, *,
                    seed: int, class_weight: torch.Tensor | None, label_smoothing: float,
                    c: float | None = None, rule: str = probe.RULE,
                    groups: torch.Tensor | None = None) -> dict[str, Any] | None:
    """Fit ``head`` in place on cached training features (a linear probe with L2 strength ``c``, None: chosen
    by cross-validation under ``rule``, holding out each sample with its augmented views, ``groups``; streamed
    from the cache chunk by chunk); None when it is not a head fitted this way."""
    if isinstance(head, PrototypeHead):
        head.fit_prototypes(features.tensor(), targets)
        return {"method": "class-means (nearest prototype by cosine)"}
    layer = probe.linear_layer(head)
    if layer is None:
        return None
    fit = probe.fit_probe(features, targets, num_classes, c=c, seed=seed, class_weight=class_weight,
                          label_smoothing=label_smoothing, rule=rule, groups=groups)
    probe.load_into(layer, fit)
    return fit.to_dict()


def views_wanted(augment: str | None, views: int | None, *, default_views: int, n_train: int) -> int:
    """How many augmented views a frozen run caches: as asked (``--augment-views``); else ``DEFAULT_VIEWS`` when
    ``--augment`` names an augmentation; else, on small data (at most ``SMALL_DATA`` training samples), the
    adapter's ``default_views`` of its own default augmentation; else none.

    The adapter decides because the evidence differs by modality. A linear probe on vision features is fitted
    on plain features (CLIP's protocol), and on few-shot digits views of the default crops moved nothing
    (0.8715 plain, 0.8698 with 4 views, 0.8686 with 8; 1,697 held-out digits). Speaker-recognition back-ends
    are trained on noise-augmented embeddings (Snyder et al., 2018), and on the noisy speaker-ID bench (128
    training takes, 256 noisy held-out takes) 4 views of the speech adapter's default noise gave 0.9219
    against 0.7969. Above ``SMALL_DATA`` the extra extraction passes cost minutes for a gain that shrinks
    with the data; ``--augment-views K`` asks for them.
    """
    if views is not None:
        return views
    if augment is None:
        return default_views if n_train <= SMALL_DATA else 0
    return DEFAULT_VIEWS if augment.strip().lower() != "none" else 0


def augmented_views(backbone: Backbone, data: LabelledData, train_idx: list[int], views: int, *, key: str | None,
                    seed: int, batch_size: int, device: torch.device, progress: bool) -> list[Rows]:
    """The features of ``views`` augmented passes over the training samples, one row set per view (cached)."""
    from graftzoo.train.features import feature_rows

    subset = data.subset(train_idx)
    out: list[Rows] = []
    for view in range(views):
        torch.manual_seed(seed * 7919 + view)  # each view its own, reproducible draw
        view_key = None if key is None else f"{key}|augmented-view-{view}|seed-{seed}"
        out.append(feature_rows(backbone, subset, batch_size=batch_size, cache_key=view_key, device=device,
                                progress=progress, train=True))
    return out


def init_prototypes(model: nn.Module, data: LabelledData, train_idx: list[int], targets: list[int],
                    device: torch.device) -> None:
    """A prototype head on a trainable backbone starts from the pretrained features' class means."""
    from graftzoo.train.features import extract_features

    head = getattr(model, "head", None)
    if not isinstance(head, PrototypeHead):
        return
    feats = extract_features(model.backbone, data.subset(train_idx), device=device, progress=False)  # type: ignore[arg-type]
    head.fit_prototypes(feats, torch.tensor(targets))


def find_lr(module: nn.Module, groups: list[dict[str, Any]], loader: Iterable[Any],
            loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], device: torch.device) -> RangeTest:
    """Run the range test through ``module`` and restore its weights (and train/eval modes) afterwards."""
    state = copy.deepcopy(module.state_dict())
    modes = [m.training for m in module.modules()]

    def step(batch: Any, y: torch.Tensor) -> torch.Tensor:
        from graftzoo.train.features import to_device

        return loss_fn(module(to_device(batch, device)), y.to(device))

    try:
        return range_test(groups, loader, step)
    finally:
        module.load_state_dict(state)
        for m, mode in zip(module.modules(), modes, strict=True):
            m.training = mode


def head_logits(head: nn.Module, rows: Rows, device: torch.device | None = None) -> torch.Tensor:
    """``head``'s logits ``[n, outputs]`` (float32, CPU) on cached feature rows, chunk by chunk, in eval mode."""
    device = device or next(head.parameters()).device
    out: torch.Tensor | None = None
    with torch.no_grad():
        head.eval()
        for pos, x in rows.chunks():
            logits = head(x.to(device)).float().cpu()
            if out is None:
                out = torch.empty(len(rows), logits.shape[1])
            out[pos] = logits
    return out if out is not None else torch.empty(0, 0)


def fitted_row(head: nn.Module, feats: Rows, targets: Sequence[int], fitted: dict[str, Any],
               validate: Callable[[], dict[str, Any]] | None) -> dict[str, Any]:
    """The one history row of a head fitted on cached features (train metrics, then validation's)."""
    logits = head_logits(head, feats)
    y = torch.tensor(list(targets))
    row: dict[str, Any] = {"epoch": 1, "train_loss": float(nn.functional.cross_entropy(logits, y)),
                           "train_accuracy": float((logits.argmax(-1) == y).float().mean())}
    if validate is not None:
        row.update({f"val_{k}": v for k, v in validate().items() if k not in ("confusion", "n", "correct")})
    row.update({"lr": 0.0, "trainable_params": sum(p.numel() for p in head.parameters()),
                "train_seconds": 0.0, "seconds": 0.0, "fit": fitted["method"]})
    return row


def fitted_line(fitted: dict[str, Any], row: dict[str, Any]) -> str:
    """The console line of that fit."""
    how = fitted["method"]
    if "C" in fitted:
        how += f", C={fitted['C']:g} {fitted['chosen_by']}" if fitted["chosen_by"] == "given" else \
            f", C={fitted['C']:g} chosen by {fitted['chosen_by']}"
        if fitted["cv"]:
            how += (f" ({len(fitted['cv'])} values of C walked up on {fitted['cv_folds']} folds, {fitted['cv_fits']} "
                    "warm-started fits)")
        how += f", {fitted['iterations']} L-BFGS iterations"
    text = f"head fitted on cached features ({how})  train acc {row['train_accuracy']:.4f}"
    if "val_accuracy" in row:
        text += f"  val loss {row['val_loss']:.4f} acc {row['val_accuracy']:.4f}"
    return text

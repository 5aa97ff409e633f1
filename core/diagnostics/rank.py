"""Ranking candidate backbones for a dataset before fine-tuning (``graft rank``).

Each candidate's pooled features of the data are extracted once (through the
engine's feature cache, so a later ``graft tune --policy frozen`` or a second
ranking reads them back) and scored with LogME, kNN and a linear probe. A
candidate is a registry entry with pretrained weights, or the same
architecture at random initialisation (the "does pretraining help at all?"
reference).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from graftzoo.errors import DataError, GraftError

if TYPE_CHECKING:
    from graftzoo.data import LabelledData
    from graftzoo.registry import ModelEntry, Registry

#: Scores ``graft rank --by`` can sort on; LogME is the default because it is
#: the one with a probabilistic justification and no hyper-parameters.
SCORES = ("logme", "knn", "linear")


@dataclass
class Candidate:
    """A backbone to score: an entry, pretrained or at random initialisation."""

    entry: ModelEntry
    pretrained: bool = True

    @property
    def label(self) -> str:
        return self.entry.id if self.pretrained else f"{self.entry.id} (random init)"


@dataclass
class RankResult:
    """Scores and timings of one candidate (``error`` set and scores None when it failed)."""

    model: str
    pretrained: bool
    logme: float | None = None
    knn: float | None = None
    linear: float | None = None
    feature_dim: int | None = None
    seconds: float = 0.0  # build + features + scoring
    feature_seconds: float = 0.0
    cached: bool = False
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def candidates_for(modality: str, model_ids: Sequence[str] = (), include_scratch: bool = False,
                   registry: Registry | None = None) -> list[Candidate]:
    """The models to rank: ``model_ids`` or every registry entry of ``modality``; random-init twins if asked.

    A model id may end in ``:scratch`` to name its random-init version alone.
    """
    from graftzoo.registry import load_registry

    registry = load_registry() if registry is None else registry
    out: list[Candidate] = []
    if model_ids:
        for spec in model_ids:
            cand = candidate(spec, registry)
            if cand.entry.modality != modality:
                raise DataError(f"{spec.removesuffix(':scratch')} is a {cand.entry.modality} model but the data "
                                f"is {modality}")
            out.append(cand)
    else:
        out = [Candidate(e) for e in registry.filter(modality=modality)]
        if not out:
            raise DataError(f"the registry has no {modality} models to rank; see 'graft list'")
    if include_scratch:
        seen = {(c.entry.id, c.pretrained) for c in out}
        out += [Candidate(c.entry, False) for c in list(out) if (c.entry.id, False) not in seen]
    return out


def candidate(spec: str, registry: Registry) -> Candidate:
    """One ``--models`` value: ``MODEL`` or ``MODEL:scratch``, where MODEL is an id or ``hf://ORG/REPO[@REV]``."""
    from graftzoo.errors import RegistryError
    from graftzoo.train.build import resolve_entry

    if spec.startswith("hf://"):  # its own colon is not a suffix
        return Candidate(resolve_entry(spec.removesuffix(":scratch")), pretrained=not spec.endswith(":scratch"))
    model_id, _, suffix = spec.partition(":")
    if suffix not in ("", "scratch"):
        raise RegistryError(f"{spec!r}: unknown suffix ':{suffix}'; use MODEL or MODEL:scratch")
    return Candidate(registry.get(model_id), pretrained=suffix == "")


def skip_unavailable(candidates: Sequence[Candidate]) -> tuple[list[Candidate], dict[str, str]]:
    """The candidates that can be built now, and the skipped ones' ids with why (weights missing / need network).

    A random-init candidate needs no weights and is never skipped.
    """
    from graftzoo.sources.availability import unavailable

    keep: list[Candidate] = []
    skipped: dict[str, str] = {}
    for cand in candidates:
        reason = unavailable(cand.entry) if cand.pretrained else None
        if reason is None:
            keep.append(cand)
        else:
            skipped[cand.entry.id] = reason
    return keep, skipped


def stratified_limit(data: LabelledData, limit: int | None, seed: int = 0) -> LabelledData:
    """At most ``limit`` samples, every class keeping its share (at least 2 where it has them)."""
    import numpy as np

    if limit is None or len(data) <= limit:
        return data
    rng = np.random.default_rng(seed)
    labels = np.array([str(label) for label in data.labels])
    chosen: list[int] = []
    for cls in sorted(set(labels)):
        idx = np.flatnonzero(labels == cls)
        take = max(min(2, len(idx)), round(limit * len(idx) / len(data)))
        chosen += rng.choice(idx, min(take, len(idx)), replace=False).tolist()
    return data.subset(sorted(chosen))


def score_features(features: Any, labels: Sequence[int], folds: int = 5, seed: int = 0) -> dict[str, float]:
    """LogME, kNN accuracy and linear-probe accuracy of one feature matrix."""
    from graftzoo.diagnostics.transferability import knn_accuracy, linear_probe_accuracy, logme

    return {
        "logme": logme(features, labels),
        "knn": knn_accuracy(features, labels, folds=folds, seed=seed),
        "linear": linear_probe_accuracy(features, labels, folds=folds, seed=seed),
    }


def rank_models(
    data: LabelledData,
    candidates: Sequence[Candidate],
    *,
    options: Mapping[str, Any] | None = None,
    by: str = "logme",
    batch_size: int = 64,
    folds: int = 5,
    seed: int = 0,
    progress: bool = True,
) -> list[RankResult]:
    """Score every candidate on ``data`` and return results best first (failed candidates last).

    ``options`` are adapter options (e.g. ``{"image_size": 64}``) used for
    every candidate. Random-init candidates are seeded with ``seed`` so a
    ranking is reproducible; their features are not cached.
    """
    import torch

    from graftzoo.diagnostics.transferability import encode_labels
    from graftzoo.train.build import build_backbone, probe_width, weights_identity
    from graftzoo.train.features import extract_features, feature_cache_path

    if by not in SCORES:
        raise ValueError(f"unknown score {by!r}; use one of {', '.join(SCORES)}")
    if data.task != "classification":
        raise DataError(f"{data.name}: graft rank scores pooled features for classification; "
                        f"{data.task} data is not supported")
    y, classes = encode_labels(data.labels)
    if len(classes) < 2:
        raise DataError(f"{data.name}: ranking needs at least 2 classes, found {len(classes)}")
    results = []
    for cand in candidates:
        result = RankResult(cand.entry.id, cand.pretrained)
        start = time.perf_counter()
        try:
            torch.manual_seed(seed)
            backbone = build_backbone(cand.entry, pretrained=cand.pretrained, options=options)
            key = weights_identity(cand.entry, cand.pretrained)
            result.cached = key is not None and feature_cache_path(backbone, data, key).exists()
            t0 = time.perf_counter()
            if not result.cached:  # the plugin contract first: two samples, features of the declared width
                probe_width(backbone, data.samples[:2], cand.entry, options or {})
            feats = extract_features(backbone, data, batch_size=batch_size, cache_key=key, progress=progress)
            result.feature_seconds = time.perf_counter() - t0
            result.feature_dim = int(feats.shape[1])
            for name, value in score_features(feats.numpy(), y, folds=folds, seed=seed).items():
                setattr(result, name, value)
        except GraftError as exc:
            result.error = str(exc)
        except Exception as exc:  # noqa: BLE001 - a plugin's bug in one candidate must not hide the others
            result.error = f"{type(exc).__name__}: {exc}".splitlines()[0]
        result.seconds = time.perf_counter() - start
        results.append(result)
    ok = sorted((r for r in results if r.error is None), key=lambda r: -float(getattr(r, by)))
    return ok + [r for r in results if r.error is not None]

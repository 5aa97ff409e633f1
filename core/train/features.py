"""Feature extraction with an on-disk cache (the ``frozen`` policy, ``graft rank``).

A frozen backbone maps the same input to the same features every time, so they
are computed once and stored under ``$GRAFTZOO_HOME/features/<key>.safetensors``
where the key hashes (weights identity, preprocessing JSON, backbone class, data
fingerprint). A second epoch, a second run, or a ranking of several heads over
the same data read the file instead of running the backbone again. Each file
carries a checksum record checked on every read (``graftzoo.storage.checked``):
damaged features are recomputed, never used. Two processes that need the same
features do the work once: the second waits on a lock and reads the file.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from graftzoo.data import LabelledData
from graftzoo.home import graftzoo_home
from graftzoo.storage import checked, locks
from graftzoo.train import parallel
from graftzoo.train.backbone import Backbone
from graftzoo.train.extract import forward_features
from graftzoo.train.rows import FileRows, TensorRows

FEATURES_WAIT_S = 6 * 3600.0  # a big extraction takes long; a killed extractor's lock is freed at once


def feature_cache_dir() -> Path:
    """Where cached features live: ``$GRAFTZOO_HOME/features``."""
    return graftzoo_home() / "features"


def feature_cache_path(backbone: Backbone, data: LabelledData | Sequence[Any], cache_key: str) -> Path:
    """The cache file for ``backbone`` (identified by ``cache_key``) applied to ``data``."""
    fingerprint = data.fingerprint() if isinstance(data, LabelledData) else _samples_fingerprint(data)
    h = hashlib.sha256()
    for part in (cache_key, type(backbone).__qualname__, json.dumps(backbone.preprocessing(), sort_keys=True,
                                                                      default=str), fingerprint):
        h.update(part.encode())
        h.update(b"\0")
    return feature_cache_dir() / f"{h.hexdigest()}.safetensors"


def _samples_fingerprint(samples: Sequence[Any]) -> str:
    h = hashlib.sha256()
    for s in samples:
        h.update(repr(s).encode())
        h.update(b"\n")
    return h.hexdigest()


def extract_features(
    backbone: Backbone,
    data: LabelledData | Sequence[Any],
    batch_size: int = 64,
    cache_key: str | None = None,
    device: torch.device | str | None = None,
    progress: bool = True,
    *,
    train: bool = False,
    workers: int | None = None,
) -> torch.Tensor:
    """Pooled features ``[N, feature_dim]`` (float32, CPU) of every sample, in order.

    The backbone runs in eval mode with deterministic (non-augmenting)
    collation, or with the training (augmenting) collation when ``train``:
    one augmented view per sample, drawn from torch's global RNG (seed it
    first), for ``--augment-views``; its ``cache_key`` must then name the view.
    With ``cache_key`` (what identifies the weights, e.g.
    ``graftzoo.train.build.weights_identity(entry, pretrained)``) the result is
    read from / written to the feature cache; without it nothing is cached.
    The backbone's train/eval mode is restored afterwards. ``workers``
    decoding processes (default: from the CPU count) feed the model; under a
    multi-process launch each process computes one shard and every process
    gets all rows (``graftzoo.train.extract``).
    """
    samples = data.samples if isinstance(data, LabelledData) else list(data)
    compute = functools.partial(_compute, backbone, samples, batch_size, device, progress, train=train, workers=workers)
    if cache_key is None:
        return compute()
    path = feature_cache_path(backbone, data, cache_key)
    feats = _read_cached(path, len(samples))
    if feats is not None:
        return feats
    if parallel.world_size() > 1:
        # Processes of one launch compute a shard each and gather (a collective): a file lock here would
        # deadlock them, so the main process alone writes, and the others wait at the barrier.
        feats = compute()
        if parallel.is_main_process():
            _save(path, feats)
        parallel.barrier()
        return feats
    # One process extracts; another asking for the same features waits here and then reads them.
    with locks.waiting("features-" + path.stem, timeout=FEATURES_WAIT_S):
        feats = _read_cached(path, len(samples))
        if feats is None:
            feats = compute()
            _save(path, feats)
    return feats


def feature_rows(backbone: Backbone, data: LabelledData | Sequence[Any], batch_size: int = 64,
                 cache_key: str | None = None, device: torch.device | str | None = None, progress: bool = True, *,
                 train: bool = False, workers: int | None = None) -> FileRows | TensorRows:
    """``extract_features``'s rows, read from the cache file chunk by chunk when there is one (extracted
    first if absent); in memory when nothing is cached (no ``cache_key``) or the entry cannot be read so."""
    n = len(data.samples if isinstance(data, LabelledData) else data)
    path = feature_cache_path(backbone, data, cache_key) if cache_key is not None else None
    rows = _open_rows(path, n) if path is not None else None
    if rows is not None:
        return rows
    feats = extract_features(backbone, data, batch_size, cache_key, device, progress, train=train, workers=workers)
    rows = _open_rows(path, n) if path is not None else None
    return rows if rows is not None else TensorRows(feats)


def _open_rows(path: Path, n: int) -> FileRows | None:
    """The cached features at ``path`` as rows read on demand, once the file is verified; None when absent,
    damaged (then removed), of the wrong length (removed) or of a layout read whole instead."""
    from graftzoo.storage.tensorfile import tensor_layout

    fh = checked.open_checked(path, "cached features")
    if fh is None:
        return None
    try:
        layout = tensor_layout(fh, "features")
        if layout is not None and layout.dtype == "F32" and len(layout.shape) == 2:
            if layout.shape[0] == n and layout.nbytes == n * layout.shape[1] * 4:
                return FileRows(fh, layout)
            checked.discard(path)
    except (ValueError, KeyError, TypeError, OSError):
        checked.discard(path)  # intact checksum, unreadable content: rebuilt
    fh.close()
    return None


def _save(path: Path, feats: torch.Tensor) -> None:
    from graftzoo.storage.tensorfile import write_safetensors

    checked.save_checked_with(path, lambda tmp: write_safetensors(tmp, {"features": feats}),
                              f"cached features {path.name}")


def _read_cached(path: Path, n: int) -> torch.Tensor | None:
    """Features from the cache if the file is complete, intact and of the right length; else None.

    The file is hashed in blocks and memory-mapped (``checked.load_checked``): the
    features are never read into a bytes object and copied again.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    def load(p: Path) -> torch.Tensor | None:
        try:
            return load_file(str(p)).get("features")
        except (SafetensorError, OSError, ValueError):
            return None  # damaged: removed by load_checked

    feats = checked.load_checked(path, "cached features", load)
    if feats is None:  # absent, damaged (then removed), or replaced while it was read
        return None
    if feats.shape[0] != n:
        checked.discard(path)
        return None
    return feats


def _compute(backbone: Backbone, samples: Sequence[Any], batch_size: int, device: torch.device | str | None,
             progress: bool, *, train: bool = False, workers: int | None = None) -> torch.Tensor:
    dev = torch.device(device) if device is not None else None
    return forward_features(backbone, samples, batch_size=batch_size, device=dev, workers=workers, train=train,
                            progress=progress and parallel.is_main_process())


def to_device(batch: Any, device: torch.device, channels_last: bool = False) -> Any:
    """Move a tensor or a dict/list of tensors to ``device`` (4-D images to channels_last when asked)."""
    if isinstance(batch, torch.Tensor):
        batch = batch.to(device, non_blocking=True)
        if channels_last and batch.dim() == 4:
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch
    if isinstance(batch, dict):
        return {k: to_device(v, device, channels_last) for k, v in batch.items()}
    if isinstance(batch, list | tuple):
        return type(batch)(to_device(v, device, channels_last) for v in batch)
    return batch

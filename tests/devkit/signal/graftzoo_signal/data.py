"""The ``signal-npz`` format: one ``.npz`` file with ``signals`` [N, L] and ``labels`` [N]."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from graftzoo.api import DataError, LabelledData


def is_signal_npz(path: Path) -> bool:
    path = Path(path)
    if not path.is_file() or path.suffix != ".npz":
        return False
    try:
        with np.load(path) as archive:
            return {"signals", "labels"} <= set(archive.files)
    except (OSError, ValueError):
        return False


def load_npz(location: str, **_: Any) -> LabelledData:
    try:
        with np.load(location) as archive:
            signals, labels = archive["signals"], archive["labels"]
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"{location}: not a signal .npz file with 'signals' and 'labels' ({exc})") from None
    samples = [np.asarray(s, dtype=np.float32) for s in signals]
    parts = [hashlib.sha256(s.tobytes()).hexdigest() for s in samples]
    return LabelledData(samples, [str(label) for label in labels], name=Path(location).name, modality="signal",
                        fingerprint_parts=parts)


def synthetic(per_class: int = 24, frequencies: tuple[float, ...] = (2.0, 5.0, 9.0), length: int = 128,
              seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Noisy sines, one class per frequency, random phase and amplitude."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, length, endpoint=False)
    signals, labels = [], []
    for label, freq in enumerate(frequencies):
        for _ in range(per_class):
            phase, amp = rng.uniform(0, 2 * np.pi), rng.uniform(0.5, 1.5)
            signals.append(amp * np.sin(2 * np.pi * freq * t + phase) + 0.3 * rng.normal(size=length))
            labels.append(label)
    return np.asarray(signals, dtype=np.float32), np.asarray(labels)

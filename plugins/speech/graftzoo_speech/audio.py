"""Reading audio files: mono mixdown and band-limited resampling, without torchaudio.

torchaudio would pin another torch, so resampling is a windowed-sinc
polyphase filter written in torch (the same construction as torchaudio's and
Kaldi's: a Hann-windowed sinc low-pass at ``rolloff`` x the lower Nyquist
rate, applied as a strided convolution).
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from graftzoo.api import DataError

#: Extensions audiofolder accepts; libsndfile reads both without extra codecs.
AUDIO_EXTENSIONS = (".wav", ".flac")


@lru_cache(maxsize=16)
def _sinc_kernel(orig: int, new: int, width: int, rolloff: float) -> tuple[torch.Tensor, int]:
    """Polyphase kernels ``[new, 1, K]`` for rates already divided by their gcd, and the padding."""
    base = min(orig, new) * rolloff
    pad = math.ceil(width * orig / base)
    idx = torch.arange(-pad, pad + orig, dtype=torch.float64) / orig
    t = torch.arange(0, -new, -1, dtype=torch.float64)[:, None] / new + idx[None, :]
    t = (t * base).clamp(-width, width)
    window = torch.cos(t * math.pi / width / 2) ** 2
    t = t * math.pi
    sinc = torch.where(t == 0, torch.ones_like(t), torch.sin(t) / torch.where(t == 0, torch.ones_like(t), t))
    kernels = sinc * window * (base / orig)
    return kernels.to(torch.float32)[:, None, :], pad


def resample(wave: np.ndarray, orig_sr: int, new_sr: int, lowpass_width: int = 6,
             rolloff: float = 0.99) -> np.ndarray:
    """Resample a mono float waveform from ``orig_sr`` to ``new_sr`` Hz (band-limited)."""
    if orig_sr == new_sr:
        return wave.astype(np.float32, copy=False)
    if orig_sr <= 0 or new_sr <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_sr} -> {new_sr}")
    g = math.gcd(orig_sr, new_sr)
    orig, new = orig_sr // g, new_sr // g
    kernels, pad = _sinc_kernel(orig, new, lowpass_width, rolloff)
    x = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))
    n = x.shape[0]
    x = F.pad(x[None, None, :], (pad, pad + orig))
    with torch.no_grad():
        y = F.conv1d(x, kernels, stride=orig)  # [1, new, frames]: phase p of frame f is sample f*new+p
    y = y[0].t().reshape(-1)
    out: np.ndarray = y[: math.ceil(new * n / orig)].numpy()
    return out


def read_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """A file as a mono float32 waveform at ``sample_rate``; ``DataError`` naming the file otherwise."""
    import soundfile as sf

    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise DataError(f"{path}: cannot read audio ({exc}); audio files must be WAV or FLAC "
                        "(convert others with: sox IN OUT.wav)") from exc
    if data.shape[0] == 0:
        raise DataError(f"{path}: the audio file is empty (0 samples); remove it or re-record it")
    # Channels are averaged: a mixdown keeps every speaker audible, unlike taking channel 0.
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    return resample(mono, int(sr), sample_rate)


def as_waveform(sample: Any, sample_rate: int) -> np.ndarray:
    """A collate sample as a mono waveform at ``sample_rate``.

    Accepted: a path (str or Path); a 1-D array already at ``sample_rate``;
    a 2-D ``[samples, channels]`` array; or a ``(array, rate)`` pair.
    """
    if isinstance(sample, (str, Path)):
        return read_audio(sample, sample_rate)
    rate = sample_rate
    if isinstance(sample, tuple) and len(sample) == 2:
        sample, rate = sample
    array = np.asarray(sample, dtype=np.float32)
    if array.ndim == 2:
        array = array.mean(axis=1)
    if array.ndim != 1 or array.size == 0:
        raise DataError(f"an audio sample must be a path or a non-empty 1-D waveform, got shape {array.shape}")
    return resample(array, int(rate), sample_rate)

"""Audio augmentation for ``--augment``: shift, noise at a random SNR, speed and pitch perturbation, SpecAugment.

Presets: ``none``; ``light`` (the default: a start offset of up to 0.1 s and
white noise at 10-30 dB SNR, which changes no speaker or word; Kaldi's and
SpeechBrain's speaker-recognition recipes add noise at 0-15 dB); ``strong``
(noise at 5-30 dB SNR, speed x0.9-1.1, pitch +-2 semitones, SpecAugment time
and frequency masks). Named transforms (``--augment noise,speed``) start from
nothing. Every draw comes from torch's global RNG, which the engine seeds per
epoch, so a resumed run sees the same augmentation.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from graftzoo.api import OptionError

PRESETS: dict[str, dict[str, Any]] = {
    "none": {},
    # 30-50 dB until issue 15's bench: inaudible, it taught neither a probe nor a fine-tune robustness to noise
    # (noisy speaker ID: --policy full 0.7305 with it, 0.8984 with 10-30 dB).
    "light": {"shift": 0.1, "noise_snr": [10.0, 30.0]},
    "strong": {"shift": 0.1, "noise_snr": [5.0, 30.0], "speed": [0.9, 1.1], "pitch": [-2.0, 2.0],
               "specaugment": True},
}
NAMED: dict[str, dict[str, Any]] = {
    "shift": {"shift": 0.1},
    "noise": {"noise_snr": [5.0, 30.0]},
    "speed": {"speed": [0.9, 1.1]},
    "pitch": {"pitch": [-2.0, 2.0]},
    "specaugment": {"specaugment": True},
}
DEFAULT = "light"
#: Augmented views of the default augmentation a frozen run on small data caches (``Backbone.default_views``):
#: speaker-recognition back-ends are trained on noise-augmented embeddings (Snyder et al., 2018, x-vectors),
#: and on Graftzoo's noisy speaker-ID bench (128 training takes, 256 held-out takes with unseen sentences,
#: pitch, speed and 5-20 dB noise) the frozen probe reached 0.9219 with them and 0.7969 without.
FROZEN_VIEWS = 4


def settings(augment: str | None, model_id: str, allowed: tuple[str, ...] = tuple(NAMED)) -> dict[str, Any]:
    """The settings of a preset or of comma-separated named transforms (an OptionError names a bad one)."""
    name = (augment or DEFAULT).strip().lower()
    if name in PRESETS:  # a preset keeps what this adapter can do
        return {k: v for k, v in PRESETS[name].items() if any(k in NAMED[a] for a in allowed)}
    out: dict[str, Any] = {}
    for part in (p.strip() for p in name.split(",")):
        if part not in NAMED or part not in allowed:
            raise OptionError(f"{model_id}: --augment {augment!r}: unknown audio transform {part!r}; use none, "
                                f"light, strong or a comma-separated list of {', '.join(allowed)}")
        out.update(NAMED[part])
    return out


def _uniform(lo: float, hi: float) -> float:
    return float(torch.empty(()).uniform_(lo, hi))


def _resample(wave: np.ndarray, factor: float) -> np.ndarray:
    """Play ``factor`` times faster (speed perturbation: tempo and pitch together, as Ko et al. 2015)."""
    n = max(2, round(len(wave) / factor))
    return np.interp(np.linspace(0, len(wave) - 1, n), np.arange(len(wave)), wave).astype(np.float32)


def _stretch(wave: np.ndarray, rate: float, n_fft: int = 512, hop: int = 128) -> np.ndarray:
    """Phase-vocoder time stretch: ``rate`` > 1 is shorter, the pitch stays (as torchaudio's phase_vocoder)."""
    x = torch.from_numpy(wave.astype(np.float32))
    window = torch.hann_window(n_fft)
    spec = torch.stft(x, n_fft, hop, window=window, return_complex=True)  # [F, T]
    steps = torch.arange(0, spec.shape[1], rate)
    advance = torch.linspace(0, math.pi * hop, spec.shape[0])[:, None]
    padded = torch.nn.functional.pad(spec, (0, 2))
    a, b = padded[:, steps.long()], padded[:, steps.long() + 1]
    alpha = steps % 1.0
    mag = (1 - alpha) * a.abs() + alpha * b.abs()
    delta = b.angle() - a.angle() - advance
    delta = delta - 2 * math.pi * torch.round(delta / (2 * math.pi))
    phase = torch.cumsum(delta + advance, dim=1)
    phase = torch.cat([spec[:, :1].angle(), spec[:, :1].angle() + phase[:, :-1]], dim=1)
    out = torch.istft(torch.polar(mag, phase), n_fft, hop, window=window)
    return out.numpy().astype(np.float32)


def _pitch_shift(wave: np.ndarray, semitones: float) -> np.ndarray:
    """Shift the pitch by ``semitones`` at constant duration: stretch by the factor, then resample back."""
    if len(wave) < 1024:
        return wave
    factor = 2 ** (semitones / 12)
    shifted = _resample(_stretch(wave, 1 / factor), factor)
    out = np.zeros(len(wave), dtype=np.float32)
    out[: min(len(wave), len(shifted))] = shifted[: len(wave)]
    return out


def augment_wave(wave: np.ndarray, sample_rate: int, s: dict[str, Any]) -> np.ndarray:
    """Apply the wave-level transforms of ``s`` (shift, speed, pitch, noise) in that order."""
    if s.get("shift"):
        offset = int(torch.randint(0, max(1, int(sample_rate * s["shift"])), ()).item())
        if offset < len(wave) // 2:
            wave = wave[offset:]
    if s.get("speed"):
        wave = _resample(wave, _uniform(*s["speed"]))
    if s.get("pitch"):
        wave = _pitch_shift(wave, _uniform(*s["pitch"]))
    if s.get("noise_snr"):
        snr_db = _uniform(*s["noise_snr"])
        rms = float(np.sqrt(np.mean(wave.astype(np.float64) ** 2)))
        wave = wave + torch.randn(len(wave)).numpy() * rms * 10 ** (-snr_db / 20)
    return np.asarray(wave, dtype=np.float32)


def spec_augment(mels: torch.Tensor, time_width: int = 20, freq_width: int = 6) -> torch.Tensor:
    """SpecAugment (Park et al. 2019): one time mask and one frequency mask per window of ``[..., T, F]``."""
    out = mels.clone()
    frames, bands = out.shape[-2], out.shape[-1]
    flat = out.reshape(-1, frames, bands)
    for window in flat:
        t = int(torch.randint(0, time_width + 1, ()).item())
        t0 = int(torch.randint(0, max(1, frames - t), ()).item())
        f = int(torch.randint(0, freq_width + 1, ()).item())
        f0 = int(torch.randint(0, max(1, bands - f), ()).item())
        window[t0:t0 + t, :] = 0
        window[:, f0:f0 + f] = 0
    return out

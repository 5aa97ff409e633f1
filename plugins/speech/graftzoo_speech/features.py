"""The speaker encoder's input pipeline, in torch and numpy (no librosa, no torchaudio).

It reproduces resemblyzer's ``preprocess_wav`` + ``wav_to_mel_spectrogram`` +
``compute_partial_slices``:

* volume normalised to -30 dBFS (raised only, never lowered);
* long silences shortened. Resemblyzer decides "voice" per 30 ms window with
  webrtcvad; here the decision is an energy threshold (a window is voiced when
  its RMS is within ``vad_db`` of the loudest window). The smoothing that
  follows (moving average of 8 windows, dilation by 7) is resemblyzer's;
* a power (not log) mel spectrogram: 16 kHz, n_fft 400 (25 ms), hop 160
  (10 ms), periodic Hann window, centred frames, 40 mel bands on the Slaney
  scale with Slaney area normalisation - librosa's ``melspectrogram``
  defaults. Frames are padded by reflection, librosa's default before 0.10
  (resemblyzer 0.1.4 was trained with those versions);
* the utterance cut into partial windows of 160 frames (1.6 s) every
  ``1/rate`` s; a last window less than ``min_coverage`` full is dropped.
  The encoder embeds each window; the utterance embedding is their
  L2-normalised mean.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from typing import Any

import numpy as np
import torch


@dataclass(frozen=True)
class MelSettings:
    """Everything that defines the input pipeline; serialised into every run."""

    sample_rate: int = 16000
    n_fft: int = 400
    hop_length: int = 160
    n_mels: int = 40
    fmin: float = 0.0
    fmax: float | None = None  # None: Nyquist
    power: float = 2.0
    pad_mode: str = "reflect"
    mel_scale: str = "slaney"
    mel_norm: str = "slaney"
    partial_frames: int = 160
    partial_rate: float = 1.3
    min_coverage: float = 0.75
    normalize_dbfs: float | None = -30.0
    trim_silence: bool = True
    vad_window_ms: int = 30
    vad_db: float = 40.0
    vad_average: int = 8
    vad_max_silence: int = 6
    #: Crop utterances to at most this many seconds (fewer partial windows: less compute).
    max_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.mel_scale != "slaney" or self.mel_norm != "slaney":
            raise ValueError("only the Slaney mel scale and norm are implemented (mel_scale=slaney, mel_norm=slaney)")
        if self.pad_mode not in ("reflect", "constant"):
            raise ValueError(f"option pad_mode={self.pad_mode!r} is not one of reflect, constant")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the run's preprocessing record)."""
        return asdict(self)

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> MelSettings:
        """Settings with the known keys of ``options`` applied, coerced to each field's type.

        Values may come from the command line as text (``trim_silence=false``,
        ``max_seconds=none``); a value that does not fit is a ``ValueError``
        naming the field. Unknown keys are left to the caller.
        """
        defaults = cls()
        out: dict[str, Any] = {}
        for f in fields(cls):
            if f.name in options:
                out[f.name] = _coerce(f.name, options[f.name], getattr(defaults, f.name))
        return cls(**out)


_OPTIONAL = {"fmax", "max_seconds", "normalize_dbfs"}


def _coerce(name: str, value: Any, default: Any) -> Any:
    if isinstance(value, str) and value.lower() in ("none", "null", "") and name in _OPTIONAL:
        return None
    if value is None and name in _OPTIONAL:
        return None
    try:
        if isinstance(default, bool):
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return value.lower() in ("true", "1", "yes")
            return bool(value)
        if isinstance(default, int):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if isinstance(default, float) or default is None:
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        kind = "true/false" if isinstance(default, bool) else type(default if default is not None else 0.0).__name__
        raise ValueError(f"option {name}={value!r} is not a valid {kind}") from None


# -- mel filterbank (Slaney scale and norm, as librosa.filters.mel) ---------------------------------
_F_SP = 200.0 / 3  # Hz per mel below 1 kHz
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = math.log(6.4) / 27.0


def hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney mel scale: linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    mel = hz / _F_SP
    log_region = hz >= _MIN_LOG_HZ
    return np.where(log_region, _MIN_LOG_MEL + np.log(np.maximum(hz, 1e-10) / _MIN_LOG_HZ) / _LOGSTEP, mel)


def mel_to_hz(mel: np.ndarray) -> np.ndarray:
    """Inverse of ``hz_to_mel``."""
    mel = np.asarray(mel, dtype=np.float64)
    return np.where(mel >= _MIN_LOG_MEL, _MIN_LOG_HZ * np.exp(_LOGSTEP * (mel - _MIN_LOG_MEL)), _F_SP * mel)


@lru_cache(maxsize=8)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0,
                   fmax: float | None = None) -> np.ndarray:
    """Triangular mel filters ``[n_mels, 1 + n_fft // 2]``, Slaney-normalised (constant area)."""
    fmax = sample_rate / 2 if fmax is None else fmax
    fft_freqs = np.linspace(0, sample_rate / 2, 1 + n_fft // 2)
    mel_freqs = mel_to_hz(np.linspace(hz_to_mel(np.array(fmin)), hz_to_mel(np.array(fmax)), n_mels + 2))
    lower, centre, upper = mel_freqs[:-2, None], mel_freqs[1:-1, None], mel_freqs[2:, None]
    rising = (fft_freqs[None, :] - lower) / (centre - lower)
    falling = (upper - fft_freqs[None, :]) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (upper - lower))  # Slaney norm: each triangle has unit area in Hz
    result: np.ndarray = weights.astype(np.float32)
    result.setflags(write=False)
    return result


def power_mel(wave: torch.Tensor, s: MelSettings) -> torch.Tensor:
    """Power mel spectrogram of ``[T]`` or ``[B, T]`` audio -> ``[..., frames, n_mels]``."""
    window = torch.hann_window(s.n_fft, periodic=True, dtype=wave.dtype, device=wave.device)
    pad_mode = s.pad_mode if wave.shape[-1] > s.n_fft // 2 else "constant"  # reflect needs T > n_fft/2
    spec = torch.stft(wave, n_fft=s.n_fft, hop_length=s.hop_length, window=window, center=True,
                      pad_mode=pad_mode, return_complex=True)
    magnitude = spec.abs() ** s.power  # [..., freq, frames]
    fb = torch.from_numpy(mel_filterbank(s.sample_rate, s.n_fft, s.n_mels, s.fmin, s.fmax).copy())
    return torch.matmul(fb.to(wave.dtype), magnitude).transpose(-1, -2)


# -- waveform preprocessing ----------------------------------------------------------------------
_INT16_MAX = 2**15 - 1


def normalize_volume(wave: np.ndarray, target_dbfs: float) -> np.ndarray:
    """Raise (never lower) the level of ``wave`` to ``target_dbfs`` RMS, as resemblyzer does."""
    rms = float(np.sqrt(np.mean((wave.astype(np.float64) * _INT16_MAX) ** 2)))
    if rms == 0.0:
        return wave
    change = target_dbfs - 20 * math.log10(rms / _INT16_MAX)
    return wave if change < 0 else (wave * 10 ** (change / 20)).astype(np.float32)


def trim_long_silences(wave: np.ndarray, s: MelSettings) -> np.ndarray:
    """Shorten silences longer than ``vad_max_silence`` windows (energy-based VAD)."""
    win = s.vad_window_ms * s.sample_rate // 1000
    n = len(wave) // win
    if n <= s.vad_max_silence + 1:
        return wave  # shorter than one "long silence": nothing to shorten
    frames = wave[: n * win].reshape(n, win).astype(np.float64)
    db = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    voiced = (db > db.max() - s.vad_db).astype(np.float64)
    # Resemblyzer's smoothing: centred moving average, rounded, then dilated.
    width = s.vad_average
    padded = np.concatenate((np.zeros((width - 1) // 2), voiced, np.zeros(width // 2)))
    summed = np.cumsum(padded)
    summed[width:] = summed[width:] - summed[:-width]
    mask = np.round(summed[width - 1:] / width).astype(bool)
    # Dilation by a centred window of vad_max_silence + 1 (scipy's binary_dilation, as resemblyzer).
    dilated = np.convolve(mask.astype(np.float64), np.ones(s.vad_max_silence + 1), mode="same") > 0.5
    if not dilated.any():
        return wave[: n * win]
    return wave[: n * win][np.repeat(dilated, win)]


def preprocess_wave(wave: np.ndarray, s: MelSettings) -> np.ndarray:
    """Volume normalisation, silence trimming and cropping, in resemblyzer's order."""
    if s.normalize_dbfs is not None:
        wave = normalize_volume(wave, s.normalize_dbfs)
    if s.trim_silence:
        wave = trim_long_silences(wave, s)
    if s.max_seconds is not None:
        wave = wave[: int(s.max_seconds * s.sample_rate)]
    return wave.astype(np.float32, copy=False)


# -- partial windows ----------------------------------------------------------------------------
def partial_slices(n_samples: int, s: MelSettings) -> list[tuple[int, int]]:
    """Mel-frame ranges of the partial windows of an utterance (resemblyzer's compute_partial_slices)."""
    if not 0 < s.min_coverage <= 1:
        raise ValueError(f"min_coverage must be in (0, 1], got {s.min_coverage}")
    n_frames = int(np.ceil((n_samples + 1) / s.hop_length))
    step = int(np.round((s.sample_rate / s.partial_rate) / s.hop_length))
    if not 0 < step <= s.partial_frames:
        raise ValueError(f"partial_rate {s.partial_rate} gives a step of {step} frames; it must be between 1 and "
                         f"{s.partial_frames} (rate >= {s.sample_rate / (s.hop_length * s.partial_frames):.3f})")
    steps = max(1, n_frames - s.partial_frames + step + 1)
    slices = [(i, i + s.partial_frames) for i in range(0, steps, step)]
    start, stop = slices[-1][0] * s.hop_length, slices[-1][1] * s.hop_length
    coverage = (n_samples - start) / (stop - start)
    if coverage < s.min_coverage and len(slices) > 1:
        slices = slices[:-1]
    return slices


def partial_mels(wave: np.ndarray, s: MelSettings) -> torch.Tensor:
    """``[n_partials, partial_frames, n_mels]`` for one preprocessed utterance."""
    slices = partial_slices(len(wave), s)
    needed = slices[-1][1] * s.hop_length
    if needed >= len(wave):
        wave = np.pad(wave, (0, needed - len(wave)))
    mel = power_mel(torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)), s)
    return torch.stack([mel[a:b] for a, b in slices])

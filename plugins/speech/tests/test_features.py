"""The mel pipeline and resampler against independent reference implementations.

References: transformers' ``audio_utils`` (a numpy port of librosa's
``filters.mel`` and ``stft``-based spectrogram; librosa itself is not
installed), librosa's documented scale values, and scipy's polyphase
resampler.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from graftzoo_speech.audio import resample
from graftzoo_speech.features import (
    MelSettings,
    hz_to_mel,
    mel_filterbank,
    mel_to_hz,
    partial_mels,
    partial_slices,
    power_mel,
)

audio_utils = pytest.importorskip("transformers.audio_utils")


def _speechlike(seconds: float = 2.0, sr: int = 16000, seed: int = 0) -> np.ndarray:
    """A chirp with harmonics, amplitude modulation and noise: energy in every mel band."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 120 + 80 * t / seconds
    phase = 2 * np.pi * np.cumsum(f0) / sr
    wave = sum(np.sin(k * phase) / k for k in range(1, 30)) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    return (0.1 * wave + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def test_slaney_scale_matches_librosa_documented_values() -> None:
    # librosa's docstrings: hz_to_mel(60) == 0.9, mel_to_hz(3) == 200 (Slaney scale); 1 kHz is mel 15.
    assert hz_to_mel(np.array(60.0)) == pytest.approx(0.9)
    assert mel_to_hz(np.array(3.0)) == pytest.approx(200.0)
    assert hz_to_mel(np.array(1000.0)) == pytest.approx(15.0)
    hz = np.array([0.0, 440.0, 999.0, 1000.0, 4000.0, 8000.0])
    np.testing.assert_allclose(mel_to_hz(hz_to_mel(hz)), hz, rtol=1e-12, atol=1e-9)


def test_filterbank_matches_reference() -> None:
    ours = mel_filterbank(16000, 400, 40)
    ref = audio_utils.mel_filter_bank(num_frequency_bins=201, num_mel_filters=40, min_frequency=0.0,
                                      max_frequency=8000.0, sampling_rate=16000, norm="slaney",
                                      mel_scale="slaney").T
    assert ours.shape == (40, 201)
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-8)
    # Slaney normalisation: each triangle has area ~1 in Hz (bins are 40 Hz apart).
    assert np.allclose(ours.sum(1) * 40.0, 1.0, atol=0.15)


@pytest.mark.parametrize("seconds", [0.35, 2.0])
def test_power_mel_matches_reference(seconds: float) -> None:
    wave = _speechlike(seconds)
    ours = power_mel(torch.from_numpy(wave), MelSettings()).numpy()
    fb = audio_utils.mel_filter_bank(201, 40, 0.0, 8000.0, 16000, norm="slaney", mel_scale="slaney")
    ref = audio_utils.spectrogram(wave.astype(np.float64), audio_utils.window_function(400, "hann"),
                                  frame_length=400, hop_length=160, power=2.0, center=True, pad_mode="reflect",
                                  mel_filters=fb, mel_floor=0.0, dtype=np.float64).T
    assert ours.shape == ref.shape == (1 + len(wave) // 160, 40)
    np.testing.assert_allclose(ours, ref, rtol=2e-4, atol=1e-6 * ref.max())


def test_partial_windows_cover_the_utterance() -> None:
    s = MelSettings()
    assert partial_slices(8000, s) == [(0, 160)]  # short: one zero-padded window
    long = partial_slices(16000 * 5, s)
    assert long[0] == (0, 160) and all(b - a == 160 for a, b in long)
    assert long[1][0] == round(16000 / 1.3 / 160)
    mels = partial_mels(_speechlike(3.0), s)
    assert mels.shape[1:] == (160, 40) and mels.shape[0] == len(partial_slices(48000, s))
    with pytest.raises(ValueError, match="partial_rate"):
        partial_slices(16000, MelSettings(partial_rate=0.1))


def test_resample_matches_scipy_polyphase() -> None:
    signal = pytest.importorskip("scipy.signal")
    sr = 44100
    t = np.arange(sr) / sr
    wave = (0.5 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 3000 * t)).astype(np.float32)
    ours = resample(wave, sr, 16000)
    ref = signal.resample_poly(wave.astype(np.float64), 160, 441)
    assert len(ours) == 16000
    core = slice(200, -200)  # the filters' edge handling differs; the passband must not
    assert np.abs(ours[core] - ref[core]).max() < 0.01
    # A tone above the new Nyquist frequency is removed, not aliased.
    alias = resample(np.sin(2 * np.pi * 10000 * t).astype(np.float32), sr, 16000)
    assert np.sqrt(np.mean(alias[core] ** 2)) < 0.01
    np.testing.assert_array_equal(resample(wave, sr, sr), wave)

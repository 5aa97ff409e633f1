"""--augment for audio: presets, named transforms, what each transform does to a wave or a mel."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from graftzoo.errors import OptionError
from graftzoo_speech import augment


def tone(seconds: float = 1.0, hz: float = 440.0, rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def peak_hz(wave: np.ndarray, rate: int = 16000) -> float:
    spectrum = np.abs(np.fft.rfft(wave))
    return float(np.fft.rfftfreq(len(wave), 1 / rate)[spectrum.argmax()])


def test_presets_and_named_transforms() -> None:
    assert augment.settings(None, "m") == augment.PRESETS["light"]
    assert augment.settings("none", "m") == {}
    strong = augment.settings("strong", "m")
    assert {"noise_snr", "speed", "pitch", "specaugment"} <= set(strong)
    assert augment.settings("noise,speed", "m") == {"noise_snr": [5.0, 30.0], "speed": [0.9, 1.1]}
    assert "specaugment" not in augment.settings("strong", "m", ("shift", "noise", "speed", "pitch"))
    with pytest.raises(OptionError, match=r"unknown audio transform 'reverb'.*noise, speed"):
        augment.settings("noise,reverb", "m")


def test_the_default_adds_noise_at_10_to_30_db_snr() -> None:
    """Noise a frozen probe and a fine-tune should be robust to (speaker-recognition recipes add it at 0-15 dB);
    quiet enough to change no speaker or word."""
    light = {k: v for k, v in augment.settings(None, "m").items() if k != "shift"}
    torch.manual_seed(0)
    wave = tone()
    snrs = [10 * np.log10(np.mean(wave ** 2) / np.mean((augment.augment_wave(wave, 16000, light) - wave) ** 2))
            for _ in range(40)]
    assert all(9.5 < s < 30.5 for s in snrs) and min(snrs) < 14 and max(snrs) > 26


def test_speed_changes_length_pitch_keeps_it_and_moves_the_peak() -> None:
    torch.manual_seed(0)
    wave = tone()
    fast = augment.augment_wave(wave, 16000, {"speed": [1.25, 1.25]})
    assert len(fast) == pytest.approx(len(wave) / 1.25, abs=2)
    up = augment.augment_wave(wave, 16000, {"pitch": [12.0, 12.0]})  # one octave up
    assert len(up) == len(wave) and peak_hz(up) == pytest.approx(880, rel=0.05)


def test_noise_is_added_at_the_drawn_snr_and_specaugment_masks() -> None:
    torch.manual_seed(0)
    wave = tone()
    noisy = augment.augment_wave(wave, 16000, {"noise_snr": [10.0, 10.0]})
    snr = 10 * np.log10(np.mean(wave ** 2) / np.mean((noisy - wave) ** 2))
    assert snr == pytest.approx(10.0, abs=0.5)
    mels = torch.ones(3, 160, 40)
    masked = augment.spec_augment(mels, time_width=20, freq_width=6)
    assert masked.shape == mels.shape and bool((masked == 0).any()) and torch.equal(mels, torch.ones(3, 160, 40))

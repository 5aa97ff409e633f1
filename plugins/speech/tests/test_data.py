"""audiofolder loading, its errors, and the espeak-ng generated sets."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from graftzoo.data import load_data
from graftzoo.errors import DataError
from graftzoo_speech.audio import read_audio
from graftzoo_speech.data import is_audiofolder, load_audiofolder


def _tone(seconds: float, sr: int, freq: float = 440.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    mono = 0.3 * np.sin(2 * np.pi * freq * t)
    return np.stack([mono] * channels, axis=1) if channels > 1 else mono


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Two classes; a 44.1 kHz stereo WAV, an 8 kHz FLAC and a 16 kHz WAV, plus a stray README."""
    root = tmp_path / "sounds"
    (root / "high").mkdir(parents=True)
    (root / "low").mkdir()
    sf.write(root / "high" / "a.wav", _tone(0.5, 44100, 880, channels=2), 44100)
    sf.write(root / "high" / "b.flac", _tone(0.25, 8000, 880), 8000)
    sf.write(root / "low" / "c.wav", _tone(1.0, 16000, 220), 16000, subtype="PCM_16")
    (root / "README.md").write_text("not a class")
    return root


def test_audiofolder_loads_any_rate_and_channels(folder: Path) -> None:
    data = load_audiofolder(str(folder))
    assert data.labels == ["high", "high", "low"] and data.classes == ["high", "low"]
    assert data.modality == "audio" and data.meta["sample_rates"] == {44100: 1, 8000: 1, 16000: 1}
    stereo = read_audio(data.samples[0], 16000)
    assert stereo.ndim == 1 and len(stereo) == 8000  # mixed down, 0.5 s at 16 kHz
    # The tone survives resampling: its spectral peak stays at 880 Hz.
    spectrum = np.abs(np.fft.rfft(stereo[1000:-1000]))
    assert abs(np.argmax(spectrum) * 16000 / (len(stereo) - 2000) - 880) < 5
    assert len(read_audio(data.samples[1], 16000)) == 4000
    # The fingerprint follows file contents, not names.
    before = data.fingerprint()
    sf.write(folder / "low" / "c.wav", _tone(1.0, 16000, 230), 16000, subtype="PCM_16")
    assert load_audiofolder(str(folder)).fingerprint() != before


def test_unreadable_and_wrong_format_files_are_named(folder: Path) -> None:
    (folder / "low" / "broken.wav").write_bytes(b"RIFF\x00\x00garbage")
    (folder / "low" / "song.mp3").write_bytes(b"ID3\x03")
    with pytest.raises(DataError) as err:
        load_audiofolder(str(folder))
    message = str(err.value)
    assert "broken.wav" in message and "unreadable" in message
    assert "song.mp3" in message and "'.mp3'" in message and "--skip-bad" in message
    data = load_audiofolder(str(folder), skip_bad=True)
    assert len(data) == 3 and len(data.meta["skipped"]) == 2


def test_read_audio_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "x.wav"
    bad.write_text("hello")
    with pytest.raises(DataError, match=r"x\.wav: cannot read audio"):
        read_audio(bad, 16000)


def test_layout_errors(tmp_path: Path, folder: Path) -> None:
    with pytest.raises(DataError, match="must be a directory"):
        load_audiofolder(str(tmp_path / "missing"))
    empty = tmp_path / "empty"
    (empty / "a").mkdir(parents=True)
    with pytest.raises(DataError, match=r"no \.wav or \.flac"):
        load_audiofolder(str(empty))
    shutil.rmtree(folder / "low")
    with pytest.raises(DataError, match="only one class"):
        load_audiofolder(str(folder))


def test_detection_through_the_plugin_manager(folder: Path, tmp_path: Path, plugins_with_speech: None) -> None:
    assert is_audiofolder(folder) and not is_audiofolder(tmp_path / "nothing")
    images = tmp_path / "images" / "cat"
    images.mkdir(parents=True)
    (images / "x.png").write_bytes(b"\x89PNG")
    assert not is_audiofolder(tmp_path / "images")
    data = load_data(str(folder), modality="audio")
    assert data.meta["format"] == "audiofolder" and len(data) == 3
    with pytest.raises(DataError, match="audio data"):
        load_data(str(folder), modality="vision", format="audiofolder")


def test_generator_builds_a_cached_labelled_set(speech_cache: Path, tmp_path: Path) -> None:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng sox)")
    from graftzoo_speech.generate import EspeakSet, cached, main

    spec = EspeakSet("test-words", ("en-us+m1", "en+f3"), ("yes", "no", "stop"), label_by="text", repeats=2)
    first = cached(spec, tmp_path)
    assert cached(spec, tmp_path) == first  # cached: same folder, not rebuilt
    assert cached(EspeakSet("test-words", ("en-us+m1",), ("yes", "no"), label_by="text"), tmp_path) != first
    data = load_audiofolder(str(first))
    assert data.classes == ["no", "stop", "yes"] and len(data) == 12
    info = sf.info(data.samples[0])
    assert info.samplerate == 16000 and info.channels == 1 and 0.2 < info.duration < 2.0
    manifest = json.loads((first / "manifest.json").read_text())
    assert len({(f["pitch"], f["speed"]) for f in manifest["files"]}) > 6  # every utterance varied
    assert main([str(tmp_path / "cli"), "--set", "espeak-keywords-unseen"]) == 0
    assert len(list((tmp_path / "cli" / "espeak-keywords-unseen").rglob("*.wav"))) == 64


def test_named_sets_split_keywords_by_voice(speech_cache: Path, monkeypatch: pytest.MonkeyPatch,
                                            plugins_with_speech: None) -> None:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng sox)")
    from graftzoo_speech.generate import SETS

    monkeypatch.setenv("GRAFTZOO_HOME", str(speech_cache))
    unseen = load_data("espeak-keywords-unseen", modality="audio")
    assert unseen.name == "espeak-keywords-unseen" and len(unseen.classes) == 8
    assert not set(unseen.meta["voices"]) & set(SETS["espeak-keywords"].voices)
    assert len(SETS["espeak-speakers"].voices) >= 8
    assert not set(SETS["espeak-speakers"].texts) & set(SETS["espeak-speakers-heldout"].texts)

"""The GE2E adapter against resemblyzer's own code, and on real (generated) speech.

resemblyzer's package imports librosa and webrtcvad, which are not installed
(and must not be: see ASSETS.md). The reference test therefore imports it with
two stand-ins: ``librosa.feature.melspectrogram`` is transformers' numpy port
of librosa (see test_features.py), and ``webrtcvad.Vad`` replays the voiced /
unvoiced decisions of this plugin's energy VAD. Everything else - the 3-layer
LSTM, partial windows, volume normalisation, the VAD smoothing and dilation,
the averaging of partial embeddings - is resemblyzer's unmodified code.
"""

from __future__ import annotations

import sys
import types
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch

from graftzoo.errors import OptionError, SourceError
from graftzoo.registry import ModelEntry
from graftzoo_speech.features import MelSettings, normalize_volume, partial_slices, trim_long_silences
from graftzoo_speech.resemblyzer import SpeakerEncoder, convert_state_dict, create, load_state_dict


def _reference_melspectrogram(y: np.ndarray, sr: int, n_fft: int, hop_length: int, n_mels: int) -> np.ndarray:
    from transformers import audio_utils

    fb = audio_utils.mel_filter_bank(1 + n_fft // 2, n_mels, 0.0, sr / 2, sr, norm="slaney", mel_scale="slaney")
    return audio_utils.spectrogram(y.astype(np.float64), audio_utils.window_function(n_fft, "hann"),
                                   frame_length=n_fft, hop_length=hop_length, power=2.0, center=True,
                                   pad_mode="reflect", mel_filters=fb, mel_floor=0.0, dtype=np.float64)


class _ReplayVad:
    """webrtcvad.Vad stand-in: answers from a precomputed list of decisions."""

    decisions: ClassVar[list[bool]] = []

    def __init__(self, mode: int = 3) -> None:
        self._it = iter(type(self).decisions)

    def is_speech(self, buf: bytes, sample_rate: int) -> bool:
        return next(self._it)


@pytest.fixture
def resemblyzer_ref(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    pytest.importorskip("transformers.audio_utils")
    librosa = types.ModuleType("librosa")
    librosa.feature = types.SimpleNamespace(  # type: ignore[attr-defined]
        melspectrogram=lambda y, sr, n_fft, hop_length, n_mels: _reference_melspectrogram(y, sr, n_fft,
                                                                                         hop_length, n_mels))
    webrtcvad = types.ModuleType("webrtcvad")
    webrtcvad.Vad = _ReplayVad  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "librosa", librosa)
    monkeypatch.setitem(sys.modules, "webrtcvad", webrtcvad)
    for name in [m for m in sys.modules if m == "resemblyzer" or m.startswith("resemblyzer.")]:
        monkeypatch.delitem(sys.modules, name)
    try:
        with warnings.catch_warnings():  # resemblyzer imports a deprecated scipy.ndimage path
            warnings.simplefilter("ignore", DeprecationWarning)
            import resemblyzer
    except ImportError as exc:
        pytest.skip(f"resemblyzer's code cannot be imported here: {exc}")
    yield resemblyzer
    for name in [m for m in sys.modules if m == "resemblyzer" or m.startswith("resemblyzer.")]:
        sys.modules.pop(name, None)


def _voiced_wave(seed: int = 0) -> np.ndarray:
    """3.2 s: tone bursts separated by a long and a short silence, plus faint noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(16000) / 16000
    burst = (0.05 * np.sin(2 * np.pi * 180 * t) * np.sin(2 * np.pi * 2 * t) ** 2).astype(np.float32)
    wave = np.concatenate([burst, np.zeros(14000, np.float32), burst[:12000], np.zeros(2000, np.float32),
                           burst[:7000]])
    return wave + 1e-4 * rng.standard_normal(wave.size).astype(np.float32)


def test_pipeline_and_network_match_resemblyzer(resemblyzer_ref: Any, ge2e_weights: Path,
                                                encoder: SpeakerEncoder) -> None:
    reference = resemblyzer_ref.VoiceEncoder(device="cpu", verbose=False, weights_fpath=ge2e_weights)
    s = MelSettings()
    wave = _voiced_wave()
    # Waveform preprocessing: resemblyzer's volume normalisation and VAD smoothing, our VAD decisions.
    np.testing.assert_allclose(normalize_volume(wave, -30.0),
                               resemblyzer_ref.normalize_volume(wave, -30.0, increase_only=True), rtol=1e-6)
    win = 480
    frames = wave[: len(wave) // win * win].reshape(-1, win).astype(np.float64)
    db = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    _ReplayVad.decisions = list(db > db.max() - s.vad_db)
    ours = trim_long_silences(wave, s)
    np.testing.assert_array_equal(ours, resemblyzer_ref.trim_long_silences(wave))
    assert len(ours) < len(wave) - 8000  # the long silence was shortened, the short one kept
    # Partial windows for lengths around the coverage threshold.
    for n in (3000, 25600, 30000, 41000, 48000, 80000):
        _, ref_slices = reference.compute_partial_slices(n, rate=1.3, min_coverage=0.75)
        assert partial_slices(n, s) == [(sl.start, sl.stop) for sl in ref_slices]
    # The embeddings: mel + partial windows + LSTM stack + projection + averaging.
    raw = MelSettings(normalize_dbfs=None, trim_silence=False)
    no_prep = SpeakerEncoder(raw, scale=1.0)  # resemblyzer's unit vectors
    no_prep.load_state_dict(encoder.state_dict())
    for utt in (ours, wave[:9000]):
        expected = reference.embed_utterance(utt)
        with torch.no_grad():
            got = no_prep(no_prep.collate([utt], train=False))[0].numpy()
        np.testing.assert_allclose(got, expected, atol=2e-5)


def test_weights_load_strict_and_groups_cover_every_parameter(encoder: SpeakerEncoder,
                                                              ge2e_weights: Path) -> None:
    groups = encoder.groups()
    assert [name for name, _ in groups] == ["lstm1", "lstm2", "lstm3", "proj"]
    in_groups = [id(p) for _, g in groups for p in g.parameters()]
    assert len(in_groups) == len(set(in_groups)) == len(list(encoder.parameters()))
    state = convert_state_dict(load_state_dict(ge2e_weights))
    assert "similarity_weight" not in state and len(state) == 14
    for key, value in state.items():
        torch.testing.assert_close(encoder.state_dict()[key], value)
    assert encoder.feature_dim == 256 and encoder.preprocessing()["n_mels"] == 40


def test_bad_weights_are_a_source_error(ge2e_entry: ModelEntry, tmp_path: Path, ge2e_weights: Path) -> None:
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(SourceError, match=r"junk\.pt"):
        create(ge2e_entry, junk, {})
    state = load_state_dict(ge2e_weights)
    state["lstm.weight_ih_l3"] = state["lstm.weight_ih_l2"]  # a 4th layer the encoder does not have
    extra = tmp_path / "extra.pt"
    torch.save({"model_state": state}, extra)
    with pytest.raises(SourceError, match=r"lstm4\.weight_ih_l0"):
        create(ge2e_entry, extra, {})


def test_options_override_the_pipeline(ge2e_entry: ModelEntry) -> None:
    model = create(ge2e_entry, None, {"max_seconds": 2.0, "image_size": None})
    assert model.preprocessing()["max_seconds"] == 2.0
    batch = model.collate([np.random.default_rng(0).standard_normal(16000 * 6).astype(np.float32) * 0.1], False)
    assert batch["mask"].sum() == len(partial_slices(32000, MelSettings()))
    with pytest.raises(OptionError, match="image_size"):
        create(ge2e_entry, None, {"image_size": 64})


def test_same_voice_embeddings_are_closer(encoder: SpeakerEncoder, voices_set: Path) -> None:
    from graftzoo_speech.data import load_audiofolder

    data = load_audiofolder(str(voices_set))
    with torch.no_grad():
        emb = encoder(encoder.collate(data.samples, train=False)).numpy()
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 16.0, rtol=1e-5)  # unit vectors x sqrt(256)
    emb /= 16.0
    labels = np.array(data.labels)
    sim = emb @ emb.T
    same = labels[:, None] == labels[None, :]
    off_diag = ~np.eye(len(labels), dtype=bool)
    # Leave-one-out nearest centroid: each utterance is nearest its own voice's other utterances...
    classes = sorted(set(data.labels))
    correct = 0
    for i in range(len(labels)):
        keep = np.arange(len(labels)) != i
        centroids = np.stack([emb[keep & (labels == c)].mean(0) for c in classes])
        correct += classes[int(np.argmax(centroids @ emb[i]))] == labels[i]
    assert correct / len(labels) >= 0.9
    # ...and on average clearly so; a randomly initialised encoder does not separate them.
    assert sim[same & off_diag].mean() - sim[~same].mean() > 0.1
    random_init = SpeakerEncoder()
    with torch.no_grad():
        r = random_init(random_init.collate(data.samples, train=False)).numpy() / 16.0
    rsim = r @ r.T
    assert rsim[same & off_diag].mean() - rsim[~same].mean() < sim[same & off_diag].mean() - sim[~same].mean()


def test_train_collation_augments_eval_is_deterministic(encoder: SpeakerEncoder, voices_set: Path) -> None:
    path = str(next(voices_set.rglob("*.wav")))
    a, b = encoder.collate([path], train=False), encoder.collate([path], train=False)
    torch.testing.assert_close(a, b)
    c = encoder.collate([path], train=True)
    assert not torch.equal(a["mels"][:, :1, :100], c["mels"][:, :1, :100])

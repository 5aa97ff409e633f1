"""The ``resemblyzer`` backbone: the GE2E speaker encoder as a clean, layered module.

Resemblyzer's network is ``LSTM(40, 256, num_layers=3)`` -> ``Linear(256, 256)``
-> ReLU -> L2 norm, trained with the GE2E loss (Wan et al., 2018) for speaker
verification. Here the stacked LSTM is three single-layer LSTMs (identical
maths: the stack has no dropout between layers), so that freeze policies can
unfreeze it layer by layer: ``groups()`` is ``lstm1, lstm2, lstm3, proj``.
The GE2E loss' ``similarity_weight``/``similarity_bias`` are training-only
and are dropped (layer extraction: the network without its original output).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from graftzoo.api import Backbone, OptionError, SourceError
from graftzoo.api import load_state_dict as load_tensors
from graftzoo_speech import augment
from graftzoo_speech.audio import as_waveform
from graftzoo_speech.features import MelSettings, partial_mels, preprocess_wave

if TYPE_CHECKING:
    from graftzoo.api import ModelEntry

N_LAYERS = 3
_DROPPED = ("similarity_weight", "similarity_bias")  # GE2E loss scale/offset: not part of the encoder


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a weights file through ``graftzoo.api.load_state_dict``.

    Core's loader reads safetensors, or ``torch.load(weights_only=True)``
    converted to safetensors once in the cache. Resemblyzer's checkpoint nests
    the weights under ``model_state`` beside the optimiser state; both the
    nested and a flattened ("model_state.lstm...") form are accepted.
    """
    raw: Mapping[str, Any] = load_tensors(Path(path))
    if isinstance(raw.get("model_state"), Mapping):
        raw = raw["model_state"]
    prefix = "model_state."
    if any(k.startswith(prefix) for k in raw):
        raw = {k[len(prefix):]: v for k, v in raw.items() if k.startswith(prefix)}
    return {k: v for k, v in raw.items() if isinstance(v, torch.Tensor)}


def convert_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Resemblyzer's key names -> this module's (``lstm.*_l{k}`` -> ``lstm{k+1}.*_l0``, ``linear`` -> ``proj``)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key in _DROPPED:
            continue
        if key.startswith("lstm."):
            name, _, layer = key[len("lstm."):].rpartition("_l")
            if not layer.isdigit():
                raise SourceError(f"speaker-encoder weights: unexpected LSTM tensor {key!r}")
            out[f"lstm{int(layer) + 1}.{name}_l0"] = value
        elif key.startswith("linear."):
            out["proj." + key[len("linear."):]] = value
        else:
            out[key] = value  # left for the strict load to report
    return out


class SpeakerEncoder(Backbone):
    """GE2E speaker encoder: mel partial windows -> L2-normalised 256-d utterance embedding."""

    modality = "audio"

    def __init__(self, settings: MelSettings | None = None, hidden: int = 256, embedding: int = 256,
                 scale: float | None = None) -> None:
        super().__init__()
        self.settings = settings or MelSettings()
        # Unit-norm embeddings have coordinates of ~1/16: a head at the usual learning rate would crawl.
        # GE2E itself multiplies cosines by a learned ~71 (similarity_weight); here a fixed sqrt(D) gives
        # features of unit RMS per coordinate, with resemblyzer's directions unchanged.
        self.scale = float(embedding) ** 0.5 if scale is None else float(scale)
        n_mels = self.settings.n_mels
        self.lstm1 = nn.LSTM(n_mels, hidden, batch_first=True)
        self.lstm2 = nn.LSTM(hidden, hidden, batch_first=True)
        self.lstm3 = nn.LSTM(hidden, hidden, batch_first=True)
        self.proj = nn.Linear(hidden, embedding)
        self.feature_dim = embedding
        self.augment_name = augment.DEFAULT
        self.augment = augment.settings(None, "resemblyzer")

    def groups(self) -> list[tuple[str, nn.Module]]:
        """``lstm1``, ``lstm2``, ``lstm3``, ``proj``: input to output."""
        return [("lstm1", self.lstm1), ("lstm2", self.lstm2), ("lstm3", self.lstm3), ("proj", self.proj)]

    def embed_partials(self, mels: torch.Tensor) -> torch.Tensor:
        """``[N, frames, n_mels]`` -> ``[N, D]``: resemblyzer's ``VoiceEncoder.forward``."""
        x, _ = self.lstm1(mels)
        x, _ = self.lstm2(x)
        _, (hidden, _) = self.lstm3(x)
        return F.normalize(F.relu(self.proj(hidden[-1])), dim=1)

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Utterance embeddings ``[B, D]``: the normalised mean of the partial windows' embeddings x ``scale``."""
        mels, mask = batch["mels"], batch["mask"]  # [B, K, F, M], [B, K]
        b, k = mask.shape
        flat = self.embed_partials(mels.reshape(b * k, *mels.shape[2:]))
        weights = mask.to(flat.dtype).reshape(b, k, 1)
        mean = (flat.reshape(b, k, -1) * weights).sum(1) / weights.sum(1).clamp_min(1.0)
        return F.normalize(mean, dim=1) * self.scale

    def preprocessing(self) -> dict[str, Any]:
        """The mel pipeline's settings (``MelSettings``) plus what it is."""
        return {"kind": "resemblyzer-mel", **self.settings.to_dict(), "embedding_scale": self.scale,
                "augment": self.augment_name, "train_augment": self.augment}

    def collate(self, samples: list[Any], train: bool) -> dict[str, torch.Tensor]:
        """Paths or waveforms -> padded partial-window mels ``[B, K, 160, 40]`` and a mask ``[B, K]``.

        Training applies ``--augment`` (``graftzoo_speech.augment``; by default
        white noise at 10-30 dB SNR and a random start offset of up
        to 0.1 s, so the head does not learn the exact samples).
        """
        s = self.settings
        per_utt = []
        for sample in samples:
            wave = preprocess_wave(as_waveform(sample, s.sample_rate), s)
            if train and self.augment:
                wave = augment.augment_wave(wave, s.sample_rate, self.augment)
            mel = partial_mels(wave, s)
            per_utt.append(augment.spec_augment(mel) if train and self.augment.get("specaugment") else mel)
        k = max(m.shape[0] for m in per_utt)
        mels = torch.zeros(len(per_utt), k, s.partial_frames, s.n_mels)
        mask = torch.zeros(len(per_utt), k, dtype=torch.bool)
        for i, m in enumerate(per_utt):
            mels[i, : m.shape[0]] = m
            mask[i, : m.shape[0]] = True
        return {"mels": mels, "mask": mask}

    def lora_targets(self) -> list[str]:
        """peft has no LoRA for ``nn.LSTM``: adapters go on the projection."""
        return ["proj"]


def create(entry: ModelEntry, weights: Path | None, options: Mapping[str, Any]) -> SpeakerEncoder:
    """Factory of the ``resemblyzer`` adapter: ``factory(entry, weights, options)``.

    ``options`` may override the pipeline (``max_seconds``, ``partial_rate``,
    ``min_coverage``, ``trim_silence``...; see ``MelSettings``) and
    ``embedding_scale`` (default sqrt(256) = 16; 1 gives resemblyzer's unit vectors); keys with a
    value of None are ignored, so generic options such as ``image_size``
    unset do not get in the way.
    """
    settings_fields = set(MelSettings.__dataclass_fields__)
    given = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(given) - settings_fields - {"kind", "extra_files", "embedding_scale", "augment"})
    if unknown:
        raise OptionError(f"{entry.id}: the resemblyzer adapter has no option {unknown[0]!r}; valid: "
                            + ", ".join(sorted(settings_fields)))
    base = {k: v for k, v in dict(entry.input).items() if k in settings_fields}
    try:
        settings = MelSettings.from_options({**base, **given})
    except ValueError as exc:
        raise OptionError(f"{entry.id}: {exc}") from None
    try:
        scale = float(given["embedding_scale"]) if "embedding_scale" in given else None
    except ValueError:
        raise OptionError(f"{entry.id}: option embedding_scale={given['embedding_scale']!r} "
                            "is not a number") from None
    model = SpeakerEncoder(settings, scale=scale)
    model.augment_name = str(given.get("augment") or augment.DEFAULT)
    model.augment = augment.settings(given.get("augment"), entry.id)
    model.default_views = augment.FROZEN_VIEWS if model.augment else 0
    if weights is not None:
        state = convert_state_dict(load_state_dict(Path(weights)))
        missing, unexpected = model.state_dict().keys() - state.keys(), state.keys() - model.state_dict().keys()
        if missing or unexpected:
            raise SourceError(f"{entry.id}: {weights} does not fit the GE2E encoder (missing: "
                              f"{sorted(missing) or 'none'}; unexpected: {sorted(unexpected) or 'none'}); "
                              "check the entry's source and sha256")
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:  # shape mismatches
            raise SourceError(f"{entry.id}: {weights}: {exc}") from exc
    model.eval()
    return model

"""The ``hf-audio`` backbone: transformers audio encoders (wav2vec2, HuBERT, WavLM, data2vec-audio).

The model is loaded with ``AutoModel`` from a local directory (a registry
source resolves to one: a hub snapshot or a package folder); remote code is
never run. Features are the mean over valid frames of one hidden layer (the
last by default; ``layer`` picks another - middle layers of wav2vec2 often
carry more speaker information than the last).

Groups, input to output: ``feature_extractor`` (the CNN on the waveform),
``feature_projection`` (projection, positional convolution and, for the
post-norm variants, the encoder's input LayerNorm), then ``layer_0`` ...
``layer_N-1`` (a stable-layer-norm model's final LayerNorm joins the last).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from graftzoo.api import Backbone, OptionError, SourceError, fetch
from graftzoo_speech import augment
from graftzoo_speech.audio import as_waveform
from graftzoo_speech.hub import SUPPORTED

if TYPE_CHECKING:
    from graftzoo.api import ModelEntry

_OPTIONS = ("layer", "max_seconds", "augment", "extra_files")
#: Wave-level transforms this adapter applies (SpecAugment-style masking is the encoder's own config).
_AUGMENTS = ("shift", "noise", "speed", "pitch")


class _Group(nn.Module):
    """A view over modules and loose parameters that form one group (not registered on the backbone)."""

    def __init__(self, modules: Mapping[str, nn.Module | None], params: Mapping[str, nn.Parameter | None]) -> None:
        super().__init__()
        for name, module in modules.items():
            if module is not None:
                self.add_module(name, module)
        for name, param in params.items():
            if param is not None:
                self.register_parameter(name, param)


class AudioEncoder(Backbone):
    """A transformers speech encoder with mean pooling over valid frames."""

    modality = "audio"

    def __init__(self, model: Any, processor: Any, source_dir: Path | None, layer: int = -1,
                 max_seconds: float | None = None) -> None:
        super().__init__()
        self.model = model
        self.processor = processor
        self.source_dir = source_dir
        self.layer = layer
        self.max_seconds = max_seconds
        self.augment: dict[str, Any] = {}
        self.feature_dim = int(model.config.hidden_size)
        n_layers = int(model.config.num_hidden_layers)
        if not -n_layers - 1 <= layer <= n_layers:
            raise OptionError(f"layer {layer} is out of range: the encoder has hidden states 0..{n_layers}")

    @property
    def sample_rate(self) -> int:
        """The rate the encoder was trained at (from its feature extractor)."""
        return int(self.processor.sampling_rate)

    def groups(self) -> list[tuple[str, nn.Module]]:
        """``feature_extractor``, ``feature_projection``, ``layer_0`` ... ``layer_N-1``."""
        m = self.model
        enc = m.encoder
        stable = bool(getattr(m.config, "do_stable_layer_norm", False))
        embed = _Group({"feature_projection": m.feature_projection,
                        "pos_conv_embed": getattr(enc, "pos_conv_embed", None),
                        "layer_norm": None if stable else getattr(enc, "layer_norm", None)},
                       {"masked_spec_embed": getattr(m, "masked_spec_embed", None)})
        out: list[tuple[str, nn.Module]] = [("feature_extractor", m.feature_extractor), ("feature_projection", embed)]
        layers = list(enc.layers)
        for i, layer in enumerate(layers):
            if stable and i == len(layers) - 1:
                out.append((f"layer_{i}", _Group({"layer": layer, "layer_norm": enc.layer_norm}, {})))
            else:
                out.append((f"layer_{i}", layer))
        if getattr(m, "adapter", None) is not None:
            out.append(("adapter", m.adapter))
        return out

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Mean of the chosen hidden layer over each utterance's valid frames: ``[B, hidden]``."""
        values, mask = batch["input_values"], batch["attention_mask"]
        if self.model.config.feat_extract_norm == "layer":
            return self._pooled(values, mask, {"attention_mask": mask})
        # Group-norm models (wav2vec2-base, HuBERT-base) take no attention mask, and zero padding changes
        # their group statistics: utterances of different lengths go through one by one, so a feature
        # never depends on what else was in the batch (the feature cache relies on that).
        lengths = mask.sum(-1)
        if bool((lengths == lengths[0]).all()):
            return self._pooled(values, mask, {})
        return torch.cat([self._pooled(values[i:i + 1, : int(n)], mask[i:i + 1, : int(n)], {})
                          for i, n in enumerate(lengths)])

    def _pooled(self, values: torch.Tensor, mask: torch.Tensor, kwargs: dict[str, Any]) -> torch.Tensor:
        out = self.model(values, output_hidden_states=self.layer != -1, **kwargs)
        hidden = out.last_hidden_state if self.layer == -1 else out.hidden_states[self.layer]
        lengths = self.model._get_feat_extract_output_lengths(mask.sum(-1)).clamp(1, hidden.shape[1])
        valid = (torch.arange(hidden.shape[1], device=hidden.device)[None, :] < lengths[:, None]).to(hidden.dtype)
        return (hidden * valid[..., None]).sum(1) / valid.sum(1, keepdim=True)

    def preprocessing(self) -> dict[str, Any]:
        """Sample rate, normalisation and pooling: what rebuilds the input pipeline."""
        fe = self.processor
        return {"kind": "hf-audio", "model_type": self.model.config.model_type, "sample_rate": self.sample_rate,
                "do_normalize": bool(getattr(fe, "do_normalize", False)), "pooling": "mean",
                "layer": self.layer, "max_seconds": self.max_seconds, "train_augment": self.augment}

    def collate(self, samples: list[Any], train: bool) -> dict[str, torch.Tensor]:
        """Waveforms at the encoder's rate, normalised and zero-padded by its feature extractor."""
        waves = [as_waveform(s, self.sample_rate) for s in samples]
        if train and self.augment:
            waves = [augment.augment_wave(w, self.sample_rate, self.augment) for w in waves]
        if self.max_seconds is not None:
            waves = [w[: int(self.max_seconds * self.sample_rate)] for w in waves]
        enc = self.processor(waves, sampling_rate=self.sample_rate, padding=True, return_tensors="pt",
                                     return_attention_mask=True)
        return {"input_values": enc["input_values"].to(torch.float32), "attention_mask": enc["attention_mask"]}

    def lora_targets(self) -> list[str]:
        """Attention query and value projections of every encoder layer."""
        return ["q_proj", "v_proj"]

    def export_transformers(self, out: Path, head: Any, labels: list[str], task: str) -> Any:
        """This encoder + ``head`` as an AutoModelForAudioClassification directory (``graftzoo_speech.interop``)."""
        from graftzoo_speech.interop import export_transformers

        return export_transformers(self, out, head, labels, task)

    def extra_files(self) -> dict[str, Path]:
        """config.json and preprocessor_config.json: a saved run rebuilds the encoder from them offline."""
        if self.source_dir is None:
            return {}
        files = {name: self.source_dir / name for name in ("config.json", "preprocessor_config.json")}
        return {name: path for name, path in files.items() if path.is_file()}


def _config_dir(entry: ModelEntry, weights: Path | None, extra: Mapping[str, str]) -> Path:
    """Where config.json is: the weights folder, a saved run's copy, or the fetched source."""
    if weights is not None:
        return Path(weights) if Path(weights).is_dir() else Path(weights).parent
    if "config.json" in extra:
        return Path(extra["config.json"]).parent
    path = Path(fetch(entry))
    return path if path.is_dir() else path.parent


def create(entry: ModelEntry, weights: Path | None, options: Mapping[str, Any]) -> AudioEncoder:
    """Factory of the ``hf-audio`` adapter: ``factory(entry, weights, options)``.

    ``weights`` is a local directory with ``config.json`` (+ weights, and
    ``preprocessor_config.json`` if any) or None for a random initialisation
    from the same config. Options: ``layer`` (hidden state to pool, default
    -1 = last), ``max_seconds`` (crop long inputs).
    """
    from transformers import AutoConfig, AutoFeatureExtractor, AutoModel, Wav2Vec2FeatureExtractor
    from transformers.utils import logging as hf_logging

    # transformers' 'Loading weights' bars and init notes would bury Graftzoo's own output (the kit builds
    # a backbone once per policy, and every build printed a bar).
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()

    given = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(given) - set(_OPTIONS))
    if unknown:
        raise OptionError(f"{entry.id}: the hf-audio adapter has no option {unknown[0]!r}; valid: "
                            + ", ".join(o for o in _OPTIONS if o != "extra_files"))
    extra: Mapping[str, str] = given.get("extra_files", {})
    folder = _config_dir(entry, weights, extra)
    if not (folder / "config.json").is_file():
        raise SourceError(f"{entry.id}: {folder} has no config.json; an hf-audio source must be a model "
                          "directory saved with save_pretrained")
    model_type = json.loads((folder / "config.json").read_text()).get("model_type")
    if model_type not in SUPPORTED:
        raise SourceError(f"{entry.id}: model_type {model_type!r} is not an audio encoder this adapter knows "
                          f"({', '.join(SUPPORTED)})")
    try:
        config = AutoConfig.from_pretrained(str(folder), trust_remote_code=False, local_files_only=True)
        if weights is not None:
            model = AutoModel.from_pretrained(str(folder), config=config, trust_remote_code=False,
                                              local_files_only=True)
        else:
            model = AutoModel.from_config(config, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise SourceError(f"{entry.id}: cannot load the encoder from {folder}: {exc}") from exc
    fe_dir = Path(extra["preprocessor_config.json"]).parent if "preprocessor_config.json" in extra else folder
    if (fe_dir / "preprocessor_config.json").is_file():
        fe = AutoFeatureExtractor.from_pretrained(str(fe_dir), trust_remote_code=False, local_files_only=True)
    else:  # wav2vec2's defaults: 16 kHz, zero mean / unit variance per utterance
        fe = Wav2Vec2FeatureExtractor(sampling_rate=int(entry.input.get("sample_rate", 16000)), do_normalize=True)
    backbone = AudioEncoder(model, fe, folder, layer=int(given.get("layer", -1)), max_seconds=given.get("max_seconds"))
    backbone.augment = augment.settings(given.get("augment"), entry.id, _AUGMENTS)
    backbone.default_views = augment.FROZEN_VIEWS if backbone.augment else 0
    backbone.eval()
    return backbone

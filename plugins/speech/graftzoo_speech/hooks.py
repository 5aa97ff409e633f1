"""The speech plugin's hook implementations (entry point ``speech``).

Only names and ``module:attr`` targets live here: nothing heavy is imported
until a command actually builds a backbone or loads data.
"""

from __future__ import annotations

from graftzoo.hookspecs import RegisterBackbone, RegisterDataFormat, RegisterNamedDataset, hookimpl


@hookimpl
def register_backbones(register: RegisterBackbone) -> None:
    register("resemblyzer", "graftzoo_speech.resemblyzer:create", modality="audio",
             description="GE2E speaker encoder (3 LSTM layers + projection) on 40-channel mel spectrograms")
    register("hf-audio", "graftzoo_speech.wav2vec:create", modality="audio",
             description="transformers audio encoders (wav2vec2, HuBERT, WavLM) from a local directory",
             hub_libraries=["transformers"],
             hub_tasks=["audio-classification", "automatic-speech-recognition", "feature-extraction"],
             hub_entry="graftzoo_speech.hub:hub_entry")


@hookimpl
def register_data_formats(register: RegisterDataFormat) -> None:
    register("audiofolder", "graftzoo_speech.data:load_audiofolder", modality="audio",
             detect="graftzoo_speech.data:is_audiofolder",
             description="ROOT/LABEL/*.wav|flac, any rate and channel count (mixed down, resampled)")


@hookimpl
def register_named_datasets(register: RegisterNamedDataset) -> None:
    register("espeak-speakers", "graftzoo_speech.data:load_espeak_speakers", modality="audio",
             description="12 espeak-ng voices x 8 sentences x 2 pitch/speed draws, labelled by voice (generated)")
    register("espeak-speakers-heldout", "graftzoo_speech.data:load_espeak_speakers_heldout", modality="audio",
             description="the same 12 voices speaking 4 other sentences x 2 draws (speaker-ID test set)")
    register("espeak-keywords", "graftzoo_speech.data:load_espeak_keywords", modality="audio",
             description="8 command words by 12 espeak-ng voices, labelled by word (generated, cached)")
    register("espeak-keywords-unseen", "graftzoo_speech.data:load_espeak_keywords_unseen", modality="audio",
             description="the same 8 words by 4 voices not in espeak-keywords (keyword test set)")

"""How the ``hf-audio`` adapter reads a hub repository (``hub_entry``): a transformers speech encoder.

It needs ``config.json`` of a supported model type, safetensors weights and
the feature extractor's ``preprocessor_config.json`` (the sampling rate).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from graftzoo.api import HubRepo

SUPPORTED = ("wav2vec2", "hubert", "wavlm", "data2vec-audio")


def hub_entry(repo: HubRepo) -> dict[str, Any]:
    """Entry fields for a speech encoder repository; ``ValueError`` says why this adapter does not load it."""
    model_type = repo.config.get("model_type")
    if model_type not in SUPPORTED:
        raise ValueError(f"model_type {model_type!r} is not one of {', '.join(SUPPORTED)}")
    if "preprocessor_config.json" not in repo.files:
        raise ValueError("no preprocessor_config.json: the sampling rate is unknown")
    rate = repo.read_json("preprocessor_config.json").get("sampling_rate") or 16000
    return {"files": repo.weight_files() + repo.present(("config.json", "preprocessor_config.json")),
            "tasks": ["audio-classification"], "input": {"sample_rate": int(rate)},
            "description": f"{model_type} speech encoder from hf://{repo.repo}"}

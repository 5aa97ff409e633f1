"""A text run as a transformers model directory (``AutoModelFor{Sequence,Token}Classification``).

transformers' classifiers are the bare encoder plus one linear ``classifier``
on (a) every token, for token classification, and (b) for sequence
classification, whatever that architecture's head pools: BERT-family models
feed the encoder's pooler (dense + tanh on [CLS]) to the classifier. So:

- token runs export for any encoder whose ``*ForTokenClassification`` is
  ``encoder + classifier``; the word's first sub-token carries its tag, which
  is the pipeline's ``aggregation_strategy="first"``;
- sequence runs export when they pooled like transformers does
  (``--backbone-option pooling=pooler`` on a BERT-family encoder). Mean
  pooling (the default) or [CLS] without the pooler has no transformers
  class, and a head like DistilBERT's (``pre_classifier`` + classifier) is
  not one linear layer: both are refused with what to do instead, never
  exported approximately.

Every export is checked before it is written: the transformers model must
give the run's logits on a probe batch.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from graftzoo.api import TrainingError

if TYPE_CHECKING:
    from graftzoo.api import Exported, LinearHead
    from graftzoo_nlp.backbone import HFEncoder

PROBE = ["a short text", "and a somewhat longer sentence of several words to pad the other one"]

SEQUENCE_SNIPPET = """from transformers import pipeline

classify = pipeline("text-classification", model="{path}")
print(classify("a sentence to classify", top_k=None))
"""
TOKEN_SNIPPET = """from transformers import pipeline

tagger = pipeline("token-classification", model="{path}", aggregation_strategy="first")
print(tagger("Anna lives in Paris"))
"""


def export_transformers(encoder: HFEncoder, out: Path, head: LinearHead, labels: list[str], task: str) -> Exported:
    """Write ``encoder`` + ``head`` as a transformers classification model with its tokenizer into ``out``."""
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

    from graftzoo.api import Exported, label_maps

    token = task == "token-classification"
    model_type = str(encoder.model.config.model_type)
    if not token and encoder.pooling != "pooler":
        raise TrainingError(f"this run pools the {model_type} encoder by {encoder.pooling!r}; transformers' sequence "
                            "classifiers classify the pooler output of [CLS], so no transformers class computes "
                            "this run. Tune with --backbone-option pooling=pooler (BERT-family encoders) for a "
                            "transformers export, or export this run with --format onnx")
    auto = AutoModelForTokenClassification if token else AutoModelForSequenceClassification
    config = copy.deepcopy(encoder.model.config)
    for key, value in label_maps(labels).items():
        setattr(config, key, value)
    try:
        model = auto.from_config(config, trust_remote_code=False)
    except ValueError as exc:
        raise TrainingError(f"transformers has no {auto.__name__[4:]} for {model_type!r}: {exc}") from None
    state = {f"{model.base_model_prefix}.{k}": v for k, v in encoder.model.state_dict().items()}
    state.update({"classifier.weight": head.weight, "classifier.bias": head.bias})
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    if missing or any(tuple(expected[k].shape) != tuple(v.shape) for k, v in state.items() if k in expected):
        raise TrainingError(f"{type(model).__name__}'s head is not one linear layer on the encoder's features (it "
                            f"also has {', '.join(missing[:3]) or 'differently shaped weights'}), so it cannot "
                            "hold this run; export it with --format onnx")
    model.load_state_dict({k: v for k, v in state.items() if k in expected}, strict=True)
    model.eval()
    _check(encoder, model, head, token)
    tokenizer = copy.deepcopy(encoder.tokenizer)
    tokenizer.model_max_length = encoder.max_length  # graftzoo truncated at max_length; so will the pipeline
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    tag = "token-classification" if token else "text-classification"
    return Exported("transformers", tag, TOKEN_SNIPPET if token else SEQUENCE_SNIPPET)


def _check(encoder: HFEncoder, model: Any, head: LinearHead, token: bool) -> None:
    """The transformers model must give the run's logits (first sub-token of each word for token tasks)."""
    batch = encoder.collate(PROBE, train=False)
    with torch.no_grad():
        feats = encoder.forward_tokens(batch) if token else encoder(batch)
        ours = torch.nn.functional.linear(feats, head.weight, head.bias)
        theirs = model(**{k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")
                          if k in batch and k in encoder._inputs}).logits
        if token:
            index = batch["word_index"]
            theirs = theirs.gather(1, index.unsqueeze(-1).expand(-1, -1, theirs.size(-1)))
            mask = batch["word_mask"].unsqueeze(-1).bool()
            ours, theirs = ours.masked_select(mask), theirs.masked_select(mask)
    gap = float((ours - theirs).abs().max())
    if gap > 1e-3:
        raise TrainingError(f"{type(model).__name__} does not reproduce this run (max logit difference {gap:.2g}); "
                            "export it with --format onnx")

"""An ``hf-audio`` run as a transformers ``AutoModelForAudioClassification`` directory.

transformers' ``Wav2Vec2ForSequenceClassification`` (and its HuBERT, WavLM,
data2vec-audio siblings) computes ``classifier(mean_t(projector(h_t)))`` over
the valid frames of the last hidden layer, or of a softmax-weighted sum of
all layers. A linear head on the mean of one layer is exactly that, since
the mean of a linear map is the linear map of the mean: the run's head goes
into ``projector`` (``classifier_proj_size`` = number of labels), the
classifier is the identity, and a chosen middle layer becomes layer weights
whose softmax is one-hot. The feature extractor is saved beside it.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from graftzoo.api import TrainingError

if TYPE_CHECKING:
    from graftzoo.api import Exported, LinearHead
    from graftzoo_speech.wav2vec import AudioEncoder

SNIPPET = """import soundfile
from transformers import pipeline

classify = pipeline("audio-classification", model="{path}")
wave, rate = soundfile.read("speech.wav", dtype="float32")  # (a file name works too where ffmpeg is installed)
print(classify({"raw": wave, "sampling_rate": rate}, top_k=None))
"""


def export_transformers(encoder: AudioEncoder, out: Path, head: LinearHead, labels: list[str],
                        task: str) -> Exported:
    """Write ``encoder`` + ``head`` as an audio classification model + feature extractor into ``out``."""
    from transformers import AutoModelForAudioClassification

    from graftzoo.api import Exported, label_maps

    if task != "classification":
        raise TrainingError(f"an audio classification export needs a classification run, not {task}")
    if encoder.max_seconds is not None:
        raise TrainingError(f"this run crops audio to {encoder.max_seconds} s, which transformers' audio "
                            "classifiers do not; export it with --format onnx")
    n = len(labels)
    config = copy.deepcopy(encoder.model.config)
    for key, value in {**label_maps(labels), "classifier_proj_size": n}.items():
        setattr(config, key, value)
    layers = int(config.num_hidden_layers) + 1  # hidden states: the embeddings, then each layer
    layer = encoder.layer % layers
    config.use_weighted_layer_sum = layer != layers - 1
    model = AutoModelForAudioClassification.from_config(config, trust_remote_code=False)
    state = {f"{model.base_model_prefix}.{k}": v for k, v in encoder.model.state_dict().items()}
    state.update({"projector.weight": head.weight, "projector.bias": head.bias,
                  "classifier.weight": torch.eye(n), "classifier.bias": torch.zeros(n)})
    if config.use_weighted_layer_sum:
        weights = torch.full((layers,), -1e4)  # softmax -> exactly one-hot in float32
        weights[layer] = 0.0
        state["layer_weights"] = weights
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    if missing:
        raise TrainingError(f"{type(model).__name__} has parts this run does not ({', '.join(missing[:3])}); "
                            "export it with --format onnx")
    model.load_state_dict({k: v for k, v in state.items() if k in expected}, strict=True)
    model.eval()
    _check(encoder, model, head)
    model.save_pretrained(str(out))
    encoder.processor.save_pretrained(str(out))
    return Exported("transformers", "audio-classification", SNIPPET)


def _check(encoder: AudioEncoder, model: Any, head: LinearHead) -> None:
    """On a probe second of noise the transformers model must give the run's logits."""
    wave = torch.randn(encoder.sample_rate, generator=torch.Generator().manual_seed(0)).numpy() * 0.1
    batch = encoder.collate([wave], train=False)
    with torch.no_grad():
        ours = torch.nn.functional.linear(encoder(batch), head.weight, head.bias)
        kwargs = {"attention_mask": batch["attention_mask"]} if encoder.model.config.feat_extract_norm == "layer" \
            else {}
        theirs = model(batch["input_values"], **kwargs).logits
    gap = float((ours - theirs).abs().max())
    if gap > 1e-3:
        raise TrainingError(f"{type(model).__name__} does not reproduce this run (max logit difference {gap:.2g}); "
                            "export it with --format onnx")

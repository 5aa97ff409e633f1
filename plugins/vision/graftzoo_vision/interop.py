"""A vision run as a timm model directory: ``model.safetensors`` + ``config.json`` (timm's own ``save_for_hf``).

The run's network is timm's architecture with its classifier replaced by the
run's linear head, so it is rebuilt as ``create_model(arch, num_classes=N)``
with the head's weights in timm's classifier slot. ``pretrained_cfg`` carries
the run's eval preprocessing (input size, mean/std, interpolation, crop), so
``timm.data.resolve_data_config`` + ``create_transform`` give the pixels
Graftzoo's ``predict`` uses, and ``label_names`` the class names.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from graftzoo.api import TrainingError

if TYPE_CHECKING:
    from graftzoo.api import Exported, LinearHead

SNIPPET = """import timm, torch
from PIL import Image

model = timm.create_model("local-dir:{path}", pretrained=True).eval()  # or "hf-hub:ORG/REPO" once pushed
# equivalently, with the run's preprocessing and class count from config.json:
# cfg = json.load(open("{path}/config.json"))
# timm.create_model("{arch}", pretrained=True, num_classes={n},
#                   pretrained_cfg_overlay=dict(cfg["pretrained_cfg"], file="{path}/model.safetensors"))
config = timm.data.resolve_data_config({{}}, model=model)
transform = timm.data.create_transform(**config)
labels = model.pretrained_cfg["label_names"]
with torch.no_grad():
    probs = model(transform(Image.open("image.png").convert("RGB"))[None]).softmax(-1)[0]
print(labels[int(probs.argmax())], float(probs.max()))
"""


def export_timm(network: nn.Module, prep: dict[str, Any], out: Path, head: LinearHead, labels: list[str],
                task: str) -> Exported:
    """Write ``network`` (a timm model, classifier removed) with ``head`` as its classifier into ``out``."""
    from timm.models import save_for_hf

    from graftzoo.api import Exported

    if task != "classification":
        raise TrainingError(f"a timm export holds an image classifier; this run is {task}")
    model: Any = copy.deepcopy(network).float().eval()
    model.reset_classifier(len(labels))
    classifier = model.get_classifier()
    if not isinstance(classifier, nn.Linear) or tuple(classifier.weight.shape) != tuple(head.weight.shape):
        raise TrainingError(f"timm's {prep['arch']} classifier is {type(classifier).__name__}, not a linear layer of "
                            f"the head's shape {tuple(head.weight.shape)}; export with --format onnx instead")
    with torch.no_grad():
        classifier.weight.copy_(head.weight)
        classifier.bias.copy_(head.bias)
        x = torch.randn(2, *prep["input_size"], generator=torch.Generator().manual_seed(0))
        ours = nn.functional.linear(network.eval().float().forward_head(  # type: ignore[operator]
            network.forward_features(x), pre_logits=True), head.weight, head.bias)  # type: ignore[operator]
        gap = float((model(x) - ours).abs().max())
    if gap > 1e-3:  # timm's forward is not pre_logits features -> one linear layer for this architecture
        raise TrainingError(f"timm's {prep['arch']} with a {len(labels)}-class classifier does not reproduce the "
                            f"run (max logit difference {gap:.2g}); export with --format onnx instead")
    data_config = {"input_size": tuple(prep["input_size"]), "mean": tuple(prep["mean"]), "std": tuple(prep["std"]),
                   "interpolation": prep["interpolation"], "crop_pct": prep["crop_pct"],
                   "crop_mode": prep["crop_mode"]}
    save_for_hf(model, str(out), model_config={
        "label_names": list(labels),
        # the run's facts, not those of timm's default weights for this architecture
        "pretrained_cfg": {"tag": "graftzoo", "license": str(prep.get("license", "other")).lower()}},
        safe_serialization=True, data_config=data_config)
    return Exported("timm", "image-classification", SNIPPET.format(path="{path}", arch=prep["arch"], n=len(labels)))

"""Exports that other libraries load on their own: a transformers or a timm model directory.

Graftzoo does not invent a format here: the backbone's plugin writes the
directory the other library's own ``from_pretrained`` / ``create_model``
reads (weights as safetensors, config, labels, tokenizer or feature extractor
or preprocessing). Core's part is what every backend shares:

- LoRA adapters are merged into the base weights first (the other library
  knows nothing of peft here);
- the head must be one linear layer (``--head linear``/``token``): the
  classifiers of transformers' ``*For*Classification`` models and of timm are
  a single linear layer on the pooled (or per-token) features, so an ``mlp``
  head has no faithful equivalent and is refused with what to do instead;
- the directory is written next to its destination and renamed into place,
  so a failure leaves nothing half-written;
- a model card whose metadata the Hugging Face hub accepts.

A backbone opts in by defining ``export_<format>(out, head, labels, task)``
(``head`` a :class:`LinearHead`), returning an :class:`Exported`. A backbone
without the method, or whose configuration the other library cannot express
(e.g. mean pooling for a BERT sequence classifier), raises ``TrainingError``.
"""

from __future__ import annotations

import copy
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from graftzoo.errors import TrainingError

if TYPE_CHECKING:
    from graftzoo.train.model import GraftModel
    from graftzoo.train.run import Run

FORMATS = ("transformers", "timm")


@dataclass
class LinearHead:
    """The run's classifier as one linear map: ``logits = features @ weight.T + bias``."""

    weight: torch.Tensor  # [num_labels, feature_dim]
    bias: torch.Tensor  # [num_labels]


@dataclass
class Exported:
    """What a backend wrote, for the model card: library, pipeline tag and the loading snippet.

    ``{path}`` in the snippet stands for the export directory.
    """

    library: str
    pipeline_tag: str
    snippet: str


def merged_copy(model: GraftModel) -> GraftModel:
    """A copy of ``model`` with LoRA adapters folded into the base layers and removed (eval mode)."""
    out = copy.deepcopy(model).float().eval()
    try:
        from peft.tuners.lora import LoraLayer
    except ImportError:  # peft is part of the train extra; without it no run can hold adapters
        return out
    for name, module in list(out.named_modules()):
        if isinstance(module, LoraLayer):
            module.merge()
            parent_name, _, child = name.rpartition(".")
            parent = out.get_submodule(parent_name) if parent_name else out
            setattr(parent, child, module.get_base_layer())
    if hasattr(out.backbone, "_graftzoo_lora"):
        delattr(out.backbone, "_graftzoo_lora")
    return out


def linear_head(model: GraftModel, head_name: str, fmt: str) -> LinearHead:
    """The head's single linear layer (dropout is inactive at inference), or a ``TrainingError``."""
    layers = [m for m in model.head.modules() if not isinstance(m, nn.Sequential | nn.Dropout | nn.Identity)]
    if len(layers) != 1 or not isinstance(layers[0], nn.Linear) or layers[0].bias is None:
        raise TrainingError(f"the run's head {head_name!r} is not one linear layer, and {fmt}'s classification "
                            f"models have exactly that on top of the features; export it with --format onnx or "
                            f"safetensors, or tune with --head linear to get a {fmt} export")
    linear = layers[0]
    return LinearHead(linear.weight.detach().clone(), linear.bias.detach().clone())


def export_interop(run: Run, fmt: str, out: Path | None = None, overwrite: bool = False) -> tuple[Path, Exported]:
    """Write the run as a ``fmt`` model directory (default ``RUN/export/<fmt>``); returns it and its facts."""
    if fmt not in FORMATS:
        raise TrainingError(f"unknown interop format {fmt!r}; use one of {', '.join(FORMATS)}")
    dest = Path(out) if out is not None else run.path / "export" / fmt
    if dest.exists() and not overwrite:
        raise TrainingError(f"{dest} already exists; pass --overwrite or --out")
    exporter = getattr(run.model.backbone, f"export_{fmt}", None)
    if exporter is None:
        raise TrainingError(f"{run.entry.id}: its {run.entry.backbone!r} backbone has no {fmt} equivalent; export "
                            "it with --format onnx or safetensors")
    model = merged_copy(run.model)
    head = linear_head(model, run.config.head, fmt)
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        exported: Exported = getattr(model.backbone, f"export_{fmt}")(tmp, head, list(run.classes), run.task)
        exported.snippet = exported.snippet.replace("{path}", dest.name)  # a path relative to the card's parent
        from graftzoo.train.card import write_export_card

        write_export_card(tmp, run.info, exported)
        if dest.exists():
            shutil.rmtree(dest) if dest.is_dir() else dest.unlink()
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest, exported


def label_maps(labels: list[str]) -> dict[str, Any]:
    """``id2label`` / ``label2id`` as transformers configs hold them."""
    return {"id2label": dict(enumerate(labels)), "label2id": {name: i for i, name in enumerate(labels)}}

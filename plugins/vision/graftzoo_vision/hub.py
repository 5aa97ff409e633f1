"""How the ``timm`` adapter reads a hub repository (``hub_entry``): timm's published layout.

timm publishes a model as ``config.json`` (``architecture``, ``num_classes``,
``model_args``, ``pretrained_cfg`` with input size, mean, std, interpolation
and crop) beside ``model.safetensors``; this turns those facts into registry
entry fields. Nothing heavy is imported until timm is asked whether it knows
the architecture.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from graftzoo.api import HubRepo

_INPUT_KEYS = {"input_size": "size", "mean": "mean", "std": "std", "interpolation": "interpolation",
               "crop_pct": "crop_pct"}


def hub_entry(repo: HubRepo) -> dict[str, Any]:
    """Entry fields for a timm repository; ``ValueError`` says why it is not one this adapter builds."""
    arch = repo.config.get("architecture")
    if not isinstance(arch, str) or not arch:
        raise ValueError("config.json names no timm 'architecture'")
    import timm

    if not timm.is_model(arch):
        raise ValueError(f"timm {timm.__version__} has no architecture {arch!r}; upgrade timm")
    files = repo.weight_files()
    if files != ["model.safetensors"]:
        raise ValueError("timm repositories hold one model.safetensors; this one is sharded")
    pretrained = repo.config.get("pretrained_cfg") or {}
    fields: dict[str, Any] = {
        "files": files, "single_file": True, "arch": arch, "tasks": ["image-classification"],
        "input": {ours: pretrained[theirs] for theirs, ours in _INPUT_KEYS.items() if pretrained.get(theirs)},
        "description": f"timm {arch} from hf://{repo.repo}",
    }
    num_classes = repo.config.get("num_classes")
    if isinstance(num_classes, int) and num_classes > 0:
        fields["num_classes"] = num_classes
    model_args = {k: v for k, v in (repo.config.get("model_args") or {}).items() if k != "num_classes"}
    if model_args:  # num_classes is the entry's own field
        fields["config"] = {"timm_kwargs": model_args}
    return fields

"""Reading pretrained weights and mapping foreign layouts onto timm's names.

The zoo's offline weights are not in timm's layout: MobileNetV2 comes as
torchvision's state dict and EfficientNet-Lite0 with lukemelas'
``EfficientNet-PyTorch`` names. Both are converted here, tensor by tensor, and
then loaded strictly: a missing key, an unexpected key or a shape that does not
match is a ``SourceError`` that names the key, never a silently half-loaded
network.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from graftzoo.api import SourceError, load_state_dict

StateDict = dict[str, torch.Tensor]

#: Number of blocks in each of EfficientNet-Lite0's seven stages (lukemelas
#: numbers blocks 0..15 flat; timm nests them as blocks.stage.index).
LITE0_STAGE_DEPTHS = (1, 2, 2, 3, 3, 4, 1)


def read_state_dict(path: Path) -> StateDict:
    """Tensors from a weights file, through ``graftzoo.api.load_state_dict``.

    That reads safetensors directly and a ``.pth`` with
    ``torch.load(weights_only=True)`` once, converting it to safetensors in the
    cache; it never unpickles code. Note the converted file is ordered by name,
    not as the network registered its tensors (see ``from_torchvision``).
    """

    return dict(load_state_dict(Path(path)))


def _loadable(model: nn.Module) -> StateDict:
    """The model's state dict without BatchNorm's ``num_batches_tracked`` counters."""
    return {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}


def from_torchvision(state: Mapping[str, torch.Tensor], model: nn.Module, where: str,
                     tv_arch: str = "mobilenet_v2") -> StateDict:
    """Pair a torchvision state dict with the timm model's, in registration order, checking every shape.

    torchvision's MobileNetV2 and timm's ``mobilenetv2_100`` register the same
    tensors in the same order (262 without ``num_batches_tracked``) under
    different names, so registration order is the mapping. That order is
    taken from a freshly built torchvision ``tv_arch`` (not from the file: a
    safetensors copy of it is sorted by name); keys are checked by name
    first, so a missing or foreign tensor is named, then shapes pair by pair.
    """
    import torchvision

    order = [k for k in torchvision.models.get_model(tv_arch, weights=None).state_dict()
             if not k.endswith("num_batches_tracked")]
    given = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    missing = [k for k in order if k not in given]
    unexpected = [k for k in given if k not in set(order)]
    if missing:
        raise SourceError(f"{where}: missing key {missing[0]!r} ({len(missing)} missing in all) for torchvision "
                          f"{tv_arch}; the file is not weights for this architecture")
    if unexpected:
        raise SourceError(f"{where}: unexpected key {unexpected[0]!r} ({len(unexpected)} unexpected in all) for "
                          f"torchvision {tv_arch}; the file is not weights for this architecture")
    target = list(_loadable(model).items())
    if len(order) != len(target):
        raise SourceError(f"{where}: torchvision {tv_arch} has {len(order)} tensors, timm "
                          f"{type(model).__name__} expects {len(target)}; set config.torchvision_arch correctly")
    out: StateDict = {}
    for src_key, (dst_key, expected) in zip(order, target, strict=True):
        tensor = given[src_key]
        if tensor.shape != expected.shape:
            raise SourceError(
                f"{where}: key {src_key!r} has shape {tuple(tensor.shape)} but its timm counterpart "
                f"{dst_key!r} expects {tuple(expected.shape)}; the file is not weights for this architecture"
            )
        out[dst_key] = tensor
    return out


_LITE_STAGE0 = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_LITE_STAGES = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                "_project_conv": "conv_pwl", "_bn2": "bn3"}
_LITE_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
_BLOCK_RE = re.compile(r"^_blocks\.(\d+)\.([^.]+)\.(.+)$")


def from_lukemelas(state: Mapping[str, torch.Tensor], where: str,
                   depths: tuple[int, ...] = LITE0_STAGE_DEPTHS) -> StateDict:
    """Rename lukemelas EfficientNet(-Lite) keys to timm's ``efficientnet_lite*`` names."""
    starts = [sum(depths[:i]) for i in range(len(depths))]
    out: StateDict = {}
    for key, tensor in state.items():
        m = _BLOCK_RE.match(key)
        if m:
            flat, module, rest = int(m[1]), m[2], m[3]
            if flat >= sum(depths):
                raise SourceError(f"{where}: unexpected key {key!r}: block {flat} beyond the {sum(depths)} "
                                  "blocks of this architecture")
            stage = max(i for i, s in enumerate(starts) if s <= flat)
            names = _LITE_STAGE0 if stage == 0 else _LITE_STAGES
            if module not in names:
                raise SourceError(f"{where}: unexpected key {key!r}: no timm counterpart for {module!r}")
            new = f"blocks.{stage}.{flat - starts[stage]}.{names[module]}.{rest}"
        else:
            top, _, rest = key.partition(".")
            if top not in _LITE_TOP:
                raise SourceError(f"{where}: unexpected key {key!r}: no timm counterpart for {top!r}")
            new = f"{_LITE_TOP[top]}.{rest}"
        out[new] = tensor
    return out


def convert(layout: str, state: Mapping[str, torch.Tensor], model: nn.Module, where: str,
            config: Mapping[str, object] | None = None) -> StateDict:
    """Map a state dict in ``layout`` (timm, torchvision, lukemelas) onto ``model``'s names."""
    config = config or {}
    if layout == "timm":
        return dict(state)
    if layout == "torchvision":
        return from_torchvision(state, model, where, str(config.get("torchvision_arch", "mobilenet_v2")))
    if layout == "lukemelas":
        depths = tuple(int(d) for d in config.get("stage_depths", LITE0_STAGE_DEPTHS))  # type: ignore[attr-defined]
        return from_lukemelas(state, where, depths)
    raise SourceError(f"{where}: config.weights_layout {layout!r} is unknown; one of {', '.join(LAYOUTS)}")


LAYOUTS = ("timm", "torchvision", "lukemelas")


def load_strict(model: nn.Module, state: Mapping[str, torch.Tensor], where: str,
                ignore_prefixes: tuple[str, ...] = ()) -> None:
    """Copy ``state`` into ``model``; any missing/unexpected key or shape mismatch is a ``SourceError``.

    ``ignore_prefixes`` names keys the caller drops on purpose (the original
    classifier, when the backbone is built without it).
    """
    state = {k: v for k, v in state.items()
             if not k.endswith("num_batches_tracked") and not k.startswith(ignore_prefixes)}
    expected = _loadable(model)
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing:
        raise SourceError(f"{where}: missing key {missing[0]!r} ({len(missing)} missing in all); "
                          "the weights do not match this architecture")
    if unexpected:
        raise SourceError(f"{where}: unexpected key {unexpected[0]!r} ({len(unexpected)} unexpected in all); "
                          "the weights do not match this architecture")
    for key, tensor in state.items():
        if tensor.shape != expected[key].shape:
            raise SourceError(f"{where}: key {key!r} has shape {tuple(tensor.shape)}, the model expects "
                              f"{tuple(expected[key].shape)}")
    model.load_state_dict(state, strict=False)  # num_batches_tracked stays at its initial value


def load_pretrained(model: nn.Module, path: Path, layout: str, where: str,
                    classifier_prefixes: tuple[str, ...] = (), config: Mapping[str, object] | None = None) -> None:
    """Read ``path``, convert from ``layout`` to timm names, and load strictly into ``model``.

    ``classifier_prefixes`` names the original classifier's keys when
    ``model`` was built without it (they are dropped, nothing else is).
    Foreign layouts map every tensor, so ``model`` must then still have its
    classifier: build it with the entry's ``num_classes`` and reset after.
    """
    state = convert(layout, read_state_dict(path), model, where, config)
    load_strict(model, state, where, ignore_prefixes=classifier_prefixes)

"""The ``timm`` backbone adapter: any timm architecture as a Graftzoo ``Backbone``.

The network is built without its ImageNet classifier (``num_classes=0``), so
``forward`` returns pooled features. Its layer groups come from timm's own
``group_matcher`` (the grouping timm uses for layer-wise learning-rate decay):
stem, one group per stage, then the head convolution / final norm as a
separate ``head`` group, so that ``top-k`` and ``--lr-decay`` mean the same
thing for a MobileNet, a ResNet and a ViT.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from graftzoo.api import Backbone, OptionError, PluginError, RegistryError, TrainingError
from graftzoo_vision import images
from graftzoo_vision.mixing import TimmMixer
from graftzoo_vision.weights import load_pretrained

if TYPE_CHECKING:
    from graftzoo.api import ModelEntry

#: Options the factory understands (--image-size and --backbone-option KEY=VALUE).
OPTIONS = ("image_size", "keep_classifier", "interpolation", "crop_pct", "scale", "ratio", "hflip", "color_jitter",
           "augment", "extra_files")  # extra_files: what the engine hands back when rebuilding a run (none for images)

#: timm's suffix for "belongs with the final features, after every stage".
_HEAD_SUFFIX = 99999.0


class _Group(nn.Module):
    """A view onto the modules (and loose parameters) of one layer group.

    It holds references, not copies: freezing or ``eval()`` on the group acts
    on the backbone's own modules. It is not registered on the backbone, so
    the backbone's state dict keeps timm's names.
    """

    def __init__(self, modules: dict[str, nn.Module], params: dict[str, nn.Parameter]) -> None:
        super().__init__()
        for name, module in modules.items():
            self.add_module(name.replace(".", "_"), module)
        for name, param in params.items():
            self.register_parameter(name.replace(".", "_"), param)


def _compile_matcher(matcher: Mapping[str, Any]) -> list[tuple[re.Pattern[str], float, Any, str]]:
    compiled = []
    for ordinal, (key, spec) in enumerate(matcher.items()):
        if spec is None:
            continue
        for regex, suffix in spec if isinstance(spec, list | tuple) else [(spec, None)]:
            compiled.append((re.compile(regex), float(ordinal), suffix, key))
    return compiled


def _group_key(name: str, compiled: list[tuple[re.Pattern[str], float, Any, str]]) -> tuple[tuple[float, ...], str]:
    """(sort key, group name) of one parameter, following timm's ``group_with_matcher`` rules."""
    for regex, ordinal, suffix, key in compiled:
        m = regex.match(name)
        if not m:
            continue
        if suffix is not None and float(suffix[0]) == _HEAD_SUFFIX:
            return (float("inf"),), "head"
        nums = tuple(float(g) for g in m.groups() if g is not None)
        if key == "stem":
            return (ordinal, *nums), "stem"
        return (ordinal, *nums), m.group(0).rstrip(".")
    return (float("inf"),), "head"  # unmatched: neck/final norm, after every stage


def parameter_groups(model: nn.Module, exclude: tuple[str, ...] = ()) -> list[tuple[str, list[str]]]:
    """Parameter names by layer group, input to output; ``exclude`` prefixes are left out."""
    matcher = model.group_matcher(coarse=True)  # type: ignore[operator]
    if not isinstance(matcher, Mapping):  # a few models give a callable; use timm's own mapping then
        from timm.models._manipulate import group_parameters

        numbered = group_parameters(model, matcher)
        return [(f"group{i}", names) for i, names in sorted(numbered.items())]
    compiled = _compile_matcher(matcher)
    keyed: dict[tuple[float, ...], tuple[str, list[str]]] = {}
    for name, _ in model.named_parameters():
        if name.startswith(exclude):
            continue
        key, label = _group_key(name, compiled)
        keyed.setdefault(key, (label, []))[1].append(name)
    return [keyed[k] for k in sorted(keyed)]


def _group_module(model: nn.Module, names: list[str]) -> _Group:
    """The largest submodules whose parameters all belong to ``names``, plus loose parameters."""
    wanted = set(names)
    chosen: dict[str, nn.Module] = {}
    covered: set[str] = set()
    for mod_name, module in model.named_modules():
        if not mod_name or any(mod_name.startswith(c + ".") for c in chosen):
            continue
        own = {f"{mod_name}.{p}" for p, _ in module.named_parameters()}
        if own and own <= wanted:
            chosen[mod_name] = module
            covered |= own
    params = dict(model.named_parameters())
    loose = {n: params[n] for n in names if n not in covered}  # e.g. a ViT's cls_token, pos_embed
    return _Group(chosen, loose)


def _is_cnn(model: nn.Module) -> bool:
    """True when convolutions hold most of the weights (channels_last pays off then)."""
    conv = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Conv2d))
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))
    return conv > linear


class TimmBackbone(Backbone):
    """A timm network without its classifier, grouped and with its input pipeline."""

    modality = "vision"

    def __init__(self, entry: ModelEntry, weights: Path | None, options: Mapping[str, Any]) -> None:
        super().__init__()
        import timm

        arch = entry.arch_name
        unknown = sorted(k for k, v in options.items() if k not in OPTIONS and v is not None)
        if unknown:
            raise OptionError(f"model {entry.id!r}: the timm adapter has no option {unknown[0]!r}; "
                                f"valid: {', '.join(OPTIONS)}")
        self.entry_id = entry.id
        self.entry_license = entry.license
        self.keep_classifier = str(options.get("keep_classifier", False)).lower() in ("true", "1", "yes")
        layout = str(entry.config.get("weights_layout", "timm"))
        num_classes = entry.num_classes
        where = f"model {entry.id!r} ({weights})"
        try:
            # Built with the original head when its size is known: foreign layouts map every
            # tensor (classifier included), and keep_classifier needs it; removed below otherwise.
            model: Any = timm.create_model(arch, pretrained=False, num_classes=num_classes or 0,
                                      **dict(entry.config.get("timm_kwargs", {})))
        except RuntimeError as exc:  # timm: "Unknown model (...)"
            raise PluginError(f"model {entry.id!r}: timm cannot build architecture {arch!r}: {exc}") from None
        classifier = str(model.pretrained_cfg.get("classifier") or "")
        self.classifier_name = classifier if self.keep_classifier else ""
        if self.keep_classifier and not num_classes:
            raise RegistryError(f"model {entry.id!r}: keep_classifier needs 'num_classes' in its registry entry")
        if weights is not None:
            if not num_classes and layout != "timm":
                raise RegistryError(f"model {entry.id!r}: a {layout!r} weights layout needs 'num_classes' in the entry")
            prefixes = (classifier + ".",) if classifier and not num_classes else ()
            load_pretrained(model, Path(weights), layout, where, classifier_prefixes=prefixes, config=entry.config)
        if num_classes and not self.keep_classifier:
            model.reset_classifier(0)
        self.model = model
        self.feature_dim = int(getattr(model, "head_hidden_size", None) or model.num_features)
        self.channels_last = bool(entry.config.get("channels_last", _is_cnn(model)))
        self._prep = images.resolve_preprocessing(entry.input, model.pretrained_cfg, options)
        self._prep.update({"adapter": "timm", "arch": arch})
        self._crop_given = options.get("crop_pct") is not None
        self._transforms: dict[bool, Any] = {}
        exclude = (classifier + ".",) if self.keep_classifier and classifier else ()
        self._groups = [(name, _group_module(model, names)) for name, names in parameter_groups(model, exclude)]
        if exclude:
            self._groups.append(("classifier", _group_module(model, [n for n, _ in model.named_parameters()
                                                                      if n.startswith(exclude)])))

    # -- the Backbone contract --------------------------------------------------
    def groups(self) -> list[tuple[str, nn.Module]]:
        """stem, each stage, head (and ``classifier`` with keep_classifier): every parameter once."""
        return list(self._groups)

    def forward(self, batch: Any) -> torch.Tensor:
        """Pooled features ``[B, feature_dim]`` (the input of the original classifier)."""
        x = self._pixels(batch)
        features: torch.Tensor = self.model.forward_head(self.model.forward_features(x), pre_logits=True)
        return features

    def logits(self, batch: Any) -> torch.Tensor:
        """Scores of the original pretrained classifier (only with ``keep_classifier=True``)."""
        if not self.keep_classifier:
            raise OptionError(f"model {self.entry_id!r} was built without its classifier; "
                              "pass keep_classifier=True")
        logits: torch.Tensor = self.model(self._pixels(batch))
        return logits

    def preprocessing(self) -> dict[str, Any]:
        """Input size, mean/std, interpolation, crop and train augmentation, JSON-ready."""
        return dict(self._prep)

    def fine_tuning(self) -> dict[str, Any]:
        """A fine-tuned network is evaluated on the crop its training crops match (``images.matched_crop``).

        The user's ``--crop-pct`` wins; without train augmentation the model's own crop stays (training saw it).
        """
        crop = None if self._crop_given else images.matched_crop(self._prep["train"])
        if crop is None:
            return {}
        self._prep["crop_pct"] = crop
        self._transforms.clear()
        return {"crop_pct": crop}

    def collate(self, samples: list[Any], train: bool) -> torch.Tensor:
        """File paths, PIL images or arrays -> normalised ``[B, 3, H, W]`` (augmented if ``train``)."""
        if train not in self._transforms:
            self._transforms[train] = images.build_transform(self._prep, train)
        if not train:
            batch: torch.Tensor = images.stack(samples, self._transforms[train], self.channels_last)
        else:
            # timm's random resized crop draws from Python's ``random``; the engine seeds torch.
            # Seeding a private draw from torch's generator makes augmentation follow --seed
            # (and a resumed epoch), and the caller's ``random`` state is left as it was.
            state = random.getstate()
            random.seed(int(torch.randint(0, 2**62, (1,)).item()))
            try:
                batch = images.stack(samples, self._transforms[train], self.channels_last)
            finally:
                random.setstate(state)
        return batch.contiguous(memory_format=torch.channels_last) if self.channels_last else batch

    def batch_mixer(self, settings: Mapping[str, float], num_classes: int) -> TimmMixer:
        """timm's ``Mixup`` in batch mode (``--mixup``/``--cutmix``): mixed images and soft targets."""
        return TimmMixer(settings, num_classes)

    def lora_targets(self) -> list[str]:
        """Leaf names for peft: linear layers of a transformer, pointwise convolutions of a CNN.

        Depthwise convolutions are left out: a low-rank update of a
        per-channel 3x3 filter saves nothing.
        """
        names: set[str] = set()
        for name, module in self.model.named_modules():
            if not name or (self.classifier_name and name.startswith(self.classifier_name)):
                continue
            if self.channels_last:
                hit = isinstance(module, nn.Conv2d) and module.groups == 1 and module.kernel_size == (1, 1)
            else:
                hit = isinstance(module, nn.Linear)
            if hit:
                names.add(name.rsplit(".", 1)[-1])
        return sorted(names)

    def export_timm(self, out: Path, head: Any, labels: list[str], task: str) -> Any:
        """Write this network with ``head`` as its classifier as a timm model directory (see ``interop``)."""
        from graftzoo_vision.interop import export_timm

        if self.keep_classifier:
            raise TrainingError(f"model {self.entry_id!r}: a keep_classifier run has no timm equivalent; "
                                "export it with --format onnx")
        return export_timm(self.model, {**self._prep, "license": self.entry_license}, out, head, labels, task)

    def _pixels(self, batch: Any) -> torch.Tensor:
        if isinstance(batch, Mapping):
            batch = batch["pixel_values"]
        if self.channels_last and batch.dim() == 4:
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch  # type: ignore[no-any-return]


def create(entry: ModelEntry, weights: Path | None, options: Mapping[str, Any]) -> TimmBackbone:
    """Factory registered as the ``timm`` backbone adapter: ``(entry, weights, options)``."""
    return TimmBackbone(entry, weights, options)

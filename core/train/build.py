"""Building a model: registry entry, backbone adapter, head and freeze policy, each looked up once.

Every part of a model is found here and nowhere else: ``lookup_parts`` resolves
the adapter, head and policy registrations of one run (a ``PluginError`` lists
the valid names), ``build_model`` turns them into a ``GraftModel`` and
``check_contract`` pushes one small batch through it before anything is
written, so a broken adapter or an option the model cannot take is one error
line instead of a traceback and a half-written run directory.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from graftzoo.errors import DataError, GraftError, OptionError, PluginError, RegistryError, TrainingError
from graftzoo.plugins import Registration, get_plugins
from graftzoo.registry import ModelEntry, Registry, load_registry
from graftzoo.train.backbone import Backbone
from graftzoo.train.model import GraftModel

if TYPE_CHECKING:
    from graftzoo.train.config import TrainConfig
    from graftzoo.train.policies import FreezePolicy


def resolve_model(model: str | ModelEntry, registry: Registry | None = None) -> tuple[ModelEntry, Path | None]:
    """The entry of a model id, entry or hub reference, and the run directory when it names a pushed run."""
    if isinstance(model, str) and model.startswith("hf://"):
        from graftzoo.sources.hubref import resolve_ref

        resolved = resolve_ref(model)
        return resolved.entry, resolved.run_dir
    return resolve_entry(model, registry), None


def resolve_entry(model: str | ModelEntry, registry: Registry | None = None) -> ModelEntry:
    """A ``ModelEntry`` from an id (registry lookup, which lists close matches), a hub reference or an entry."""
    if isinstance(model, ModelEntry):
        return model
    if model.startswith("hf://"):
        return resolve_model(model)[0]
    registry = load_registry() if registry is None else registry
    try:
        return registry.get(model)
    except RegistryError as exc:
        ids = sorted(e.id for e in registry)
        listing = ", ".join(ids[:30]) + (" ..." if len(ids) > 30 else "")
        raise RegistryError(f"{exc}; valid models: {listing or 'none'}") from None


def fetch_weights(entry: ModelEntry) -> Path:
    """The verified local weights of ``entry`` (``graftzoo.sources.fetch``)."""
    from graftzoo.sources import fetch

    return Path(fetch(entry))


@dataclass(frozen=True)
class Parts:
    """The registrations one run is built from: backbone adapter, head and freeze policy."""

    adapter: Registration
    head: Registration
    policy: Registration


def adapter_for(entry: ModelEntry, registry: Registry | None = None) -> Registration:
    """The backbone adapter registration of ``entry``, or a ``PluginError`` saying what to install."""
    try:
        return get_plugins().get("backbones", entry.backbone)
    except PluginError as exc:
        try:
            sources = (registry if registry is not None else load_registry()).adapter_sources
        except GraftError:
            sources = {}
        dist = sources.get(entry.backbone)
        todo = f"install {dist} (pip install {dist})" if dist else "install the plugin that provides it"
        raise PluginError(f"{entry.id}: no installed plugin provides the {entry.backbone!r} backbone adapter; "
                          f"{todo} and check 'graft plugins' ({exc})") from None


def head_name(config: TrainConfig, task: str) -> str:
    """The head a run uses: token classification turns the default ``linear`` into ``token``."""
    return "token" if task == "token-classification" and config.head == "linear" else config.head


def lookup_parts(config: TrainConfig, entry: ModelEntry, task: str = "classification") -> Parts:
    """Look up the adapter, head and policy of a run, once each."""
    plugins = get_plugins()
    return Parts(adapter_for(entry), plugins.get("heads", head_name(config, task)),
                 plugins.get("freeze_policies", config.policy))


def build_backbone(entry: ModelEntry, pretrained: bool = True, options: Mapping[str, Any] | None = None,
                   adapter: Registration | None = None) -> Backbone:
    """Build ``entry``'s backbone through its adapter plugin.

    ``pretrained`` fetches (and verifies) the weights first; otherwise the
    adapter initialises at random. ``options`` are the user's preprocessing
    overrides (e.g. ``{"image_size": 64}``), passed to the adapter unchanged.
    """
    reg = adapter if adapter is not None else adapter_for(entry)
    factory = reg.resolve()
    weights = fetch_weights(entry) if pretrained else None
    where = f"backbone adapter {entry.backbone!r} of plugin {reg.plugin!r}"
    try:
        backbone = factory(entry, weights, dict(options or {}))
    except GraftError:
        raise
    except Exception as exc:  # third-party adapter code: one named line, not a traceback
        raise PluginError(f"{where} cannot build {entry.id}: {_reason(exc)}") from exc
    if not isinstance(backbone, Backbone):
        raise PluginError(f"{where} returned {type(backbone).__name__}, not a graftzoo Backbone")
    if not isinstance(backbone.feature_dim, int) or backbone.feature_dim <= 0:
        raise PluginError(f"{where}: {entry.id} has feature_dim {backbone.feature_dim!r}; it must be the positive "
                          "width of the pooled features")
    if not backbone.groups():
        raise PluginError(f"{where}: {entry.id} has no groups(); freeze policies need its layers in groups")
    return backbone


def build_head(head: str | Registration, feature_dim: int, num_outputs: int, **options: Any) -> nn.Module:
    """A head by its registration or registered name (``linear``, ``mlp``, ``token`` or a plugin's)."""
    reg = head if isinstance(head, Registration) else get_plugins().get("heads", head)
    where = f"head {reg.name!r} of plugin {reg.plugin!r}"
    try:
        module = reg.resolve()(feature_dim, num_outputs, **options)
    except (TypeError, ValueError) as exc:
        raise OptionError(f"{where}: {exc}") from exc
    except GraftError:
        raise
    except Exception as exc:  # third-party head code
        raise PluginError(f"{where} raised on construction: {_reason(exc)}") from exc
    if not isinstance(module, nn.Module):
        raise PluginError(f"{where} returned {type(module).__name__}, not a torch nn.Module")
    return module


def make_policy(policy: str | Registration, config: TrainConfig) -> FreezePolicy:
    """The configured freeze policy, built from its registration (or registered name)."""
    reg = policy if isinstance(policy, Registration) else get_plugins().get("freeze_policies", policy)
    try:
        made: FreezePolicy = reg.resolve()(**config.policy_options())
    except (TypeError, ValueError) as exc:
        raise OptionError(f"freeze policy {reg.name!r} of plugin {reg.plugin!r}: {exc}") from exc
    except GraftError:
        raise
    except Exception as exc:  # third-party policy code
        raise PluginError(f"freeze policy {reg.name!r} of plugin {reg.plugin!r} raised on construction: "
                          f"{_reason(exc)}") from exc
    return made


#: options every head / policy receives from the command line (--dropout, --unfreeze, ...), not --*-option ones
COMMON_OPTIONS = {"heads": ("dropout", "hidden"),
                  "freeze_policies": ("unfreeze", "unfreeze_every", "lora_rank", "lora_alpha")}


def factory_options(reg: Registration) -> dict[str, Any]:
    """A head's or policy's own options: name -> default, from its factory's signature (a class: ``__init__``).

    The first two parameters of a head factory (feature_dim, num_outputs) and
    the options every head or policy receives (``COMMON_OPTIONS``) are not its
    own; ``**options`` catch-alls are not options either.
    """
    import inspect

    factory = reg.resolve()
    try:
        params = list(inspect.signature(factory).parameters.values())
    except (TypeError, ValueError):
        return {}
    if reg.kind == "heads":
        params = params[2:]
    skip = set(COMMON_OPTIONS.get(reg.kind, ()))
    return {p.name: (None if p.default is inspect.Parameter.empty else p.default) for p in params
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in skip}


def typed_options(reg: Registration, raw: Mapping[str, Any], flag: str) -> dict[str, Any]:
    """``--head-option`` / ``--policy-option`` values checked against the factory's options and typed like
    their defaults (an unknown name is an ``OptionError`` listing the valid ones)."""
    known = factory_options(reg)
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in known:
            valid = ", ".join(known) or "none"
            raise OptionError(f"{flag} {key}: {_KIND_WORD[reg.kind]} {reg.name!r} of plugin {reg.plugin!r} has no "
                              f"option {key!r}; its options: {valid} ('graft info --{_KIND_FLAG[reg.kind]} "
                              f"{reg.name}' lists them)")
        out[key] = _typed(value, known[key], f"{flag} {key}")
    return out


_KIND_WORD = {"heads": "head", "freeze_policies": "freeze policy"}
_KIND_FLAG = {"heads": "head", "freeze_policies": "policy"}


def _typed(value: Any, default: Any, where: str) -> Any:
    if default is None or (isinstance(value, type(default)) and not isinstance(default, bool)):
        return value
    text = str(value)
    try:
        if isinstance(default, bool):
            if text.lower() not in ("1", "0", "true", "false", "yes", "no"):
                raise ValueError(text)
            return text.lower() in ("1", "true", "yes")
        return type(default)(text)
    except (TypeError, ValueError):
        raise OptionError(f"{where}={text}: expected a {type(default).__name__} (default {default!r})") from None


def fine_tuning_options(model: GraftModel, policy: FreezePolicy, entry: ModelEntry) -> dict[str, Any]:
    """The adapter's pipeline changes for a backbone the policy trains (``Backbone.fine_tuning``), checked.

    Nothing for a policy that caches features: its backbone never changes, so it keeps the pipeline it was
    pretrained with. The options returned belong in the run's backbone options.
    """
    if policy.caches_features:
        return {}
    where = f"backbone adapter {entry.backbone!r}"
    try:
        options = model.backbone.fine_tuning()
    except GraftError:
        raise
    except Exception as exc:  # third-party adapter code
        raise PluginError(f"{where}: fine_tuning() failed on {entry.id}: {_reason(exc)}") from exc
    if not isinstance(options, dict):
        raise PluginError(f"{where}: fine_tuning() returned {type(options).__name__}, not a dict of options")
    return options


def build_model(entry: ModelEntry, config: TrainConfig, num_classes: int, task: str, pretrained: bool, *,
                extra_options: dict[str, Any] | None = None, parts: Parts | None = None) -> GraftModel:
    """Backbone (through its plugin) + head, as configured; no policy applied yet."""
    parts = parts if parts is not None else lookup_parts(config, entry, task)
    options = {**config.adapter_options(), **(extra_options or {})}
    backbone = build_backbone(entry, pretrained=pretrained, options=options, adapter=parts.adapter)
    if task == "token-classification" and not backbone.supports_tokens:
        raise DataError(f"{entry.id}: its backbone adapter {entry.backbone!r} has no token features; "
                        "token classification needs a text encoder")
    head = build_head(parts.head, backbone.feature_dim, num_classes, **config.head_options())
    return GraftModel(backbone, head, task)


def check_contract(model: GraftModel, samples: Sequence[Any], entry: ModelEntry, num_classes: int,
                   options: Mapping[str, Any]) -> None:
    """Push one small batch through backbone + head; a mismatch is one error naming the part and the field."""
    check_features(model, probe_features(model, samples, entry, options), entry, num_classes)


def probe_features(model: GraftModel, samples: Sequence[Any], entry: ModelEntry,
                   options: Mapping[str, Any]) -> torch.Tensor:
    """The backbone's features of a few samples (eval mode, no augmentation), or one named error."""
    backbone = model.backbone
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            feats: torch.Tensor = model.features(backbone.collate(list(samples), train=False))
    except GraftError:
        raise
    except Exception as exc:  # the adapter's code on the user's options
        if options.get("image_size") is not None:
            raise OptionError(f"{entry.id} cannot take --image-size {options['image_size']} (its input size is "
                              f"fixed{_fixed_size(entry)}): {_reason(exc)}; leave --image-size out"
                              ) from exc
        raise PluginError(f"{_adapter_where(entry, backbone)} failed on a batch of {len(samples)} samples of "
                          f"{entry.id}: {_reason(exc)}") from exc
    finally:
        model.train(was)
    return feats


def probe_width(backbone: Backbone, samples: Sequence[Any], entry: ModelEntry, options: Mapping[str, Any]) -> None:
    """The contract of a backbone alone (``graft rank`` has no head): two samples give features of its width."""
    model = GraftModel(backbone, nn.Identity())
    _check_width(model, probe_features(model, samples, entry, options), entry)


def check_features(model: GraftModel, feats: Any, entry: ModelEntry, num_classes: int) -> None:
    """Features of the declared width and a floating dtype, and a head that maps them to ``num_classes``."""
    _check_width(model, feats, entry)
    _check_head(model, feats.to(next(iter(model.head.parameters()), feats).device), num_classes)


def _check_width(model: GraftModel, feats: Any, entry: ModelEntry) -> None:
    backbone = model.backbone
    where = _adapter_where(entry, backbone)
    if not isinstance(feats, torch.Tensor) or feats.shape[-1] != backbone.feature_dim:
        got = tuple(feats.shape) if isinstance(feats, torch.Tensor) else type(feats).__name__
        raise PluginError(f"{where}: declares feature_dim {backbone.feature_dim} but returns features of shape "
                          f"{got} for {entry.id}; set feature_dim to the width it returns")
    if not feats.is_floating_point():
        raise PluginError(f"{where}: returns {feats.dtype} features for {entry.id}; features must be floating "
                          "point")


def _check_head(model: GraftModel, feats: torch.Tensor, num_classes: int) -> None:
    try:
        with torch.no_grad():
            logits = model.head(feats)
    except Exception as exc:  # a plugin's head
        raise PluginError(f"head {type(model.head).__name__} fails on features of shape {tuple(feats.shape)}: "
                          f"{_reason(exc)}") from exc
    if not isinstance(logits, torch.Tensor) or logits.shape[-1] != num_classes:
        got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise PluginError(f"head {type(model.head).__name__} returns {got} for {num_classes} classes; its last "
                          "dimension must be the number of classes")


def _adapter_where(entry: ModelEntry, backbone: Backbone) -> str:
    reg = get_plugins().collect("backbones").get(entry.backbone)
    plugin = f" of plugin {reg.plugin!r}" if reg is not None else ""
    return f"backbone adapter {entry.backbone!r}{plugin} ({type(backbone).__name__})"


def _fixed_size(entry: ModelEntry) -> str:
    size = entry.input.get("size")
    return f" at {size[-1]}x{size[-1]}" if isinstance(size, list) and size else ""


def start_from_run(model: GraftModel, run_dir: Path, classes: Sequence[str], with_head: bool) -> None:
    """Load a finished run's fine-tuned backbone (and, for the same labels, its head) into ``model``."""
    from safetensors.torch import load_file

    info = json.loads((run_dir / "graft.json").read_text(encoding="utf-8"))
    state = load_file(str(run_dir / "model.safetensors"))
    parts = {"backbone": model.backbone, **({"head": model.head} if with_head else {})}
    if with_head and list(info.get("labels", [])) != list(classes):
        raise OptionError(f"--init-head: the run {run_dir} was trained on labels {', '.join(info.get('labels', []))}"
                          f", this data has {', '.join(classes)}; drop --init-head to start with a new head")
    for prefix, module in parts.items():
        own = {k[len(prefix) + 1:]: v for k, v in state.items() if k.startswith(prefix + ".")}
        try:
            result = module.load_state_dict(own, strict=False)
        except RuntimeError as exc:
            raise TrainingError(f"{run_dir}: its {prefix} weights do not fit the model rebuilt from its entry "
                                f"({_reason(exc)})") from exc
        # safetensors stores a tied tensor once: a key is missing only if it shares no storage with a loaded one
        tensors = module.state_dict(keep_vars=True)
        loaded = {tensors[k].data_ptr() for k in own if k in tensors}
        missing = [k for k in result.missing_keys if tensors[k].data_ptr() not in loaded]
        if missing or result.unexpected_keys:
            bad = (missing or result.unexpected_keys)[0]
            raise TrainingError(f"{run_dir}: its {prefix} weights do not fit the model rebuilt from its entry "
                                f"({'missing' if missing else 'unexpected'} key {bad!r}); a run tuned with LoRA "
                                "cannot be a starting point yet")


def run_extra_files(run_dir: Path) -> dict[str, Any]:
    """A run directory's copies of its backbone's extra files, as the adapter option ``extra_files``."""
    info = json.loads((run_dir / "graft.json").read_text(encoding="utf-8"))
    extra = {name: str(run_dir / rel) for name, rel in info.get("extra_files", {}).items()}
    return {"extra_files": extra} if extra else {}


def weights_identity(entry: ModelEntry, pretrained: bool, start: Path | None = None) -> str | None:
    """A feature-cache key for the starting weights: entry id, source and checksums; None for random init.

    The source is part of it because a whole hub snapshot (``hf://org/repo@REV``)
    is pinned by its revision alone: moving an entry to another commit must not
    reuse the old commit's features.

    Random initialisations are never cached: two of them differ unless seeded
    identically, and features of random weights are cheap to recompute.
    """
    if not pretrained:
        return None
    key = {"id": entry.id, "source": entry.source, "sha256": entry.sha256, "files": dict(sorted(entry.files.items()))}
    if start is not None:  # a pushed run's weights: the snapshot folder is named by its commit
        key["start"] = str(start.resolve())
    return json.dumps(key, sort_keys=True)


def _reason(exc: BaseException) -> str:
    """``Type: first line`` of an exception from plugin code: one line for the user, the cause stays chained."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")

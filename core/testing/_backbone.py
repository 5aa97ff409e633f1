"""Conformance checks for backbone adapters: groups, features, preprocessing, collation, save/load."""

from __future__ import annotations

import itertools
import json
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graftzoo.errors import GraftError
from graftzoo.registry import ModelEntry, modalities
from graftzoo.testing._base import fail, shape_of

if TYPE_CHECKING:
    import torch
    from torch import nn

    from graftzoo.train.backbone import Backbone


def _name(backbone: Any) -> str:
    return f"backbone {type(backbone).__name__}"


def batch_equal(a: Any, b: Any) -> bool:
    """Exact equality of two batches: tensors, dicts, lists and plain values, nested."""
    import torch

    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.shape == b.shape and a.dtype == b.dtype and bool(torch.equal(a, b))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(batch_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(batch_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def check_groups(backbone: Backbone) -> list[tuple[str, nn.Module]]:
    """Groups are named modules with parameters, and every parameter is in exactly one group."""
    from torch import nn

    what = _name(backbone)
    groups = backbone.groups()
    if not isinstance(groups, list) or not groups:
        raise fail(what, f"groups() returned {groups!r}", "return a non-empty list of (name, module) pairs")
    seen_names: set[str] = set()
    owner: dict[int, str] = {}
    for item in groups:
        if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)
                and isinstance(item[1], nn.Module)):
            raise fail(what, f"groups() item {item!r} is not a (name, nn.Module) pair")
        gname, module = item
        if not gname or gname in seen_names:
            raise fail(what, f"group name {gname!r} is empty or used twice", "give each group a unique name")
        seen_names.add(gname)
        params = list(module.parameters())
        if not params:
            raise fail(what, f"group {gname!r} has no parameters", "drop it or merge it into a neighbouring group")
        for p in params:
            if id(p) in owner:
                pname = _param_name(backbone, p)
                raise fail(what, f"parameter {pname!r} is in groups {owner[id(p)]!r} and {gname!r}",
                           "every parameter must be in exactly one group")
            owner[id(p)] = gname
    orphans = [n for n, p in backbone.named_parameters() if id(p) not in owner]
    if orphans:
        more = f" (and {len(orphans) - 1} more)" if len(orphans) > 1 else ""
        raise fail(what, f"parameter {orphans[0]!r}{more} is in no group",
                   "add its module to a group in groups(), or drop it from the backbone")
    return groups


def _param_name(module: nn.Module, param: Any) -> str:
    return next((n for n, p in module.named_parameters() if p is param), "?")


def check_preprocessing(backbone: Backbone) -> dict[str, Any]:
    """``preprocessing()`` is a dict that survives a JSON round trip unchanged (it is stored with every run)."""
    what = _name(backbone)
    prep = backbone.preprocessing()
    if not isinstance(prep, dict):
        raise fail(what, f"preprocessing() returned {type(prep).__name__}", "return a dict")
    for key, value in prep.items():
        try:
            text = json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise fail(what, f"preprocessing() key {key!r} is not JSON-serialisable ({exc})",
                       "use str, int, float, bool, None, lists and dicts") from None
        if json.loads(text) != value or type(json.loads(text)) is not type(value):
            raise fail(what, f"preprocessing() key {key!r} changes through JSON ({value!r} -> {json.loads(text)!r})",
                       "use lists instead of tuples and str keys")
    return prep


def _features(backbone: Backbone, batch: Any, n: int) -> torch.Tensor:
    import torch

    what = _name(backbone)
    out = backbone(batch)
    if not isinstance(out, torch.Tensor):
        raise fail(what, f"forward() returned {shape_of(out)}", "return pooled features as a [B, feature_dim] tensor")
    if tuple(out.shape) != (n, backbone.feature_dim):
        raise fail(what, f"feature_dim is {backbone.feature_dim} but forward() returned features of shape "
                         f"{tuple(out.shape)} for {n} samples", f"expected ({n}, {backbone.feature_dim})")
    if not out.is_floating_point() or not bool(torch.isfinite(out).all()):
        raise fail(what, "forward() returned non-float or non-finite features")
    return out


def _collate(backbone: Backbone, samples: Sequence[Any], train: bool) -> Any:
    try:
        return backbone.collate(list(samples), train=train)
    except GraftError:
        raise
    except Exception as exc:
        raise fail(_name(backbone), f"collate(samples, train={train}) raised {type(exc).__name__}: {exc}") from exc


def check_features(backbone: Backbone, samples: Sequence[Any]) -> torch.Tensor:
    """collate + forward give ``[len(samples), feature_dim]`` features, deterministically in eval mode."""
    import torch

    what = _name(backbone)
    if len(samples) < 2:
        raise fail(what, "the kit needs at least 2 sample inputs (BatchNorm cannot train on one)")
    if not isinstance(backbone.feature_dim, int) or backbone.feature_dim <= 0:
        raise fail(what, f"feature_dim is {backbone.feature_dim!r}", "set it to the size of forward()'s output")
    batch = _collate(backbone, samples, train=False)
    if not batch_equal(batch, _collate(backbone, samples, train=False)):
        raise fail(what, "collate(samples, train=False) is not deterministic", "augment only when train=True")
    backbone.eval()
    with torch.no_grad():
        first = _features(backbone, batch, len(samples))
        second = _features(backbone, batch, len(samples))
    if not torch.allclose(first, second, atol=1e-6, rtol=1e-5):
        raise fail(what, "forward() in eval mode gives different features for the same batch",
                   "dropout and augmentation must be off in eval mode (frozen features are cached)")
    backbone.train()
    try:
        with torch.no_grad():
            _features(backbone, _collate(backbone, samples, train=True), len(samples))
    finally:
        backbone.eval()
    if backbone.supports_tokens:
        with torch.no_grad():
            tokens = backbone.forward_tokens(batch)
        if not (isinstance(tokens, torch.Tensor) and tokens.dim() == 3 and tokens.shape[0] == len(samples)
                and tokens.shape[2] == backbone.feature_dim):
            raise fail(what, f"supports_tokens is True but forward_tokens() returned {shape_of(tokens)}",
                       f"expected [B={len(samples)}, T, {backbone.feature_dim}]")
    return first


def check_default_views(backbone: Backbone, samples: Sequence[Any], draws: int = 4) -> None:
    """``default_views`` is a count, and when it is not 0, training collation differs between torch seeds: a
    frozen run on small data caches that many views of it (``torch.manual_seed`` before each), and equal views
    would only repeat the plain features."""
    import torch

    what = _name(backbone)
    views = backbone.default_views
    if isinstance(views, bool) or not isinstance(views, int) or views < 0:
        raise fail(what, f"default_views is {views!r}", "set it to a count of views (0 for none)")
    if not views:
        return
    with torch.random.fork_rng():
        batches = []
        for seed in range(draws):
            torch.manual_seed(seed)
            batches.append(_collate(backbone, samples, train=True))
    if all(batch_equal(batches[0], b) for b in batches[1:]):
        raise fail(what, f"default_views is {views} but collate(samples, train=True) gave the same batch for "
                         f"{draws} torch seeds", "draw augmentation from torch's generator, or set default_views = 0")


def check_group_order(backbone: Backbone, samples: Sequence[Any]) -> None:
    """Every group affects the features, and forward() reaches the groups in the order groups() lists them."""
    import torch

    what = _name(backbone)
    groups = check_groups(backbone)
    first_call: dict[int, int] = {}  # group index -> order of its first module call
    module_group: dict[int, int] = {}
    for index, (_, module) in enumerate(groups):
        for sub in module.modules():
            module_group.setdefault(id(sub), index)

    def hook(module: nn.Module, _args: Any) -> None:
        index = module_group[id(module)]
        first_call.setdefault(index, len(first_call))

    handles = [sub.register_forward_pre_hook(hook) for _, module in groups for sub in module.modules()]
    flags = {id(p): p.requires_grad for p in backbone.parameters()}
    try:
        backbone.eval()
        backbone.zero_grad(set_to_none=True)
        for p in backbone.parameters():
            p.requires_grad_(True)
        features = backbone(_collate(backbone, samples, train=False))
        # A random projection: a plain sum is constant under a final LayerNorm without bias.
        generator = torch.Generator().manual_seed(0)
        weights = torch.randn(features.shape, generator=generator, dtype=features.dtype).to(features.device)
        (features * weights).sum().backward()
    finally:
        for handle in handles:
            handle.remove()
        for p in backbone.parameters():
            p.requires_grad_(flags[id(p)])
    for gname, module in groups:
        if not any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in module.parameters()):
            raise fail(what, f"group {gname!r} gets no gradient from forward(): its parameters do not affect "
                             "the features", "drop the unused module or fix forward()")
    backbone.zero_grad(set_to_none=True)
    called = sorted(first_call, key=first_call.__getitem__)
    for earlier, later in itertools.pairwise(called):
        if earlier > later:
            raise fail(what, f"groups() are not ordered from input to output: forward() runs "
                             f"{groups[earlier][0]!r} before {groups[later][0]!r}", "list groups input to output")


def check_lora_targets(backbone: Backbone) -> None:
    """Each ``lora_targets()`` pattern names at least one module (peft matches full names or suffixes)."""
    names = [n for n, _ in backbone.named_modules() if n]
    for pattern in backbone.lora_targets():
        if not any(n == pattern or n.endswith("." + pattern) for n in names):
            raise fail(_name(backbone), f"lora_targets() pattern {pattern!r} matches no module",
                       "use module names from named_modules() (or their last parts)")
    for key, path in backbone.extra_files().items():
        if not Path(path).is_file():
            raise fail(_name(backbone), f"extra_files() entry {key!r} -> {path} is not a file")


def check_batch_mixer(backbone: Backbone, samples: Sequence[Any]) -> None:
    """A ``batch_mixer`` (optional; None is fine) takes an odd batch too (a last, partial one) and gives a batch
    ``forward`` takes and soft targets ``[B, C]`` whose rows sum to 1, the same for the same torch seed."""
    import torch

    what = _name(backbone)
    mixer = backbone.batch_mixer({"mixup": 0.4, "cutmix": 0.0, "prob": 1.0, "switch_prob": 0.5,
                                  "label_smoothing": 0.1}, 3)
    if mixer is None:
        return
    n = len(samples) - 1 + len(samples) % 2 if len(samples) > 2 else len(samples)  # odd where possible
    y = torch.arange(n) % 3
    draws = []
    for _ in range(2):
        torch.manual_seed(0)
        try:
            draws.append(mixer(_collate(backbone, samples[:n], train=False), y.clone()))
        except Exception as exc:
            raise fail(what, f"batch_mixer() failed on a batch of {n}: {type(exc).__name__}: {exc}",
                       "mix any batch size (the last batch of an epoch is often odd)") from exc
    (mixed, soft), (_, again) = draws
    if not (isinstance(soft, torch.Tensor) and soft.is_floating_point() and tuple(soft.shape) == (n, 3)):
        raise fail(what, f"batch_mixer() returned targets {shape_of(soft)}, not soft targets of shape ({n}, 3)",
                   "return float targets [B, num_classes], one probability row per sample")
    if not torch.allclose(soft.sum(-1), torch.ones(n), atol=1e-4) or bool((soft < 0).any()):
        raise fail(what, "batch_mixer() targets are not probability rows (each >= 0, summing to 1)")
    if not torch.equal(soft, again):
        raise fail(what, "batch_mixer() mixes differently for the same torch seed",
                   "draw from torch's generator (or seed your own from it), so --seed and --resume hold")
    training = backbone.training
    backbone.eval()
    with torch.no_grad():
        _features(backbone, mixed, n)
    backbone.train(training)


def check_backbone(backbone: Backbone, samples: Sequence[Any]) -> torch.Tensor:
    """Every check of a built backbone: groups, order, features, preprocessing, LoRA targets, batch mixer.
    Returns features."""
    from graftzoo.train.backbone import Backbone

    if not isinstance(backbone, Backbone):
        raise fail(f"object {type(backbone).__name__}", "is not a graftzoo.train.backbone.Backbone",
                   "subclass Backbone")
    if backbone.modality not in modalities():
        raise fail(_name(backbone), f"modality is {backbone.modality!r}",
                   f"use a registered one: {', '.join(modalities())} (or register yours with register_modalities)")
    check_groups(backbone)
    check_preprocessing(backbone)
    features = check_features(backbone, samples)
    check_default_views(backbone, samples)
    check_group_order(backbone, samples)
    check_lora_targets(backbone)
    check_batch_mixer(backbone, samples)
    return features


def check_save_load(backbone: Backbone, fresh: Backbone, samples: Sequence[Any], tmp_path: Path | None = None) -> None:
    """``backbone`` saved as safetensors and loaded into ``fresh`` (a random init) gives equal features."""
    import torch
    from safetensors.torch import load_model, save_model

    what = _name(backbone)
    with tempfile.TemporaryDirectory(dir=tmp_path) as tmp:
        path = Path(tmp) / "backbone.safetensors"
        save_model(backbone, str(path))
        with torch.no_grad():  # make sure the load has to do the work
            for p in fresh.parameters():
                if p.is_floating_point():
                    p.add_(torch.randn_like(p) * 0.1 + 0.1)
        missing, unexpected = load_model(fresh, str(path), strict=False)
    if missing or unexpected:
        raise fail(what, f"a random init has other state_dict keys than a pretrained one (missing: "
                         f"{sorted(missing)[:5]}, unexpected: {sorted(unexpected)[:5]})",
                   "build the same modules whether weights is None or not")
    backbone.eval()
    fresh.eval()
    batch = _collate(backbone, samples, train=False)
    with torch.no_grad():
        before, after = backbone(batch), fresh(batch)
    if not torch.allclose(before, after, atol=1e-5, rtol=1e-4):
        diff = float((before - after).abs().max())
        raise fail(what, f"features differ after a safetensors save/load round trip (max difference {diff:.3g})",
                   "keep all state in registered parameters and buffers")


def check_fine_tuning(backbone: Backbone, rebuild: Callable[[dict[str, Any]], Backbone], what: str) -> None:
    """``fine_tuning()`` returns a dict of options, and a build with them has the fine-tuned pipeline already.

    The engine stores those options with the run; ``rebuild(options)`` is how evaluate/predict/export build it.
    """
    extra = backbone.fine_tuning()
    if not isinstance(extra, dict):
        raise fail(what, f"fine_tuning() returned {type(extra).__name__}", "return a dict of options ({} for none)")
    tuned = check_preprocessing(backbone)
    rebuilt = rebuild(extra)
    if rebuilt.preprocessing() != tuned:
        raise fail(what, f"a build with the options fine_tuning() returned ({extra}) has other preprocessing than "
                         f"the fine-tuned backbone ({rebuilt.preprocessing()} vs {tuned})",
                   "return every option the change needs, and let options given at build time win")
    again = rebuilt.fine_tuning()
    if rebuilt.preprocessing() != tuned:
        raise fail(what, f"fine_tuning() on a run rebuilt with {extra} changed its preprocessing again ({again})",
                   "leave options given at build time as they are")


def check_backbone_adapter(
    model: str | ModelEntry,
    samples: Sequence[Any],
    *,
    pretrained: bool = True,
    options: Mapping[str, Any] | None = None,
    policies: Iterable[str] | None = None,
    tmp_path: Path | None = None,
    factory: Callable[..., Backbone] | None = None,
) -> dict[str, str]:
    """Check a backbone adapter end to end on one registry entry, with sample inputs the author provides.

    ``model`` is a registry id or a ``ModelEntry``; its adapter is looked up
    by ``entry.backbone`` unless ``factory`` is given. With ``pretrained`` the
    entry's weights are fetched (and their sha256 verified) first. Every
    registered freeze policy (or those named in ``policies``) is applied to a
    fresh backbone. Returns policy name -> "ok" or "not applicable: reason".
    """
    from graftzoo.plugins import get_plugins
    from graftzoo.registry import load_registry
    from graftzoo.testing._policies import check_policy_on

    entry = model if isinstance(model, ModelEntry) else load_registry().get(model)
    what = f"adapter {entry.backbone!r} on {entry.id}"
    if factory is None:
        reg = get_plugins().get("backbones", entry.backbone)
        if reg.meta.get("modality") not in (None, entry.modality):
            raise fail(what, f"the adapter is registered for {reg.meta['modality']} but the entry is {entry.modality}")
        factory = reg.resolve()
    weights = None
    if pretrained:
        from graftzoo.sources import fetch

        weights = fetch(entry)
    opts = dict(options or {})

    def make(with_weights: bool = True) -> Backbone:
        assert factory is not None
        return factory(entry, weights if with_weights else None, dict(opts))

    backbone = make()
    check_backbone(backbone, samples)
    if backbone.modality != entry.modality:
        raise fail(what, f"built a {backbone.modality} backbone for a {entry.modality} entry")
    rebuilt = make(with_weights=False)
    if rebuilt.preprocessing() != backbone.preprocessing():
        raise fail(what, "preprocessing() differs between a pretrained and a randomly initialised build "
                         f"({backbone.preprocessing()} vs {rebuilt.preprocessing()})",
                   "derive it from the entry and options only: saved runs are rebuilt with weights=None")
    check_save_load(backbone, rebuilt, samples, tmp_path)
    build = factory
    check_fine_tuning(make(with_weights=False), lambda extra: build(entry, None, {**opts, **extra}), what)
    names = list(policies) if policies is not None else sorted(get_plugins().collect("freeze_policies"))
    return {name: check_policy_on(name, make, samples) for name in names}

"""Conformance checks for freeze policies: what trains, what stays frozen, and BatchNorm statistics."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from graftzoo.errors import OptionError, TrainingError
from graftzoo.testing._base import fail

if TYPE_CHECKING:
    from torch import nn

    from graftzoo.train.backbone import Backbone
    from graftzoo.train.model import GraftModel

#: Options every policy is built with in the checks; a policy must accept and ignore those it does not use.
DEFAULT_OPTIONS: dict[str, Any] = {"unfreeze": 1, "unfreeze_every": 1, "lora_rank": 2, "lora_alpha": 4.0}
#: Built-in policies must apply to every backbone; others may refuse one in validate() with an OptionError.
ALWAYS_APPLICABLE = ("frozen", "full", "top-k", "gradual")

Expected = Callable[["Backbone", int], Collection[str]]


def group_params(backbone: Backbone) -> list[tuple[str, list[str]]]:
    """(group name, names of its parameters) in group order."""
    names = {id(p): n for n, p in backbone.named_parameters()}
    return [(g, [names[id(p)] for p in m.parameters() if id(p) in names]) for g, m in backbone.groups()]


def expected_trainable(policy: str, backbone: Backbone, epoch: int, options: Mapping[str, Any]) -> set[str] | None:
    """Backbone parameter names a built-in policy trains at ``epoch`` (after ``apply``); None for other policies."""
    groups = group_params(backbone)
    everything = {n for n, _ in backbone.named_parameters()}

    def last(k: int) -> set[str]:
        return {n for _, names in groups[len(groups) - k:] for n in names} if k > 0 else set()

    if policy == "frozen":
        return set()
    if policy == "full":
        return everything
    if policy == "top-k":
        return last(int(options["unfreeze"]))
    if policy == "gradual":
        limit = options.get("unfreeze")
        cap = int(limit) if limit is not None else len(groups)
        return last(min(epoch // int(options.get("unfreeze_every") or 1), cap))
    if policy == "bitfit":
        from graftzoo.train.policies import is_bias

        return {n for n in everything if is_bias(n)}
    if policy == "lora":
        return {n for n in everything if "lora_" in n}
    return None


def _resolve(policy: str | Callable[..., Any]) -> tuple[str, Callable[..., Any]]:
    if isinstance(policy, str):
        from graftzoo.plugins import get_plugins

        return policy, get_plugins().get("freeze_policies", policy).resolve()
    return str(getattr(policy, "name", None) or getattr(policy, "__name__", "policy")), policy


def check_policy_on(
    policy: str | Callable[..., Any],
    make_backbone: Callable[[], Backbone],
    samples: Sequence[Any],
    *,
    options: Mapping[str, Any] | None = None,
    expected: Expected | str | None = None,
) -> str:
    """Apply ``policy`` to a fresh backbone and check, epoch by epoch, exactly what trains.

    ``expected`` gives the backbone parameter names that should train at an
    epoch: a callable ``(backbone, epoch) -> names``, or the name of a built-in
    policy whose behaviour this one claims; by default the built-in's own rule
    (for built-in names) or only the general invariants (for others). Returns
    "ok", or "not applicable: ..." when ``validate`` refuses the backbone.
    """
    import torch
    from torch import nn

    from graftzoo.train.model import GraftModel

    name, factory = _resolve(policy)
    what = f"freeze policy {name!r}"
    opts = {**DEFAULT_OPTIONS, **(options or {})}
    backbone = make_backbone()
    model = GraftModel(backbone, nn.Linear(backbone.feature_dim, 3))
    try:
        instance = factory(**opts)
    except TypeError as exc:
        raise fail(what, f"cannot be built with options {sorted(opts)}: {exc}",
                   "accept and ignore options you do not use (**options)") from None
    try:
        instance.validate(model)
    except (OptionError, TrainingError) as exc:  # TrainingError: plugins written for 0.1
        if name in ALWAYS_APPLICABLE:
            raise fail(what, f"refuses {type(backbone).__name__}: {exc}") from None
        return f"not applicable: {exc}"
    instance.apply(model)
    rule = expected if expected is not None else name
    groups = backbone.groups()
    for epoch in range(min(len(groups), 3) + 1):
        instance.on_epoch_start(model, epoch)
        _check_trainable(what, model, instance, rule, epoch, opts)
        _check_step(what, model, instance, samples, epoch, torch.Generator().manual_seed(epoch))
    state = instance.state_dict()
    try:
        restored = json.loads(json.dumps(state))
    except (TypeError, ValueError) as exc:
        raise fail(what, f"state_dict() is not JSON-ready ({exc})", "it is stored in graft.json") from None
    instance.load_state_dict(restored)
    if instance.state_dict() != state:
        raise fail(what, "state_dict() does not round-trip through load_state_dict()")
    if not isinstance(instance.describe(), str) or not instance.describe():
        raise fail(what, "describe() must return one non-empty line")
    return "ok"


def _check_trainable(what: str, model: GraftModel, policy: Any, rule: Expected | str, epoch: int,
                     opts: Mapping[str, Any]) -> None:
    backbone = model.backbone
    if not all(p.requires_grad for p in model.head.parameters()):
        raise fail(what, f"the head is not fully trainable at epoch {epoch}", "the head always trains")
    trainable = {n for n, p in backbone.named_parameters() if p.requires_grad}
    if callable(rule):
        expected: set[str] | None = set(rule(backbone, epoch))
    else:
        expected = expected_trainable(rule, backbone, epoch, opts)
    group_of = {n: g for g, names in group_params(backbone) for n in names}
    order = [n for n, _ in backbone.named_parameters()]  # report input-side parameters first
    if expected is not None:
        for pname in [n for n in order if n in trainable - expected]:
            raise fail(what, f"parameter {pname!r} (group {group_of.get(pname, '?')!r}) is trainable at epoch "
                             f"{epoch}, but the policy should leave it frozen", "set requires_grad=False on it")
        for pname in [n for n in order if n in expected - trainable]:
            raise fail(what, f"parameter {pname!r} (group {group_of.get(pname, '?')!r}) is frozen at epoch {epoch}, "
                             "but the policy should train it")
    if policy.caches_features and trainable:
        raise fail(what, f"caches_features is True but {sorted(trainable)[0]!r} trains",
                   "features are computed once: nothing in the backbone may train")
    active = policy.train_groups(model)
    names = [g for g, _ in backbone.groups()]
    unknown = set(active) - set(names)
    if unknown:
        raise fail(what, f"train_groups() names unknown groups {sorted(unknown)}", f"groups are {names}")
    for gname, members in group_params(backbone):
        if gname in active and not any(n in trainable for n in members):
            raise fail(what, f"group {gname!r} runs in train mode at epoch {epoch} but none of its parameters "
                             "train, so its BatchNorm statistics would drift",
                       "leave frozen groups out of train_groups()")


def _batchnorms(module: nn.Module) -> list[tuple[str, nn.Module]]:
    from torch.nn.modules.batchnorm import _BatchNorm

    return [(n, m) for n, m in module.named_modules() if isinstance(m, _BatchNorm)]


def _check_step(what: str, model: GraftModel, policy: Any, samples: Sequence[Any], epoch: int, generator: Any) -> None:
    """One SGD step with the engine's train/eval modes: frozen weights and frozen BN statistics must not move."""
    import torch

    from graftzoo.train.optim import set_modes

    backbone = model.backbone
    set_modes(model, policy)
    active = policy.train_groups(model)
    for gname, module in backbone.groups():
        if gname not in active:
            for bn_name, bn in _batchnorms(module):
                if bn.training:
                    raise fail(what, f"BatchNorm {bn_name!r} of frozen group {gname!r} is in train mode at epoch "
                                     f"{epoch}", "a module shared between groups cannot be frozen separately")
    before = {k: v.detach().clone() for k, v in backbone.state_dict().items()}
    trainable = [p for p in model.parameters() if p.requires_grad]
    # A small step: large ones can saturate activations, after which nothing gets a gradient.
    optimizer = torch.optim.SGD(trainable, lr=1e-3)
    out = model(backbone.collate(list(samples), train=True))
    (out * torch.randn(out.shape, generator=generator, dtype=out.dtype).to(out.device)).mean().backward()
    params = dict(backbone.named_parameters())
    learning = [n for n, p in params.items() if p.requires_grad]
    grads = [params[n].grad for n in learning]
    if learning and not any(g is not None and bool(g.abs().sum() > 0) for g in grads):
        raise fail(what, f"no trainable backbone parameter gets a gradient in a training step at epoch {epoch} "
                         f"(trainable: {learning[:3]}{' ...' if len(learning) > 3 else ''})",
                   "the modules it unfreezes are bypassed by forward() (e.g. a fused fast path)")
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    after = backbone.state_dict()
    moved = [k for k in before if not torch.equal(before[k], after[k])]
    for key in moved:
        if key in params and not params[key].requires_grad:
            raise fail(what, f"frozen parameter {key!r} changed in a training step at epoch {epoch}")
    frozen_groups = [(g, m) for g, m in backbone.groups() if g not in active]
    for gname, module in frozen_groups:
        prefix = {id(m): n for n, m in backbone.named_modules()}
        for _, bn in _batchnorms(module):
            full = prefix[id(bn)]
            if any(k.startswith(full + ".running_") and k in moved for k in before):
                raise fail(what, f"BatchNorm statistics of {full!r} in frozen group {gname!r} changed in a "
                                 f"training step at epoch {epoch}")
    model.eval()


def check_freeze_policy(
    policy: str | Callable[..., Any],
    *,
    expected: Expected | str | None = None,
    options: Mapping[str, Any] | None = None,
    make_backbone: Callable[[], Backbone] | None = None,
    samples: Sequence[Any] | None = None,
) -> str:
    """Check a freeze policy (registered name or factory) on the kit's reference backbone (or ``make_backbone``).

    See ``check_policy_on`` for ``expected``; a third-party policy that mimics
    a built-in passes its name, e.g. ``expected="top-k"``.
    """
    if make_backbone is None:
        from graftzoo.testing._reference import ReferenceBackbone, reference_samples

        make_backbone = ReferenceBackbone
        samples = reference_samples() if samples is None else samples
    if samples is None:
        raise fail("check_freeze_policy", "pass samples for make_backbone's collate()")
    return check_policy_on(policy, make_backbone, samples, options=options, expected=expected)

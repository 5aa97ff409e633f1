"""Conformance checks for heads and dataset formats."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graftzoo.errors import GraftError
from graftzoo.testing._base import fail, shape_of

if TYPE_CHECKING:
    from torch import nn

    from graftzoo.data import LabelledData
    from graftzoo.train.backbone import Backbone

_UNKNOWN_OPTION = "graftzoo_kit_unknown_option"


def check_head(
    head: str | Callable[..., nn.Module],
    *,
    feature_dim: int = 16,
    num_outputs: int = 3,
    tokens: bool = False,
    dropout: bool = True,
) -> nn.Module:
    """Check a head (registered name or factory): shapes, gradients, unknown options, the dropout option.

    ``tokens`` also checks ``[B, T, D] -> [B, T, C]`` (token classification).
    ``dropout=False`` skips the check that ``dropout=0.5`` is honoured in train
    mode, for heads that document they have none. Returns the built head.
    """
    import torch
    from torch import nn

    if isinstance(head, str):
        from graftzoo.plugins import get_plugins

        name, factory = head, get_plugins().get("heads", head).resolve()
    else:
        name, factory = getattr(head, "__name__", "head"), head
    what = f"head {name!r}"
    try:
        module = factory(feature_dim, num_outputs, **{_UNKNOWN_OPTION: 1})
    except TypeError as exc:
        raise fail(what, f"rejects an option it does not know ({exc})",
                   "accept and ignore unknown options (**options): one set of CLI options serves every head") from None
    if not isinstance(module, nn.Module):
        raise fail(what, f"the factory returned {type(module).__name__}, not an nn.Module")
    if not list(module.parameters()):
        raise fail(what, "has no parameters, so it cannot learn")
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(4, feature_dim, generator=generator, requires_grad=True)
    module.train()
    out = module(x)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (4, num_outputs):
        raise fail(what, f"maps features [4, {feature_dim}] to {shape_of(out)}", f"expected (4, {num_outputs})")
    loss: Any = out.sum()  # Tensor.backward is untyped in torch's stubs
    loss.backward()
    for pname, p in module.named_parameters():
        if p.grad is None:
            raise fail(what, f"parameter {pname!r} gets no gradient")
    if tokens:
        with torch.no_grad():
            tok = module(torch.randn(2, 5, feature_dim, generator=generator))
        if tuple(tok.shape) != (2, 5, num_outputs):
            raise fail(what, f"maps token features [2, 5, {feature_dim}] to {shape_of(tok)}",
                       f"expected (2, 5, {num_outputs})")
    module.eval()
    with torch.no_grad():
        if not torch.equal(module(x), module(x)):
            raise fail(what, "is not deterministic in eval mode")
    if dropout:
        _check_dropout(what, factory(feature_dim, num_outputs, dropout=0.5), torch.randn(64, feature_dim,
                                                                                      generator=generator))
    return module


def _check_dropout(what: str, noisy: nn.Module, probe: Any) -> None:
    """A head built with ``dropout=0.5`` is noisy in train mode and deterministic in eval mode."""
    import torch

    noisy.train()
    with torch.no_grad():
        if torch.equal(noisy(probe), noisy(probe)):
            raise fail(what, "ignores the dropout option: dropout=0.5 gives identical outputs twice in train mode",
                       "apply nn.Dropout(dropout) (or pass dropout=False to the check if the head has none)")
        noisy.eval()
        if not torch.equal(noisy(probe), noisy(probe)):
            raise fail(what, "with dropout=0.5 is not deterministic in eval mode")


def _detector(reg: Any) -> Callable[[Path], Any] | None:
    from graftzoo.plugins import resolve

    detect = reg.meta.get("detect")
    return None if detect is None else resolve(detect, f"detector of format {reg.name!r}")


def _check_labels(what: str, data: LabelledData) -> None:
    if data.task == "token-classification":
        for i, (words, tags) in enumerate(zip(data.samples, data.labels, strict=True)):
            if not isinstance(words, list) or not isinstance(tags, list) or len(words) != len(tags):
                raise fail(what, f"sample {i}: token data needs a list of words and a tag list of the same length")
            if not all(isinstance(t, str) for t in tags):
                raise fail(what, f"sample {i}: tags must be strings")
        return
    for i, label in enumerate(data.labels):
        if not isinstance(label, str) or not label:
            raise fail(what, f"label {i} is {label!r} ({type(label).__name__})",
                       "loaders return class names as non-empty strings")


def _abbreviated(sample: Any) -> bool:
    """True when ``repr(sample)`` may be shortened (numpy/torch arrays print '...').

    Strings, paths and sequences of them are printed in full, so a literal
    '...' in a text is not an abbreviation.
    """
    if isinstance(sample, (str, bytes, Path)):
        return False
    if isinstance(sample, (list, tuple)) and all(isinstance(x, (str, bytes, Path)) for x in sample):
        return False
    return "..." in repr(sample)


def check_dataset_format(
    name: str,
    sample: str | Path | None = None,
    *,
    modality: str | None = None,
    expected_classes: list[str] | None = None,
    backbone: Backbone | None = None,
    options: Mapping[str, Any] | None = None,
) -> LabelledData:
    """Check a registered dataset format on its own sample file (or a named dataset, with no ``sample``).

    The format's ``detect`` must claim the sample and nothing foreign; its
    loader must accept unknown options and return ``LabelledData`` whose
    labels and classes agree (and equal ``expected_classes`` if given), with
    a stable fingerprint. With ``backbone`` a few samples are collated and
    embedded too. Returns the loaded data.
    """
    from graftzoo.data import LabelledData
    from graftzoo.plugins import get_plugins

    table = get_plugins().collect("datasets")
    reg = get_plugins().get("datasets", name)
    what = f"dataset {name!r} of plugin {reg.plugin!r}"
    named = bool(reg.meta.get("named"))
    if sample is None and not named:
        raise fail(what, "the check needs a sample file or directory in this format")
    location = str(sample) if sample is not None else name
    reg_modality = reg.meta.get("modality")
    if reg_modality is not None and modality is not None and reg_modality != modality:
        raise fail(what, f"is registered for {reg_modality} data, not {modality}")
    mod = modality or reg_modality
    if sample is not None:
        _check_detect(what, name, reg, Path(sample), table, mod)
    loader = reg.resolve()
    try:
        data = loader(location, modality=mod, **{_UNKNOWN_OPTION: 1}, **dict(options or {}))
    except TypeError as exc:
        raise fail(what, f"loader rejects an option it does not know ({exc})", "accept **options") from None
    if not isinstance(data, LabelledData):
        raise fail(what, f"loader returned {type(data).__name__}, not LabelledData")
    if not len(data):
        raise fail(what, f"loaded no samples from {location}")
    if data.modality not in (None, mod):
        raise fail(what, f"loaded {data.modality} data but is registered for {mod}")
    _check_labels(what, data)
    if expected_classes is not None and data.classes != sorted(expected_classes):
        raise fail(what, f"classes are {data.classes}, expected {sorted(expected_classes)}")
    _check_reload(what, data, location, mod, None if named else name, options)
    if backbone is not None:
        from graftzoo.testing._backbone import check_features

        check_features(backbone, data.samples[: min(len(data), 4)])
    return data


def _check_detect(what: str, name: str, reg: Any, sample: Path, table: Mapping[str, Any], mod: str | None) -> None:
    """detect() claims the sample, nothing foreign, and no rival format claims the sample too."""
    detect = _detector(reg)
    if detect is None:
        return
    reg_modality = reg.meta.get("modality")
    if not detect(sample):
        raise fail(what, f"detect() does not recognise its own sample {sample}")
    with tempfile.TemporaryDirectory() as tmp:
        foreign = Path(tmp) / "foreign.bin"
        foreign.write_bytes(os.urandom(256))
        empty = Path(tmp) / "empty"
        empty.mkdir()
        for path, label in ((empty, "an empty directory"), (foreign, "a file of random bytes")):
            try:
                claimed = detect(path)
            except Exception as exc:
                raise fail(what, f"detect() raised {type(exc).__name__} on {label} ({exc})",
                           "return False for anything that is not this format") from exc
            if claimed:
                raise fail(what, f"detect() claims {label}",
                           "detect only what this format can load: 'graft tune' picks formats by detect()")
    for other, other_reg in table.items():
        other_mod = other_reg.meta.get("modality")
        # load_data prefers a format tied to the modality over a generic one: only equals (or betters) clash.
        rival = other != name and not other_reg.meta.get("named") and other_mod in (None, mod) and (
            other_mod is not None or reg_modality is None)
        other_detect = _detector(other_reg) if rival else None
        if other_detect is not None and other_detect(sample):
            raise fail(what, f"its sample is also claimed by format {other!r} of plugin {other_reg.plugin!r}, "
                             "so 'graft tune' cannot tell which to use", "make detect() of one of them stricter")


def _check_reload(what: str, data: LabelledData, location: str, mod: str | None, fmt: str | None,
                  options: Mapping[str, Any] | None) -> None:
    """A sha256 fingerprint, samples the cache can tell apart, and the same data from a second load."""
    from graftzoo.data import load_data

    fingerprint = data.fingerprint()
    if not re.fullmatch(r"[0-9a-f]{64}", fingerprint):
        raise fail(what, f"fingerprint() is {fingerprint!r}, not a sha256 hex digest")
    if not data.fingerprint_parts and any(_abbreviated(s) for s in data.samples):
        raise fail(what, "samples' repr() is abbreviated ('...'), so the feature cache cannot tell them apart",
                   "set LabelledData.fingerprint_parts (e.g. file hash and index per sample)")
    try:
        again = load_data(location, modality=mod, format=fmt, **dict(options or {}))
    except GraftError as exc:
        raise fail(what, f"load_data() cannot load it: {exc}") from None
    if again.fingerprint() != fingerprint or len(again) != len(data):
        raise fail(what, "two loads of the same data differ (fingerprint or length)", "loading must be deterministic")

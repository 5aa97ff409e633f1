"""Data that loads but would not train as meant: say so (a warning line), or refuse where it cannot be right.

- labels that differ only in spaces ("cat" / "cat ") are an error: they would
  train as different classes and no user means that;
- labels that differ only in case ("cat" / "Cat") are a warning (some data
  sets, letters for one, mean them to be different);
- a class with a single example is a warning: it cannot be in both the
  training and the validation split;
- the same file (or text) under two classes is a warning: its labels contradict.

Empty class folders are reported by ``graftzoo.data.class_folder_files``.
"""

from __future__ import annotations

import logging
import re
from collections import Counter, defaultdict
from typing import TYPE_CHECKING, Any

from graftzoo.errors import DataError

if TYPE_CHECKING:
    from graftzoo.data import LabelledData

log = logging.getLogger("graftzoo.data")
_DIGEST = re.compile(r"[0-9a-f]{64}$")
_SHOW = 5


def _listed(items: list[str]) -> str:
    return ", ".join(items[:_SHOW]) + (f" (and {len(items) - _SHOW} more)" if len(items) > _SHOW else "")


def check_labels(data: LabelledData) -> None:
    """Warn about (or refuse) labels and samples that would silently train the wrong thing."""
    if data.task != "classification" or not data.labels or any(label is None for label in data.labels):
        return
    where = str(data.meta.get("root") or data.meta.get("source") or data.name)
    counts = Counter(str(label) for label in data.labels)
    similar: dict[str, set[str]] = defaultdict(set)
    for label in counts:
        similar[" ".join(label.split()).casefold()].add(label)
    for group in (sorted(g) for g in similar.values() if len(g) > 1):
        names = " / ".join(repr(g) for g in group)
        if len({" ".join(g.split()) for g in group}) < len(group):
            raise DataError(f"{where}: labels {names} differ only in spaces and would train as different classes; "
                            "make them the same (or clearly different) label")
        log.warning("warning: %s: labels %s differ only in case; they are trained as %d different classes",
                    where, names, len(group))
    singles = sorted(label for label, n in counts.items() if n == 1)
    if singles:
        log.warning("warning: %s: %d class(es) with a single example (%s): such a class cannot be in both the "
                    "training and the validation split; add examples", where, len(singles), _listed(singles))
    _check_duplicates(data, where)


def _content_key(sample: Any, part: str | None) -> str | None:
    if part is not None and _DIGEST.search(part):
        return part[-64:]
    return sample if isinstance(sample, str) else None


def _check_duplicates(data: LabelledData, where: str) -> None:
    parts: list[str | None] = list(data.fingerprint_parts) or [None] * len(data.samples)
    seen: dict[str, tuple[str, Any]] = {}
    clashes: list[str] = []
    for sample, label, part in zip(data.samples, data.labels, parts, strict=True):
        key = _content_key(sample, part)
        if key is None:
            continue
        first = seen.setdefault(key, (str(label), sample))
        if first[0] != str(label):
            clashes.append(f"{_short(first[1])} ({first[0]}) = {_short(sample)} ({label})")
    if clashes:
        log.warning("warning: %s: %d sample(s) appear under two different classes: %s; their labels contradict, "
                    "keep each in one class", where, len(clashes), _listed(clashes))


def _short(sample: Any) -> str:
    text = str(sample)
    return text if len(text) <= 60 else "..." + text[-57:]

"""Labelled data, and turning a user's DATA argument into it.

A data format or named dataset is a loader registered through
``register_data_formats`` / ``register_named_datasets`` (or, as in the first
release, ``register_datasets`` with ``named=``)::

    register("mynet-npz", "graftzoo_mynet.data:load", modality="vision", detect="graftzoo_mynet.data:detect")
    register("shapes", "graftzoo_mynet.data:load_shapes", modality="vision")

A loader is called as ``loader(location, **options)`` and returns
``LabelledData``. Samples stay cheap (file paths, strings, small arrays): the
backbone's ``collate`` turns them into tensors, so one loader serves any model
of its modality.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graftzoo.errors import DataError

TASKS = ("classification", "token-classification")


@dataclass
class LabelledData:
    """Samples with labels, as a loader returns them.

    ``labels`` are class names (str) for classification, or one list of tag
    names per sample for token classification (``samples`` then are lists of
    words). ``unlabelled`` data (for ``graft adapt``) has ``labels`` of None.
    """

    samples: list[Any]
    labels: list[Any]
    name: str
    modality: str | None = None
    task: str = "classification"
    fingerprint_parts: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise DataError(f"{self.name}: unknown task {self.task!r}; expected one of {', '.join(TASKS)}")
        if len(self.samples) != len(self.labels):
            raise DataError(f"{self.name}: {len(self.samples)} samples but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def classes(self) -> list[str]:
        """Sorted class (or tag) names."""
        if self.task == "token-classification":
            return sorted({tag for tags in self.labels if tags is not None for tag in tags})
        return sorted({str(label) for label in self.labels if label is not None})

    def fingerprint(self) -> str:
        """A content hash of samples and labels, for the feature cache.

        Loaders may supply ``fingerprint_parts`` (e.g. file hashes); otherwise
        samples are hashed by their ``repr`` (fine for paths, text and arrays
        whose repr is exact, such as small integer images).
        """
        h = hashlib.sha256()
        h.update(self.task.encode())
        parts: Sequence[Any] = self.fingerprint_parts or [repr(s) for s in self.samples]
        for part, label in zip(parts, self.labels, strict=True):
            h.update(str(part).encode())
            h.update(b"\0")
            h.update(json.dumps(label).encode())
            h.update(b"\n")
        return h.hexdigest()

    def subset(self, indices: Sequence[int], name: str | None = None) -> LabelledData:
        """A new LabelledData with the given rows, in that order."""
        parts = [self.fingerprint_parts[i] for i in indices] if self.fingerprint_parts else []
        return LabelledData(
            samples=[self.samples[i] for i in indices],
            labels=[self.labels[i] for i in indices],
            name=name or self.name,
            modality=self.modality,
            task=self.task,
            fingerprint_parts=parts,
            meta=dict(self.meta),
        )


def class_folder_files(root: Path, suffixes: Collection[str]) -> list[tuple[Path, str]]:
    """``(file, class)`` pairs of ``root/<class>/<file>`` whose suffix is in ``suffixes``, sorted.

    The layout of imagefolder, audiofolder and the like; hidden entries are skipped.
    A class folder with no such files is reported (a warning), never dropped silently.
    """
    pairs = [
        (f, sub.name)
        for sub in sorted(root.iterdir()) if sub.is_dir() and not sub.name.startswith(".")
        for f in sorted(sub.iterdir())
        if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in suffixes
    ]
    found = {label for _, label in pairs}
    empty = sorted(sub.name for sub in root.iterdir()
                   if sub.is_dir() and not sub.name.startswith(".") and sub.name not in found)
    if empty and pairs:
        import logging

        logging.getLogger("graftzoo.data").warning(
            "warning: %s: class folder(s) with no %s files: %s; they are left out of the classes", root,
            "/".join(sorted(suffixes)), ", ".join(empty))
    return pairs


def is_class_folder(path: Path, suffixes: Collection[str]) -> bool:
    """Format detector: a directory with class sub-directories holding files with these suffixes."""
    path = Path(path)
    if not path.is_dir():
        return False
    return any(
        f.is_file() and f.suffix.lower() in suffixes
        for sub in path.iterdir() if sub.is_dir() and not sub.name.startswith(".")
        for f in sub.iterdir()
    )


def load_data(spec: str, modality: str | None = None, format: str | None = None, **options: Any) -> LabelledData:
    """Load DATA: a registered dataset name, or a path whose format is given or detected."""
    from graftzoo.plugins import get_plugins

    plugins = get_plugins()
    table = plugins.collect("datasets")
    named = {n: r for n, r in table.items() if r.meta.get("named")}
    formats = {n: r for n, r in table.items() if not r.meta.get("named")}

    def suits(reg_modality: str | None) -> bool:
        return modality is None or reg_modality is None or reg_modality == modality

    if format is not None:
        reg = plugins.get("datasets", format)
    elif spec in named and not Path(spec).exists():
        reg = named[spec]
    else:
        path = Path(spec)
        if not path.exists():
            hint = ", ".join(sorted(named)) or "none installed"
            raise DataError(f"{spec}: no such file or directory, and not a registered dataset (datasets: {hint})")
        candidates = []
        for name, r in formats.items():
            detect = r.meta.get("detect")
            if detect is not None and suits(r.meta.get("modality")):
                from graftzoo.plugins import resolve

                if resolve(detect, f"detector of format {name!r}")(path):
                    candidates.append(r)
        if not candidates:
            valid = ", ".join(sorted(formats))
            raise DataError(f"{spec}: cannot tell the data format; pass --format (one of: {valid})")
        # A format tied to this modality beats a generic one.
        candidates.sort(key=lambda r: r.meta.get("modality") is None)
        reg = candidates[0]
    if not suits(reg.meta.get("modality")):
        raise DataError(f"{spec}: dataset {reg.name!r} is {reg.meta.get('modality')} data, the model is {modality}")
    loader = reg.resolve()
    data = loader(spec, modality=modality, **options)
    if not isinstance(data, LabelledData):
        raise DataError(f"dataset loader {reg.name!r} of plugin {reg.plugin!r} returned {type(data).__name__}, "
                        "not LabelledData")
    if data.modality is None:
        data.modality = modality
    from graftzoo.data.checks import check_labels

    check_labels(data)
    return data

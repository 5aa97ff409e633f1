"""What ``graft predict`` reads, and what it writes with ``--output``.

Inputs are told apart explicitly, never guessed from content:

- ``@FILE`` reads inputs from FILE: one per line (``.txt``), or one column of
  a ``.csv`` / ``.jsonl`` (``--text-column``, default ``text``, for text
  models; ``--path-column``, default ``path``, for the others; relative paths
  are relative to FILE);
- for models whose modality takes files (images, audio, a plugin's) every other argument is a path: a media file, a
  directory (its media files, recursively, sorted), or a ``.csv`` / ``.jsonl``
  table as above;
- for models whose modality takes text every other argument is a text. An argument that names an
  existing file is refused (say ``@FILE`` to read it, or ``--texts`` to
  classify the words themselves), so a file name is never classified by
  mistake.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from graftzoo.errors import DataError

MEDIA_SUFFIXES = {
    "vision": (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff"),
    "audio": (".wav", ".flac", ".mp3", ".ogg"),
}
TABLES = (".csv", ".jsonl")


def read_table(path: Path, column: str) -> list[str]:
    """One column of a CSV (header row) or JSON-lines file, as strings."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if path.suffix.lower() == ".csv":
        rows: list[dict[str, Any]] = list(csv.DictReader(text.splitlines()))
    else:
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}:{n}: not JSON ({exc.msg})") from None
    if rows and column not in rows[0]:
        raise DataError(f"{path}: no column {column!r}; it has {', '.join(map(str, rows[0]))} "
                        "(choose one with --text-column / --path-column)")
    return [str(row.get(column, "")) for row in rows]


def _from_file(path: Path, texts: bool, text_column: str, path_column: str) -> list[str]:
    if not path.is_file():
        raise DataError(f"@{path}: no such file")
    if path.suffix.lower() in TABLES:
        values = read_table(path, text_column if texts else path_column)
    else:
        values = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not texts:
        values = [v if Path(v).is_absolute() else str(path.parent / v) for v in values]
    return values


def _media(item: str, modality: str, path_column: str) -> list[str]:
    path = Path(item)
    if path.is_dir():
        suffixes = MEDIA_SUFFIXES.get(modality)  # another registered modality: every file in the folder
        found = sorted(str(p) for p in path.rglob("*") if p.is_file() and (suffixes is None or p.suffix.lower()
                                                                          in suffixes)
                       and not any(part.startswith(".") for part in p.relative_to(path).parts))
        if not found:
            raise DataError(f"{path}: no {modality} files ({', '.join(suffixes or ['any'])}) in it")
        return found
    if path.suffix.lower() in TABLES and path.is_file():
        return _from_file(path, False, "text", path_column)
    if not path.exists():
        raise DataError(f"no such file: {item} ({modality} models take file paths, directories or tables)")
    return [str(path)]


def resolve_inputs(inputs: Sequence[str], modality: str, texts: bool, text_column: str = "text",
                   path_column: str = "path", literal_texts: bool = False) -> list[str]:
    """The samples ``inputs`` stand for, in order (``texts``: the modality's inputs are texts, not files)."""
    samples: list[str] = []
    for item in inputs:
        if item.startswith("@") and not literal_texts:
            samples += _from_file(Path(item[1:]), texts, text_column, path_column)
        elif not texts:
            samples += _media(item, modality, path_column)
        elif not literal_texts and os.path.isfile(item):
            raise DataError(f"{item} is a file, and this text model classifies texts: pass @{item} to read texts "
                            f"from it, or --texts to classify the words {item!r} themselves")
        else:
            samples.append(item)
    if not samples:
        raise DataError("no inputs to predict (empty files?)")
    return samples


def write_predictions(path: Path, rows: Sequence[dict[str, Any]], classes: Sequence[str]) -> None:
    """``.csv`` (input, label, score, one probability column per class) or ``.jsonl``; atomic."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl"):
        raise DataError(f"--output {path}: use a .csv or .jsonl file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            if suffix == ".jsonl":
                fh.writelines(json.dumps(row) + "\n" for row in rows)
            else:
                _write_csv(fh, rows, classes)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _write_csv(fh: Any, rows: Sequence[dict[str, Any]], classes: Sequence[str]) -> None:
    if rows and "tags" in rows[0]:  # token classification: tags and entities as JSON cells
        writer = csv.writer(fh)
        writer.writerow(["input", "tags", "entities"])
        writer.writerows([r["input"], " ".join(r["tags"]), json.dumps(r["entities"])] for r in rows)
        return
    writer = csv.writer(fh)
    writer.writerow(["input", "label", "score", *[f"p_{c}" for c in classes]])
    for r in rows:
        probs = r["all_probabilities"]
        writer.writerow([r["input"], r["label"], probs[r["label"]], *[probs[c] for c in classes]])

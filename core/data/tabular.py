"""Generic CSV and JSON-lines loaders: a label column plus a ``text`` or ``path`` column.

``text`` rows become text samples; ``path`` rows become file paths (images,
audio), relative paths resolved against the data file's directory. Column
names are configurable (``label_column``, ``text_column``, ``path_column``).
In JSON lines, a list-valued text field (words) with a list-valued label
field (one tag per word) makes a token-classification set.

Rows with a missing label, empty text or a missing file are reported with
their line numbers; with ``skip_bad`` they are skipped (and listed in
``meta["skipped"]``) instead.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from graftzoo.data import LabelledData
from graftzoo.errors import DataError

_SHOW = 10


def detect_csv(path: Path) -> bool:
    """A regular file named ``*.csv`` or ``*.tsv``."""
    return path.is_file() and path.suffix.lower() in (".csv", ".tsv")


def detect_jsonl(path: Path) -> bool:
    """A regular file named ``*.jsonl`` or ``*.ndjson``."""
    return path.is_file() and path.suffix.lower() in (".jsonl", ".ndjson")


def _csv_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with _readable(path), path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh, delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
        if reader.fieldnames is None:
            return
        for row in reader:
            if None in row:  # more fields than the header names
                raise DataError(f"{path}:{reader.line_num}: {len(reader.fieldnames) + len(row[None])} fields but the "
                                f"header names {len(reader.fieldnames)}; quote fields that contain the delimiter")
            yield reader.line_num, row


def _jsonl_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with _readable(path), path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}:{number}: expected a JSON object per line, got {type(row).__name__}")
            yield number, row


@contextmanager
def _readable(path: Path) -> Iterator[None]:
    """Turn text that is not UTF-8, or a CSV the csv module cannot parse, into a ``DataError`` naming the file."""
    try:
        yield
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not UTF-8 text ({exc.reason}); re-save the file as UTF-8") from None
    except csv.Error as exc:
        raise DataError(f"{path}: not a readable CSV file ({exc})") from None


def load_csv(location: str, **options: Any) -> LabelledData:
    """Load a CSV/TSV file with a header row (see the module docstring for columns and options)."""
    return _load(Path(location), _csv_rows, **options)


def load_jsonl(location: str, **options: Any) -> LabelledData:
    """Load a JSON-lines file, one object per line (see the module docstring)."""
    return _load(Path(location), _jsonl_rows, **options)


def _load(path: Path, rows: Any, *, modality: str | None = None, label_column: str | None = None,
          text_column: str | None = None, path_column: str | None = None, skip_bad: bool = False,
          **_: Any) -> LabelledData:
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    label_key = label_column or "label"
    samples: list[Any] = []
    labels: list[Any] = []
    parts: list[str] = []
    bad: list[str] = []
    kind: str | None = None  # "text" or "path", fixed by the first row
    columns: list[str] = []
    for number, row in rows(path):
        columns = list(row)
        if kind is None:
            kind = _kind(path, row, text_column, path_column)
            if label_key not in row:
                raise DataError(f"{path}: no label column {label_key!r} (columns: {', '.join(map(str, row))}); "
                                "name it with --label-column")
        key = (text_column or "text") if kind == "text" else (path_column or "path")
        label, value = row.get(label_key), row.get(key)
        if label is None or (isinstance(label, str) and not label.strip()):
            bad.append(f"line {number}: missing {label_key!r}")
            continue
        if value is None or (isinstance(value, str | list) and not value):
            bad.append(f"line {number}: empty {key!r}")
            continue
        if kind == "path":
            file = Path(os.path.expanduser(str(value)))
            file = file if file.is_absolute() else path.parent / file
            if not file.exists():
                bad.append(f"line {number}: {file} does not exist")
                continue
            stat = file.stat()
            samples.append(str(file))
            parts.append(f"{file}:{stat.st_size}:{stat.st_mtime_ns}")
        else:
            samples.append(value)
            parts.append(json.dumps(value))
        labels.append(label if isinstance(label, list) else str(label))
    if kind is None:
        raise DataError(f"{path}: no rows")
    if bad and not skip_bad:
        more = f" (and {len(bad) - _SHOW} more)" if len(bad) > _SHOW else ""
        raise DataError(f"{path}: {len(bad)} bad row(s): {'; '.join(bad[:_SHOW])}{more}; fix them or pass "
                        "--skip-bad to leave them out")
    token = bool(labels) and isinstance(labels[0], list)
    if token:
        for words, tags in zip(samples, labels, strict=True):
            if not isinstance(words, list) or len(words) != len(tags):
                raise DataError(f"{path}: token rows need a word list and a tag list of the same length "
                                f"(columns: {', '.join(map(str, columns))})")
    return LabelledData(samples=samples, labels=labels, name=path.name,
                        modality=modality if kind == "path" else "text",
                        task="token-classification" if token else "classification", fingerprint_parts=parts,
                        meta={"skipped": bad, "source": str(path)})


def _kind(path: Path, row: dict[str, Any], text_column: str | None, path_column: str | None) -> str:
    if text_column is not None or (path_column is None and "text" in row):
        if (text_column or "text") not in row:
            raise DataError(f"{path}: no column {text_column!r} (columns: {', '.join(map(str, row))})")
        return "text"
    if (path_column or "path") in row:
        return "path"
    raise DataError(f"{path}: needs a 'text' or 'path' column (columns: {', '.join(map(str, row))}); name yours with "
                    "--text-column or --path-column")

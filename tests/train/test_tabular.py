"""CSV / JSON-lines loaders: columns, relative paths, bad rows with line numbers, token sets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from graftzoo.data import load_data
from graftzoo.data.tabular import detect_csv, detect_jsonl, load_csv, load_jsonl
from graftzoo.errors import DataError


def test_csv_text_and_custom_columns(tmp_path: Path) -> None:
    path = tmp_path / "reviews.csv"
    path.write_text('review,stars\n"great, really",pos\nawful,neg\n')
    data = load_csv(str(path), text_column="review", label_column="stars")
    assert data.samples == ["great, really", "awful"] and data.labels == ["pos", "neg"]
    assert data.modality == "text" and data.classes == ["neg", "pos"]
    assert detect_csv(path) and not detect_jsonl(path)


def test_paths_resolve_against_the_data_file(tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.png").write_bytes(b"x")
    path = tmp_path / "set.jsonl"
    path.write_text(json.dumps({"path": "img/a.png", "label": "cat"}) + "\n")
    data = load_data(str(path), modality="vision", no_such_option=1)
    assert data.samples == [str(tmp_path / "img" / "a.png")] and data.modality == "vision"


def test_bad_rows_are_reported_with_line_numbers_or_skipped(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("text,label\nfine,a\n,b\nok,\nalso fine,b\n")
    with pytest.raises(DataError, match=r"2 bad row\(s\): line 3: empty 'text'; line 4: missing 'label'.*--skip-bad"):
        load_csv(str(path))
    data = load_csv(str(path), skip_bad=True)
    assert data.samples == ["fine", "also fine"] and len(data.meta["skipped"]) == 2


def test_missing_columns_and_bad_json_name_the_problem(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("words,label\nx,a\n")
    with pytest.raises(DataError, match=r"needs a 'text' or 'path' column \(columns: words, label\)"):
        load_csv(str(path))
    bad = tmp_path / "d.jsonl"
    bad.write_text('{"text": "a", "label": "x"}\n{oops\n')
    with pytest.raises(DataError, match=r"d.jsonl:2: not valid JSON"):
        load_jsonl(str(bad))
    nolabel = tmp_path / "n.jsonl"
    nolabel.write_text('{"text": "a", "tag": "x"}\n')
    with pytest.raises(DataError, match="no label column 'label'"):
        load_jsonl(str(nolabel))


def test_jsonl_token_rows(tmp_path: Path) -> None:
    path = tmp_path / "ner.jsonl"
    rows = [{"text": ["John", "lives", "here"], "label": ["B-PER", "O", "O"]}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = load_jsonl(str(path))
    assert data.task == "token-classification" and data.classes == ["B-PER", "O"]
    path.write_text(json.dumps({"text": ["a", "b"], "label": ["O"]}) + "\n")
    with pytest.raises(DataError, match="same length"):
        load_jsonl(str(path))

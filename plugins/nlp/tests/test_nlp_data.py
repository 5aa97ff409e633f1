"""The conll format, its detection and errors, and the named sets read from packages."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from types import SimpleNamespace

import pytest

from graftzoo.data import load_data
from graftzoo.errors import DataError
from graftzoo_nlp.data import detect_conll, load_conll, parse_conll

HERE = Path(__file__).parent / "data"


def test_conll_file_is_detected_and_loaded_through_core() -> None:
    assert detect_conll(HERE / "tiny_ner.conll")
    data = load_data(str(HERE / "tiny_ner.conll"), modality="text")
    assert data.task == "token-classification"
    assert data.samples[0] == ["Anna", "lives", "in", "Paris", "."]
    assert data.labels[1] == ["O", "O", "O", "O", "B-LOC", "I-LOC", "O", "O"]
    assert len(data) == 3
    assert data.classes == ["B-LOC", "B-PER", "I-LOC", "O"]
    assert data.meta["first_lines"] == [3, 9, 18]


def test_whitespace_only_lines_separate_sentences_and_tabs_work() -> None:
    data = parse_conll("a\tO\nParis\tB-LOC\n\t\nb\tO\n", "t")
    assert data.samples == [["a", "Paris"], ["b"]]


def test_malformed_lines_are_reported_with_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "bad.conll"
    path.write_text("Anna B-PER\nlives\nin O\n\nParis LOCATION\n. O\n\nok O\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        load_conll(str(path))
    message = str(err.value)
    assert "2 malformed line(s)" in message and "line 2:" in message and "line 5:" in message
    assert "'LOCATION'" in message and "--skip-bad" in message
    data = load_conll(str(path), skip_bad=True)
    assert data.samples == [["ok"]]
    assert [s["line"] for s in data.meta["skipped"]] == [1, 5]


def test_detect_rejects_non_conll_text(tmp_path: Path) -> None:
    prose = tmp_path / "notes.txt"
    prose.write_text("This is just a sentence.\nAnd another one here.\n", encoding="utf-8")
    table = tmp_path / "codes.txt"
    table.write_text("a X1\nb X2\n", encoding="utf-8")
    assert not detect_conll(prose)
    assert not detect_conll(table)
    assert not detect_conll(tmp_path)


def test_empty_and_non_utf8_files_are_clear_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.conll"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(DataError, match="no sentences"):
        load_conll(str(empty))
    latin = tmp_path / "latin.conll"
    latin.write_bytes("a O\nM\xfcnchen B-LOC\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin.conll:2: not UTF-8"):
        load_conll(str(latin))


def _fake_distribution(monkeypatch: pytest.MonkeyPatch, root: Path | None) -> None:
    def distribution(name: str) -> object:
        if root is None:
            raise importlib.metadata.PackageNotFoundError(name)
        return SimpleNamespace(version="0.1", locate_file=lambda p: root / p)

    monkeypatch.setattr(importlib.metadata, "distribution", distribution)


def test_named_sets_are_registered_with_their_tasks() -> None:
    from graftzoo.plugins import get_plugins

    table = get_plugins().collect("datasets")
    assert table["rotten-tomatoes"].meta["named"] and table["wnut16"].meta["named"]
    assert table["conll"].meta["task"] == "token-classification"

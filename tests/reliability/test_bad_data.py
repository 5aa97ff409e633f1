"""Bad data says so: empty class folders, single-example classes, near-identical labels, duplicates across classes."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from graftzoo.data import load_data
from graftzoo.errors import DataError


def png(colour: tuple[int, int, int]) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buf, format="PNG")
    return buf.getvalue()


def folder(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def images(root: Path, classes: dict[str, int]) -> Path:
    files = {f"{c}/{i}.png": png((i * 20 % 256, len(c) * 30 % 256, k * 60 % 256))
             for k, (c, n) in enumerate(classes.items()) for i in range(n)}
    return folder(root, files)


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


@pytest.fixture(autouse=True)
def _vision() -> None:
    pytest.importorskip("graftzoo_vision")


def test_empty_class_folder_is_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = images(tmp_path / "data", {"cat": 3, "dog": 3})
    (root / "bird").mkdir()
    data = load_data(str(root), format="imagefolder")
    assert data.classes == ["cat", "dog"]
    (line,) = [w for w in warnings(caplog) if "class folder" in w]
    assert str(root) in line and "bird" in line and "left out" in line


def test_single_example_class_is_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = images(tmp_path / "data", {"cat": 3, "dog": 3, "eel": 1})
    load_data(str(root), format="imagefolder")
    (line,) = [w for w in warnings(caplog) if "single example" in w]
    assert "eel" in line and str(root) in line


def test_labels_differing_only_in_case_warn(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = images(tmp_path / "data", {"cat": 2, "Cat": 2, "dog": 2})
    data = load_data(str(root), format="imagefolder")
    assert len(data.classes) == 3
    (line,) = [w for w in warnings(caplog) if "differ only in case" in w]
    assert "'Cat' / 'cat'" in line


def test_labels_differing_only_in_spaces_are_an_error(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("text,label\ngood film,pos\nbad film,neg\nfine film,pos \nawful,neg\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"data.csv: labels 'pos' / 'pos ' differ only in spaces"):
        load_data(str(path), format="csv")


def test_duplicate_files_across_classes_warn(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = images(tmp_path / "data", {"cat": 2, "dog": 2})
    (root / "dog" / "copy.png").write_bytes((root / "cat" / "0.png").read_bytes())
    load_data(str(root), format="imagefolder")
    (line,) = [w for w in warnings(caplog) if "two different classes" in w]
    assert "1 sample(s)" in line and "cat/0.png (cat)" in line and "dog/copy.png (dog)" in line


def test_duplicate_text_across_classes_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text('{"text": "ok", "label": "a"}\n{"text": "ok", "label": "b"}\n{"text": "x", "label": "a"}\n'
                    '{"text": "y", "label": "b"}\n', encoding="utf-8")
    load_data(str(path), format="jsonl")
    assert any("appear under two different classes" in w and "ok (a) = ok (b)" in w for w in warnings(caplog))


def test_clean_data_is_silent(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    load_data(str(images(tmp_path / "data", {"cat": 3, "dog": 3})), format="imagefolder")
    assert warnings(caplog) == []


def test_the_warning_reaches_the_terminal(tmp_path: Path) -> None:
    """Outside pytest's log capture the warning is a plain line on stderr."""
    root = images(tmp_path / "data", {"cat": 3, "dog": 3})
    (root / "bird").mkdir()
    code = f"from graftzoo.data import load_data; load_data({str(root)!r}, format='imagefolder')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "GRAFTZOO_NO_PROGRESS": "1"})
    assert done.returncode == 0, done.stderr
    assert f"warning: {root}: class folder(s) with no" in done.stderr and "bird" in done.stderr

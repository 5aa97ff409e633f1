"""Image data: the digits sets, imagefolder loading and detection, unreadable images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from graftzoo.data import LabelledData, load_data
from graftzoo.errors import DataError
from graftzoo_vision.data import (
    digits_arrays,
    is_imagefolder,
    load_digits,
    load_digits_inverted,
    load_imagefolder,
    write_imagefolder,
)


def test_digits_are_the_real_scikit_learn_set_with_a_stable_fingerprint() -> None:
    data = load_digits()
    assert len(data) == 1797 and data.classes == [str(d) for d in range(10)]
    assert data.samples[0].shape == (8, 8) and data.samples[0].dtype == np.uint8
    # Dark ink on white paper: the border of a scan is blank, so white.
    assert data.samples[0][0, 0] == 255 and data.samples[0].min() < 64
    assert data.fingerprint() == load_digits().fingerprint()


def test_digits_read_from_the_shipped_csv_equal_load_digits_without_importing_sklearn() -> None:
    import subprocess
    import sys

    from sklearn.datasets import load_digits as sklearn_digits

    from graftzoo_vision.data import _digits_scans

    scans, target = _digits_scans()
    bunch = sklearn_digits()
    assert np.array_equal(scans, bunch.images) and np.array_equal(target, bunch.target)
    # Start-up (issue 19): the digits load without scikit-learn's import (scipy, pandas).
    code = ("import sys; from graftzoo_vision.data import load_digits; load_digits(); "
            "print(sorted(m for m in ('sklearn', 'scipy', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_digits_inverted_is_the_same_scans_with_inverted_contrast() -> None:
    plain, inverted = load_digits(), load_digits_inverted()
    assert plain.labels == inverted.labels
    assert np.array_equal(plain.samples[5].astype(int) + inverted.samples[5].astype(int), np.full((8, 8), 255))
    assert plain.fingerprint() != inverted.fingerprint()


def test_named_digits_sets_load_through_the_plugin_registry() -> None:
    data = load_data("digits", modality="vision")
    assert isinstance(data, LabelledData) and data.modality == "vision" and len(data) == 1797
    assert len(load_data("digits-inverted", modality="vision")) == 1797


def _small_folder(root: Path, per_class: int = 3) -> Path:
    images, targets = digits_arrays()
    picks = [i for d in range(3) for i in np.flatnonzero(targets == d)[:per_class]]
    data = LabelledData([images[i] for i in picks], [str(targets[i]) for i in picks], name="small")
    return write_imagefolder(data, root)


def test_imagefolder_round_trip_and_detection(tmp_path: Path) -> None:
    root = _small_folder(tmp_path / "imgs")
    (root / "notes.txt").write_text("not an image")
    assert is_imagefolder(root) and not is_imagefolder(tmp_path / "missing")
    data = load_data(str(root), modality="vision")  # format detected
    assert len(data) == 9 and data.classes == ["0", "1", "2"]
    assert all(Path(s).is_absolute() and Path(s).is_file() for s in data.samples)
    again = load_imagefolder(str(root))
    assert again.fingerprint() == data.fingerprint()
    # Same pixels, the fingerprint follows file contents, not just names.
    first = Path(data.samples[0])
    first.write_bytes(Path(data.samples[1]).read_bytes())
    assert load_imagefolder(str(root)).fingerprint() != data.fingerprint()


def test_corrupt_image_is_named_or_skipped_with_a_count(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = _small_folder(tmp_path / "imgs")
    bad = root / "1" / "zz_corrupt.png"
    good_bytes = next((root / "1").glob("*.png")).read_bytes()
    bad.write_bytes(good_bytes[: len(good_bytes) // 2])  # truncated PNG
    with pytest.raises(DataError, match=r"zz_corrupt\.png"):
        load_imagefolder(str(root))
    with caplog.at_level("WARNING", logger="graftzoo.data"):
        data = load_imagefolder(str(root), skip_bad=True)
    assert len(data) == 9 and data.meta["skipped"] == [str(bad)]
    assert "skipped 1 unreadable image" in caplog.text


def test_empty_or_missing_folder_is_a_data_error(tmp_path: Path) -> None:
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    with pytest.raises(DataError, match="no images found"):
        load_imagefolder(str(tmp_path / "empty"))
    with pytest.raises(DataError, match="not a directory"):
        load_imagefolder(str(tmp_path / "nope"))


def test_csv_of_relative_paths_collates_through_the_timm_adapter(tmp_path: Path, make_entry: object) -> None:
    from graftzoo_vision.backbone import create

    root = _small_folder(tmp_path / "imgs", per_class=2)
    rows = ["path,label"] + [f"{p.relative_to(tmp_path).as_posix()},{p.parent.name}"
                             for p in sorted(root.rglob("*.png"))]
    (tmp_path / "list.csv").write_text("\n".join(rows) + "\n")
    data = load_data(str(tmp_path / "list.csv"), modality="vision")
    assert len(data) == 6 and data.classes == ["0", "1", "2"]
    backbone = create(make_entry("mobilenetv2_100"), None, {"image_size": 32})  # type: ignore[operator]
    assert backbone.collate(data.samples, train=False).shape == (6, 3, 32, 32)

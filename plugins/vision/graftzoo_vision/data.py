"""Image data: the ``imagefolder`` format and the ``digits`` demo sets.

``digits`` is scikit-learn's real handwritten digits set (1,797 8x8 scans from
the UCI "Optical Recognition of Handwritten Digits" data, 10 classes) rendered
as dark ink on white paper; ``digits-inverted`` is the same scans as white
ink on black, a controlled domain shift for the diagnostics.

The digits are kept as small uint8 arrays in memory rather than written out as
PNG files: the set is 115 KB, ships inside scikit-learn, and arrays make the
loader free of cache-directory writes (no races between processes, nothing to
go stale) while the fingerprint is a hash of the pixels themselves, stable
across machines. ``write_imagefolder`` writes any image set out as PNGs for
people who want files.
"""

from __future__ import annotations

import hashlib
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from graftzoo.api import DataError, LabelledData, class_folder_files, is_class_folder
from graftzoo_vision.images import IMAGE_SUFFIXES, open_image, to_pil

log = logging.getLogger("graftzoo.data")

DIGITS_SOURCE = ("scikit-learn load_digits: UCI Optical Recognition of Handwritten Digits "
                 "(Alpaydin & Kaynak), 1,797 8x8 images, CC BY 4.0")


def is_imagefolder(path: Path) -> bool:
    """Detector: a directory with class sub-directories that hold image files."""
    return is_class_folder(path, IMAGE_SUFFIXES)


def _check(path: Path) -> tuple[str | None, str]:
    """(problem or None, content sha256) for one file; decodes it fully."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return f"{path}: cannot read image file ({exc.strerror})", ""
    digest = hashlib.sha256(raw).hexdigest()
    try:
        open_image(path, raw)
    except DataError as exc:
        return str(exc).split("; fix or remove")[0], digest
    return None, digest


def load_imagefolder(location: str, skip_bad: bool = False, **options: Any) -> LabelledData:
    """``root/<class>/*.jpg|jpeg|png|bmp|webp``; class names are the sub-directory names.

    Every image is decoded once here, so a corrupt file is reported before
    training starts: a ``DataError`` naming it, or with ``skip_bad=True`` it is
    left out and the count is logged and kept in ``meta["skipped"]``.
    """
    root = Path(location)
    if not root.is_dir():
        raise DataError(f"{root}: not a directory; an imagefolder is root/<class>/<image files>")
    pairs = class_folder_files(root, IMAGE_SUFFIXES)
    if not pairs:
        raise DataError(f"{root}: no images found; expected root/<class>/*.jpg|png|jpeg|bmp|webp")
    with ThreadPoolExecutor(max_workers=4) as pool:  # PIL decodes without the GIL
        checks = list(pool.map(_check, [p for p, _ in pairs]))
    samples, labels, parts, skipped = [], [], [], []
    for (path, label), (problem, digest) in zip(pairs, checks, strict=True):
        if problem is not None:
            if not skip_bad:
                raise DataError(f"{problem}; fix or remove the file, or pass --skip-bad to leave it out")
            skipped.append(str(path))
            continue
        samples.append(str(path.resolve()))
        labels.append(label)
        parts.append(f"{path.relative_to(root).as_posix()}:{digest}")
    if skipped:
        log.warning("skipped %d unreadable image(s) under %s: %s", len(skipped), root,
                    ", ".join(Path(s).name for s in skipped[:5]) + (" ..." if len(skipped) > 5 else ""))
    if not samples:
        raise DataError(f"{root}: every image was unreadable ({len(skipped)} skipped)")
    return LabelledData(samples, labels, name=root.name, modality="vision", fingerprint_parts=parts,
                        meta={"root": str(root.resolve()), "skipped": skipped})


def digits_arrays(inverted: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as uint8 ``[N, 8, 8]`` images and integer targets.

    The scans count ink from 0 to 16; ``inverted=False`` renders dark ink on
    white paper (how handwriting is usually photographed), ``inverted=True``
    white ink on black.
    """
    scans, target = _digits_scans()
    ink = scans / 16.0
    pixels = ink if inverted else 1.0 - ink
    return np.round(pixels * 255).astype(np.uint8), target


def _digits_scans() -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 ink-count scans ``[N, 8, 8]`` (float64) and their targets, as ``load_digits`` returns them.

    Read straight from the CSV that ships inside scikit-learn (the file
    ``load_digits`` itself parses): importing ``sklearn.datasets`` pulls in
    scipy and pandas, over a second of every ``graft tune`` on digits before
    the first batch. Falls back to ``load_digits`` where the file is not there.
    """
    import gzip
    import importlib.util

    spec = importlib.util.find_spec("sklearn")  # locates the package without importing it
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        path = Path(location) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            with gzip.open(path, "rt", encoding="utf-8") as f:
                table = np.loadtxt(f, delimiter=",")
            return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(int)
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return np.asarray(bunch.images, dtype=np.float64), np.asarray(bunch.target)


def _digits(name: str, inverted: bool) -> LabelledData:
    imgs, targets = digits_arrays(inverted)
    samples = list(imgs)
    parts = [hashlib.sha256(img.tobytes()).hexdigest() for img in samples]
    return LabelledData(samples, [str(int(t)) for t in targets], name=name, modality="vision",
                        fingerprint_parts=parts,
                        meta={"source": DIGITS_SOURCE, "rendering": "white ink on black" if inverted
                              else "dark ink on white"})


def load_digits(location: str = "digits", **options: Any) -> LabelledData:
    """The ``digits`` demo set: 1,797 real handwritten digits, dark on white, 10 classes."""
    return _digits("digits", inverted=False)


def load_digits_inverted(location: str = "digits-inverted", **options: Any) -> LabelledData:
    """``digits`` with inverted contrast (white on black): the same labels under a domain shift."""
    return _digits("digits-inverted", inverted=True)


def write_imagefolder(data: LabelledData, root: Path) -> Path:
    """Write image samples out as ``root/<label>/<index>.png`` (an imagefolder ``load_imagefolder`` reads)."""
    root = Path(root)
    for i, (sample, label) in enumerate(zip(data.samples, data.labels, strict=True)):
        folder = root / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        to_pil(sample).save(folder / f"{i:05d}.png")
    return root

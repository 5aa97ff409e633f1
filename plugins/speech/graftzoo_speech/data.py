"""Audio data: the ``audiofolder`` format and the espeak-ng named sets.

An audiofolder is ``ROOT/LABEL/*.wav|flac``: one sub-folder per class. Files
may have any sample rate and channel count: backbones read them with
``graftzoo_speech.audio.read_audio``, which mixes down to mono and resamples
to the model's rate. Samples are file paths (cheap); every file's header is
checked here, so a bad file is reported before any training starts.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from pathlib import Path
from typing import Any

from graftzoo.api import DataError, LabelledData, is_class_folder
from graftzoo_speech.audio import AUDIO_EXTENSIONS

_MAX_LISTED = 5  # bad files named in one error message
log = logging.getLogger("graftzoo.data")


def is_audiofolder(path: Path) -> bool:
    """Detector: a directory with at least one sub-folder holding .wav/.flac files."""
    return is_class_folder(path, AUDIO_EXTENSIONS)


def _file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _check(path: Path) -> tuple[int | None, str | None]:
    """(sample rate, None) for a readable audio file, (None, why) otherwise."""
    import soundfile as sf

    if path.suffix.lower() not in AUDIO_EXTENSIONS:
        return None, f"unsupported format {path.suffix or '(no extension)'!r} (use .wav or .flac)"
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        return None, f"unreadable ({exc})"
    if info.frames == 0:
        return None, "empty (0 samples)"
    return int(info.samplerate), None


def load_audiofolder(location: str, skip_bad: bool = False, **options: Any) -> LabelledData:
    """``ROOT/LABEL/*.wav|flac`` -> LabelledData of file paths labelled by folder name.

    Every file is checked (readable, a supported format, not empty); a bad
    file is a ``DataError`` naming it, unless ``skip_bad`` is set, in which
    case it is left out and listed in ``meta["skipped"]``. Hidden files are
    ignored; so are files directly under ROOT (e.g. a README or manifest).
    """
    root = Path(location)
    if not root.is_dir():
        raise DataError(f"{root}: an audiofolder must be a directory of LABEL/ sub-folders of .wav/.flac files")
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    samples: list[str] = []
    labels: list[str] = []
    parts: list[str] = []
    bad: list[str] = []
    rates: Counter[int] = Counter()
    for folder in class_dirs:
        for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
            rate, why = _check(path)
            if why is not None:
                bad.append(f"{path}: {why}")
                continue
            assert rate is not None
            rates[rate] += 1
            samples.append(str(path))
            labels.append(folder.name)
            parts.append(_file_hash(path))
    if bad and not skip_bad:
        more = f" (and {len(bad) - _MAX_LISTED} more)" if len(bad) > _MAX_LISTED else ""
        raise DataError(f"{root}: {len(bad)} bad audio file(s): " + "; ".join(bad[:_MAX_LISTED]) + more
                        + ". Fix or remove them, or pass --skip-bad to leave them out")
    if not samples:
        raise DataError(f"{root}: no .wav or .flac files in LABEL/ sub-folders; expected ROOT/LABEL/*.wav")
    empty = [d.name for d in class_dirs if d.name not in set(labels)]
    if empty:
        log.warning("warning: %s: class folder(s) with no usable .wav/.flac files: %s; they are left out of the "
                    "classes", root, ", ".join(empty))
    if len(set(labels)) < 2:
        raise DataError(f"{root}: only one class ({labels[0]!r}); classification needs at least two LABEL/ folders")
    return LabelledData(samples=samples, labels=labels, name=root.name, modality="audio",
                        fingerprint_parts=parts,
                        meta={"format": "audiofolder", "root": str(root), "sample_rates": dict(rates),
                              "skipped": bad})


def _load_espeak(name: str, **options: Any) -> LabelledData:
    from graftzoo_speech.generate import SETS, cached

    folder = cached(name)
    data = load_audiofolder(str(folder), **options)
    data.name = name
    spec = SETS[name]
    data.meta.update({"generator": "espeak-ng", "voices": list(spec.voices), "label_by": spec.label_by})
    return data


def load_espeak_speakers(location: str, **options: Any) -> LabelledData:
    """12 espeak-ng voices x 8 sentences x 2 pitch/speed draws, labelled by voice (speaker-ID training set)."""
    return _load_espeak("espeak-speakers", **options)


def load_espeak_speakers_heldout(location: str, **options: Any) -> LabelledData:
    """The same 12 voices saying 4 sentences that espeak-speakers never uses (speaker-ID test set)."""
    return _load_espeak("espeak-speakers-heldout", **options)


def load_espeak_keywords(location: str, **options: Any) -> LabelledData:
    """8 command words x 12 voices x 2 pitch/speed draws, labelled by word (keyword spotting, training)."""
    return _load_espeak("espeak-keywords", **options)


def load_espeak_keywords_unseen(location: str, **options: Any) -> LabelledData:
    """The 8 words spoken by 4 voices absent from espeak-keywords (keyword spotting on unseen voices)."""
    return _load_espeak("espeak-keywords-unseen", **options)

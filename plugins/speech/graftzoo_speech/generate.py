"""Labelled speech from espeak-ng: the speaker and keyword demo sets.

espeak-ng (a GPL-3 program; the audio it writes is yours) speaks a text in a
voice (``en-us``, ``en``, ``en-gb-scotland``, ...) with a variant (``+m3``,
``+f2``, ``+klatt`` ...), a pitch (``-p``, 0-99) and a speed (``-s``, words
per minute). A "speaker" here is a voice+variant; every utterance gets its own
pitch and speed drawn around the defaults, so two utterances of one speaker
are never identical. sox, when installed, converts to 16 kHz mono 16-bit
(otherwise the plugin's own resampler does).

The sets are audiofolders (``ROOT/LABEL/*.wav``) with a ``manifest.json``
(voice, text, pitch, speed of every file). They are built once and cached
under ``$GRAFTZOO_HOME/datasets/`` in a folder keyed by a hash of every
parameter and the espeak-ng version. Build them anywhere with::

    python -m graftzoo_speech.generate OUT_DIR [--set espeak-keywords ...]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from graftzoo.api import DataError, atomic_dir, cache_dir

SAMPLE_RATE = 16000

SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "We also need a small plastic snake and a big toy frog for the kids.",
    "She can scoop these things into three red bags, and we will go meet her.",
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It is easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "Four hours of steady work faced us.",
)
KEYWORDS = ("yes", "no", "up", "down", "left", "right", "stop", "go")

# Twelve speakers for speaker identification: four accents x variants of both sexes.
SPEAKER_VOICES = (
    "en-us+m1", "en-us+f2", "en-us+m4", "en+f1", "en+m3", "en+f4",
    "en-gb-scotland+m2", "en-gb-scotland+f3", "en-029+m5", "en-029+f5", "en-gb-x-rp+m7", "en-us+klatt",
)
# Keyword spotting: 12 training voices, 4 held-out voices (accent/variant pairs never in training).
KEYWORD_TRAIN_VOICES = SPEAKER_VOICES
KEYWORD_UNSEEN_VOICES = ("en-us+m3", "en+f2", "en-gb-scotland+m6", "en-029+f1")


@dataclass(frozen=True)
class EspeakSet:
    """One generated set: who says what, how varied, and what the label is."""

    name: str
    voices: tuple[str, ...]
    texts: tuple[str, ...]
    label_by: str  # "voice" or "text"
    repeats: int = 1  # utterances per (voice, text), each with its own pitch and speed
    pitch: tuple[int, int] = (35, 65)  # espeak -p range (default 50)
    speed: tuple[int, int] = (140, 200)  # espeak -s range in words per minute (default 175)
    seed: int = 0
    sample_rate: int = SAMPLE_RATE

    def key(self, espeak_version: str) -> str:
        """Cache key: every parameter and the synthesiser's version."""
        blob = json.dumps({**asdict(self), "espeak": espeak_version, "format": 1}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


SETS: dict[str, EspeakSet] = {
    s.name: s
    for s in (
        EspeakSet("espeak-speakers", SPEAKER_VOICES, SENTENCES[:8], label_by="voice", repeats=2),
        EspeakSet("espeak-speakers-heldout", SPEAKER_VOICES, SENTENCES[8:], label_by="voice", repeats=2, seed=1),
        EspeakSet("espeak-keywords", KEYWORD_TRAIN_VOICES, KEYWORDS, label_by="text", repeats=2, seed=2),
        EspeakSet("espeak-keywords-unseen", KEYWORD_UNSEEN_VOICES, KEYWORDS, label_by="text", repeats=2, seed=3),
    )
}


def espeak_version() -> str:
    """``espeak-ng --version``'s first line, or a DataError saying how to install it."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise DataError("espeak-ng is not installed, so the espeak demo sets cannot be generated; install it "
                        "(apt-get install espeak-ng sox) or pass an audiofolder of your own")
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False)
    return out.stdout.strip().splitlines()[0] if out.stdout.strip() else "unknown"


def _label(text_or_voice: str) -> str:
    """A folder name: lower case, letters/digits and dashes only ("en-us+m1" -> "en-us-m1")."""
    cleaned = "".join(c if c.isalnum() else "-" for c in text_or_voice.lower()).strip("-")
    return "-".join(part for part in cleaned.split("-") if part)


def _to_16k(src: Path, dst: Path, sample_rate: int) -> None:
    """Convert espeak's 22.05 kHz output to ``sample_rate`` mono 16-bit (sox if present, else our resampler)."""
    if shutil.which("sox"):
        subprocess.run(["sox", "-q", str(src), "-r", str(sample_rate), "-c", "1", "-b", "16", str(dst)],
                       check=True, capture_output=True)
        return
    import soundfile as sf

    from graftzoo_speech.audio import read_audio

    sf.write(str(dst), read_audio(src, sample_rate), sample_rate, subtype="PCM_16")


def build(spec: EspeakSet, out_dir: Path) -> Path:
    """Write ``spec`` as an audiofolder into ``out_dir`` (created fresh) and return it."""
    exe = shutil.which("espeak-ng")
    version = espeak_version()
    rng = random.Random(spec.seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = []
    with tempfile.TemporaryDirectory(prefix="espeak-") as tmp:
        raw = Path(tmp) / "raw.wav"
        for v_idx, voice in enumerate(spec.voices):
            for t_idx, text in enumerate(spec.texts):
                for rep in range(spec.repeats):
                    pitch, speed = rng.randint(*spec.pitch), rng.randint(*spec.speed)
                    label = _label(voice if spec.label_by == "voice" else text)
                    rel = Path(label) / f"v{v_idx:02d}_t{t_idx:02d}_r{rep}.wav"
                    (out_dir / label).mkdir(exist_ok=True)
                    proc = subprocess.run([str(exe), "-v", voice, "-p", str(pitch), "-s", str(speed),
                                           "-w", str(raw), text], capture_output=True, text=True, check=False)
                    if proc.returncode != 0 or not raw.exists():
                        raise DataError(f"espeak-ng failed for voice {voice!r} and text {text!r}: "
                                        f"{proc.stderr.strip() or proc.returncode}; check 'espeak-ng --voices'")
                    _to_16k(raw, out_dir / rel, spec.sample_rate)
                    manifest.append({"file": rel.as_posix(), "label": label, "voice": voice, "text": text,
                                     "pitch": pitch, "speed": speed})
    (out_dir / "manifest.json").write_text(json.dumps({"set": asdict(spec), "espeak": version,
                                                       "files": manifest}, indent=1))
    return out_dir


def cached(name: str | EspeakSet, home: Path | None = None) -> Path:
    """The cached folder of a set (a name in ``SETS`` or a spec), generated on first use, atomically."""
    if isinstance(name, str) and name not in SETS:
        raise DataError(f"unknown espeak set {name!r}; valid: {', '.join(SETS)}")
    spec = SETS[name] if isinstance(name, str) else name
    name = spec.name
    root = (home or cache_dir()) / "datasets"
    final = root / f"{name}-{spec.key(espeak_version())}"
    if (final / "manifest.json").exists():
        return final
    try:
        with atomic_dir(final, f"the generated {name} set") as staging:
            build(spec, staging)
    except OSError:  # another process finished first: keep theirs
        if not (final / "manifest.json").exists():
            raise
    return final


def main(argv: list[str] | None = None) -> int:
    """``python -m graftzoo_speech.generate OUT_DIR [--set NAME ...]``: build the sets as audiofolders."""
    parser = argparse.ArgumentParser(prog="python -m graftzoo_speech.generate", description=__doc__.split("\n")[0])
    parser.add_argument("out_dir", type=Path, help="folder to write one audiofolder per set into")
    parser.add_argument("--set", dest="sets", action="append", choices=sorted(SETS),
                        help="which set(s) to build (default: all)")
    args = parser.parse_args(argv)
    try:
        for name in args.sets or list(SETS):
            target = args.out_dir / name
            if target.exists():
                shutil.rmtree(target)
            build(SETS[name], target)
            n = sum(1 for _ in target.rglob("*.wav"))
            print(f"{name}: {n} files in {target}")
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

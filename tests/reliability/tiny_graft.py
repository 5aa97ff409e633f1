"""``graft`` with the tiny test plugin installed, for tests and benches that run the CLI in a subprocess.

    python -m tests.reliability.tiny_graft WEIGHTS_DIR [graft arguments...]

Run from the repository root. Besides ``tinydigits`` (5 classes x 24) it
registers ``tinydigits-big`` (the same 5 digits, every example: ~900 images),
so a run lasts long enough to be killed at many different moments.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from graftzoo import hookimpl
from graftzoo.data import LabelledData


def load_big(location: str, **options: Any) -> LabelledData:
    """Every example of digits 0-4."""
    from tests.train import tiny

    images, target = tiny._digits_arrays()
    keep = [i for i in range(len(target)) if target[i] < 5]
    samples = [images[i] for i in keep]
    parts = [hashlib.sha256(s.tobytes()).hexdigest() for s in samples]
    return LabelledData(samples, [str(target[i]) for i in keep], name="tinydigits-big", modality="vision",
                        fingerprint_parts=parts)


class BigData:
    """Registers ``tinydigits-big``."""

    @hookimpl
    def register_datasets(self, register: Callable[..., None]) -> None:
        register("tinydigits-big", load_big, modality="vision", named=True)


def main() -> None:
    """Install the tiny plugin (weights under argv[1]) and run ``graft`` with the remaining arguments."""
    from graftzoo.cli import main as graft
    from graftzoo.plugins import get_plugins
    from tests.train import tiny

    tiny.install(Path(sys.argv[1]))
    get_plugins().add(BigData(), "graftzoo-test-bigdata")
    graft(sys.argv[2:])


if __name__ == "__main__":
    main()

"""The short version of bench/kill_resume.py: kill -9 graft tune twice per policy family, then go on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.parametrize("commands", ["tune-frozen,tune-top-k", "tune-gradual,tune-lora"])
def test_killed_tunes_resume_to_the_uninterrupted_result(commands: str) -> None:
    done = subprocess.run([sys.executable, str(REPO / "bench" / "kill_resume.py"), "--kills", "2", "--spread",
                           "--only", commands], cwd=REPO, capture_output=True, text=True, timeout=900)
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert [line.split(":")[0] for line in lines] == commands.split(",")
    assert all(": 2/2 resumed equal" in line for line in lines), lines

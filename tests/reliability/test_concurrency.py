"""Concurrent runs: one writer per run directory, shared work done once, the lock of a killed process taken over."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from graftzoo.storage import locks

REPO = Path(__file__).resolve().parents[2]


def env(home: Path) -> dict[str, str]:
    return {**os.environ, "GRAFTZOO_HOME": str(home), "GRAFTZOO_NO_PLUGINS": "1", "GRAFTZOO_NO_PROGRESS": "1",
            "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def graft(weights: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "tests.reliability.tiny_graft", str(weights), *args]


def wait_for(check: object, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_second_tune_into_one_out_refuses_naming_the_first_then_takes_over_after_a_kill(
        tiny_weights_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    tune = ["tune", "tinycnn.test", "tinydigits-big", "--policy", "top-k", "--unfreeze", "1", "--epochs", "500",
            "--image-size", "16", "--out", str(out)]
    first = subprocess.Popen(graft(tiny_weights_dir, *tune), cwd=REPO, env=env(tmp_path / "home"),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: locks.holder(out) is not None and (out / "checkpoint.pt").exists())
        for args in (tune, [*tune, "--overwrite"], ["tune", "--resume", str(out)]):
            second = subprocess.run(graft(tiny_weights_dir, *args), cwd=REPO, env=env(tmp_path / "home"),
                                    capture_output=True, text=True, timeout=120)
            assert second.returncode == 1, second.stderr
            assert f"is being written by pid {first.pid}" in second.stderr, second.stderr
            assert "Traceback" not in second.stderr
        assert first.poll() is None, "the first run must not be disturbed"
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
    assert locks.holder(out) is None  # the kernel released the killed process's lock
    resumed = subprocess.Popen(graft(tiny_weights_dir, "tune", "--resume", str(out)), cwd=REPO,
                               env=env(tmp_path / "home"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: f"pid {resumed.pid} " in (locks.holder(out) or ""))  # the stale lock is taken over
    finally:
        resumed.send_signal(signal.SIGTERM)  # and SIGTERM stops it like Ctrl-C: resumable, and it says how
        _, stderr = resumed.communicate(timeout=120)
    assert resumed.returncode == 1, stderr
    assert f"continue with 'graft tune --resume {out}'" in stderr and "Traceback" not in stderr, stderr
    from graftzoo.train.checkpoint import load_checkpoint
    from graftzoo.train.run import read_info

    assert read_info(out)["status"] in ("running", "interrupted") and load_checkpoint(out) is not None


def test_two_feature_extractions_do_the_work_once(tiny_weights_dir: Path, tmp_path: Path) -> None:
    children = []
    for _ in range(2):
        children.append(subprocess.Popen([sys.executable, "-m", "tests.reliability.extract_child",
                                          str(tiny_weights_dir)], cwd=REPO, env=env(tmp_path / "home"),
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        time.sleep(0.3)
    outs = [c.communicate(timeout=300) for c in children]
    assert [c.returncode for c in children] == [0, 0], [e for _, e in outs]
    batches = sorted(int(o.split()[0]) for o, _ in outs)
    sums = {o.split()[1] for o, _ in outs}
    assert batches == [0, 8], batches  # one ran the backbone over 120 samples in 8 batches, the other waited
    assert len(sums) == 1  # and read exactly what the first wrote
    assert len(list((tmp_path / "home" / "features").glob("*.safetensors"))) == 1


def test_ctrl_c_during_tune_leaves_a_resumable_run_and_says_how(tiny_weights_dir: Path, tmp_path: Path) -> None:
    from graftzoo.train.checkpoint import load_checkpoint
    from graftzoo.train.run import read_info

    out = tmp_path / "run"
    child = subprocess.Popen(graft(tiny_weights_dir, "tune", "tinycnn.test", "tinydigits-big", "--policy", "lora",
                                   "--epochs", "500", "--image-size", "16", "--out", str(out)),
                             cwd=REPO, env=env(tmp_path / "home"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
        wait_for(lambda: (out / "checkpoint.pt").exists())
    finally:
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=120)
    assert child.returncode == 1 and "Traceback" not in stderr, stderr
    assert f"continue with 'graft tune --resume {out}'" in stderr
    assert read_info(out)["status"] == "interrupted" and load_checkpoint(out) is not None


def test_a_killed_writers_forked_workers_do_not_keep_its_run_locked(tmp_path: Path) -> None:
    """DataLoader workers are forks: they must not hold the run lock once their parent is killed."""
    run = tmp_path / "run"
    script = (
        "import os, sys, time\n"
        "from pathlib import Path\n"
        "from graftzoo.storage import locks\n"
        "with locks.exclusive(Path(sys.argv[1]), 'a run'):\n"
        "    if os.fork() == 0:\n"
        "        time.sleep(10)  # a worker that outlives its killed parent for a while\n"
        "        os._exit(0)\n"
        "    print('locked', flush=True)\n"
        "    time.sleep(60)\n")
    writer = subprocess.Popen([sys.executable, "-c", script, str(run)], cwd=REPO, stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "locked"
        assert locks.holder(run) is not None
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=60)
    wait_for(lambda: locks.holder(run) is None, timeout=3)  # the orphaned worker sleeps on: the lock is free

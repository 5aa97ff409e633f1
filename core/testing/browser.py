"""Driving a demo page in the system's headless Chromium (tests of ``graft demo`` and exported Spaces).

The browser is Debian's ``chromium`` (``apt-get install chromium``), driven
by playwright's Python package through ``executable_path``: no browser is
ever downloaded. Tests skip only when no Chromium binary is installed.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]


def chromium_path() -> str | None:
    """The system Chromium binary, or None."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def served(command: Sequence[str], port: int, cwd: Path | None = None, timeout: float = 180) -> Iterator[str]:
    """Run ``command`` (a server on ``port``) until its page answers; yield its URL; stop it afterwards."""
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    import tempfile

    fd, name = tempfile.mkstemp(prefix=f"graftzoo-served-{port}-", suffix=".log")
    os.close(fd)
    log = Path(name)
    with log.open("w") as sink:
        proc = subprocess.Popen(list(command), cwd=cwd, env=env, stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"{' '.join(command)} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url, timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{url} did not answer within {timeout} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.unlink(missing_ok=True)


@contextmanager
def page(url: str) -> Iterator[Any]:
    """A playwright page of the system Chromium, opened at ``url``."""
    from playwright.sync_api import sync_playwright

    binary = chromium_path()
    if binary is None:
        raise AssertionError("no chromium binary (apt-get install chromium)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=binary, args=FLAGS, headless=True)
        try:
            tab = browser.new_page()
            tab.goto(url, wait_until="networkidle", timeout=120_000)
            yield tab
        finally:
            browser.close()


def shown_label(tab: Any, timeout_ms: int = 60_000) -> str:
    """The top label a Gradio ``Label`` output shows, once it shows one."""
    value = tab.locator("[data-testid='label-output-value']").first
    value.wait_for(state="visible", timeout=timeout_ms)
    text: str = value.inner_text().strip()
    return text

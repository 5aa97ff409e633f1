"""How long the listing commands take, against ``python -c "import click"``.

Runs each command several times, interleaved so that machine noise hits all of
them alike, and prints medians and ratios to the click baseline. Goal (issue
#3): ``graft list`` <= 2x ``import click`` and under 0.3 s with every plugin
installed.

    python bench/startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    graft = str(Path(sys.executable).with_name("graft"))
    commands = {
        'python -c "import click"': [sys.executable, "-c", "import click"],
        "graft --help": [graft, "--help"],
        "graft list": [graft, "list"],
        "graft list --json": [graft, "list", "--json"],
        "graft plugins": [graft, "plugins"],
    }
    env = {**os.environ, "GRAFTZOO_HOME": tempfile.mkdtemp(prefix="graft-bench-")}
    for cmd in commands.values():  # warm the OS cache and the entry-point index once
        subprocess.run(cmd, env=env, capture_output=True, check=True)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.runs):
        for name, cmd in commands.items():
            start = time.perf_counter()
            subprocess.run(cmd, env=env, capture_output=True, check=True)
            times[name].append(time.perf_counter() - start)
    plugins = subprocess.run([graft, "plugins"], env=env, capture_output=True, text=True).stdout
    print(f"plugins installed:\n{plugins}")
    base = statistics.median(times['python -c "import click"'])
    print(f"{'command':<28} {'median s':>9} {'min s':>7} {'x click':>8}")
    for name, values in times.items():
        med = statistics.median(values)
        print(f"{name:<28} {med:9.3f} {min(values):7.3f} {med / base:8.2f}")


if __name__ == "__main__":
    main()

"""How long the listing commands take, against ``python -c "import click"``.

Runs each command several times, interleaved so that machine noise hits all of
them alike, and prints medians and, per command, the median (and min-max) of
the ratios of each run to the click run of the same round. Goal (issue
#3): ``graft list`` <= 2x ``import click`` and under 0.3 s with every plugin
installed, also with a 2,000-entry user registry (issue 14).

    python bench/startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def write_user_registry(path: Path, n: int) -> None:
    """``n`` pinned hub entries, as 'graft add' writes them."""
    blocks = []
    for i in range(n):
        blocks.append(
            f'[[model]]\nid = "bench-{i}.acme"\nmodality = "vision"\nbackbone = "timm"\narch = "resnet18"\n'
            f'source = "hf://acme/bench-{i}@{i:040x}/model.safetensors"\nsha256 = "{i:064x}"\n'
            f'license = "apache-2.0"\ntasks = ["image-classification"]\n'
            f'[model.input]\n"size" = [3, 224, 224]\n"mean" = [0.5, 0.5, 0.5]\n"std" = [0.5, 0.5, 0.5]\n')
    path.write_text("\n".join(blocks))


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
    # Bytecode as a user has it: pip compiles what it installs (click included), and the editable install's
    # sources are compiled on first import. With PYTHONDONTWRITEBYTECODE set (as on some CI machines) graftzoo's
    # modules would be compiled again on every start while click's come from pip's .pyc files: not a fair pair.
    base = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env = {**base, "GRAFTZOO_HOME": tempfile.mkdtemp(prefix="graft-bench-")}
    envs = {name: env for name in commands}
    # A 2,000-entry user registry (issue 14): 'graft list' reads it through the parsed-registry cache.
    big_home = tempfile.mkdtemp(prefix="graft-bench-2000-")
    write_user_registry(Path(big_home) / "registry.toml", 2000)
    big = "graft list (2,000-entry user registry)"
    commands[big], envs[big] = [graft, "list"], {**env, "GRAFTZOO_HOME": big_home}
    for name, cmd in commands.items():  # warm the OS cache, the bytecode, the entry-point index and registry cache
        subprocess.run(cmd, env=envs[name], capture_output=True, check=True)
    times: dict[str, list[float]] = {name: [] for name in commands}
    cpu: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.runs):
        for name, cmd in commands.items():
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            subprocess.run(cmd, env=envs[name], capture_output=True, check=True)
            times[name].append(time.perf_counter() - start)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu[name].append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    plugins = subprocess.run([graft, "plugins"], env=env, capture_output=True, text=True).stdout
    print(f"plugins installed:\n{plugins}")
    clicks, click_cpu = times['python -c "import click"'], cpu['python -c "import click"']
    print(f"{'command':<40} {'median s':>9} {'min s':>7} {'max s':>7} {'x click (median of pairs, min-max)':>36} "
          f"{'cpu s':>6} {'cpu x click':>11}")
    for name, values in times.items():
        ratios = [v / c for v, c in zip(values, clicks, strict=True)]  # each run paired with the click run beside it
        cpu_ratio = statistics.median(c / b for c, b in zip(cpu[name], click_cpu, strict=True) if b > 0)
        print(f"{name:<40} {statistics.median(values):9.3f} {min(values):7.3f} {max(values):7.3f} "
              f"{statistics.median(ratios):>20.2f} ({min(ratios):.2f}-{max(ratios):.2f}) "
              f"{statistics.median(cpu[name]):6.3f} {cpu_ratio:11.2f}")

if __name__ == "__main__":
    main()

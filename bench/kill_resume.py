"""Kill -9 anywhere, then go on: every long command, killed at random moments, still ends with the right result.

For each command an uninterrupted reference run is made first. Then, KILLS
times: a fresh workspace (own GRAFTZOO_HOME and output paths), the command is
started, killed with SIGKILL after a random delay drawn uniformly from the
reference's duration, the state on disk is checked (nothing half-written is
visible: every graft.json, checkpoint, weights file, cached feature and
downloaded blob that a reader would accept is complete), and the work is
carried on the way a user would (``graft tune --resume RUN`` when the run
directory exists, else the same command again). The final result must equal
the reference: held-out metrics within 0.005 for tune / rank / adapt,
byte-identical files for pull.

Commands: graft tune with each policy family (frozen, which fills the feature
cache while it may be killed; top-k; gradual; lora), graft pull (from the
olah hub on 127.0.0.1, slowed so a kill lands mid-download), graft rank and
graft adapt. The tune / rank / adapt runs use the tiny CNN test plugin on
real digits (``tests/reliability/tiny_graft.py``), so each takes seconds.

    .venv/bin/python bench/kill_resume.py [--kills 20] [--only tune-top-k,pull] [--seed 0] [--spread]

Prints one line per command (N/N resumed equal, and where the kills landed);
exits 1 if any run did not end equal to its reference.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "sources"))

TOL = 0.005
TUNE = ["tune", "tinycnn.test", "tinydigits-big", "--epochs", "6", "--image-size", "16", "--batch-size", "32",
        "--lr", "0.01", "--seed", "0"]
POLICIES = {
    "tune-frozen": ["--policy", "frozen"],
    "tune-top-k": ["--policy", "top-k", "--unfreeze", "2"],
    "tune-gradual": ["--policy", "gradual", "--unfreeze-every", "2"],
    "tune-lora": ["--policy", "lora", "--lora-rank", "4"],
}


@dataclass
class Env:
    """What every command needs: the tiny weights, the hub (for pull), a source run (for adapt)."""

    weights: Path
    base: dict[str, str]
    hub_url: str | None = None
    hub_files: dict[str, bytes] | None = None
    registry: Path | None = None
    source_run: Path | None = None


def graft(env: Env, ws: Path, args: list[str]) -> list[str]:
    del ws
    return [sys.executable, "-m", "tests.reliability.tiny_graft", str(env.weights), *args]


def environ(env: Env, ws: Path) -> dict[str, str]:
    out = {**env.base, "GRAFTZOO_HOME": str(ws / "home"), "HF_HUB_CACHE": str(ws / "hf"),
           "HF_HOME": str(ws / "hf-home")}
    if env.hub_url:
        out["HF_ENDPOINT"] = env.hub_url
    if env.registry:
        out["GRAFTZOO_REGISTRY"] = str(env.registry)
    return out


def run(env: Env, ws: Path, args: list[str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(graft(env, ws, args), cwd=ROOT, env=environ(env, ws), capture_output=True, text=True,
                          timeout=timeout)


# --- what a reader would accept must be complete ---------------------------------------------------------------

def check_tune_dir(run_dir: Path) -> str:
    """Where the kill landed; raises AssertionError if anything visible is half-written."""
    from graftzoo.train import checkpoint as loop
    from graftzoo.train.run import WEIGHTS, load_run, read_info

    if not run_dir.exists():
        return "before the run directory"
    info = read_info(run_dir)  # a run directory always has a complete graft.json
    if info["status"] == "complete":
        load_run(run_dir)
        return "after completion"
    state = loop.load_checkpoint(run_dir)  # complete, or absent
    assert info["status"] in ("running", "interrupted"), info["status"]
    assert not (run_dir / WEIGHTS).exists() or state is not None
    return "before the first checkpoint" if state is None else f"after epoch {state['epoch']}"


def check_checked_caches(home: Path) -> None:
    """Every cached feature / conversion file with a checksum record matches it (others are never read)."""
    from graftzoo.storage import checked, sweep

    for folder in sweep.CHECKED_DIRS:
        for path in (home / folder).glob("*.safetensors") if (home / folder).is_dir() else []:
            status = checked.check(path).status
            assert status in ("ok", "no checksum record"), f"{path}: {status}"


def check_hf_cache(cache: Path) -> str:
    blobs = [b for b in cache.rglob("blobs/*") if b.is_file() and not b.name.startswith(".")]
    for blob in blobs:
        if len(blob.name) == 64:
            assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name, f"half-written blob {blob}"
    for link in cache.rglob("snapshots/**/*"):
        if link.is_symlink():
            assert link.resolve().is_file(), f"dangling snapshot entry {link}"
    return f"{len(blobs)} blob(s) complete"


# --- per command: argv, how to go on after a kill, and the result to compare ------------------------------------

def final_metrics(run_dir: Path) -> dict[str, float]:
    final = json.loads((run_dir / "graft.json").read_text())["final"]
    return {"accuracy": final["accuracy"], "loss": final["loss"], "macro_f1": final["macro_f1"]}


def tune_case(policy: list[str]) -> Command:
    def argv(env: Env, ws: Path) -> list[str]:
        return [*TUNE, *policy, "--out", str(ws / "run")]

    def inspect(env: Env, ws: Path) -> str:
        check_checked_caches(ws / "home")
        return check_tune_dir(ws / "run")

    def carry_on(env: Env, ws: Path) -> subprocess.CompletedProcess[str] | None:
        from graftzoo.train.run import read_info

        if not (ws / "run").exists():
            return run(env, ws, argv(env, ws))
        if read_info(ws / "run")["status"] == "complete":
            return None
        return run(env, ws, ["tune", "--resume", str(ws / "run")])

    return Command(argv, inspect, carry_on, lambda env, ws: final_metrics(ws / "run"))


def pull_case() -> Command:
    def argv(env: Env, ws: Path) -> list[str]:
        return ["pull", "bench.kill"]

    def result(env: Env, ws: Path) -> dict[str, float]:
        snapshots = list((ws / "hf").rglob("snapshots/*"))
        assert len(snapshots) == 1, snapshots
        assert env.hub_files is not None
        same = all((snapshots[0] / name).read_bytes() == data for name, data in env.hub_files.items())
        leftovers = list((ws / "hf").rglob("*.graft-tmp"))  # the re-pull removes what the killed one left
        return {"identical_files": float(same), "temporary_files_left": float(len(leftovers))}

    return Command(argv, lambda env, ws: check_hf_cache(ws / "hf"),
                   lambda env, ws: run(env, ws, argv(env, ws)), result)


def rank_case() -> Command:
    def argv(env: Env, ws: Path) -> list[str]:
        return ["rank", "tinydigits-big", "-m", "tinycnn.test", "--include-scratch", "--image-size", "16",
                "--by", "linear", "--folds", "3", "--json"]

    def inspect(env: Env, ws: Path) -> str:
        check_checked_caches(ws / "home")
        return f"{len(list((ws / 'home' / 'features').glob('*.safetensors')))} feature file(s)"

    def result(env: Env, ws: Path) -> dict[str, float]:
        done = run(env, ws, argv(env, ws))  # a re-run reads the cache the first runs filled
        assert done.returncode == 0, done.stderr[-2000:]
        rows = json.loads(done.stdout)["results"]
        return {f"{r['model']}/{'pretrained' if r['pretrained'] else 'scratch'}:{k}": float(r[k])
                for r in rows for k in ("logme", "knn", "linear")}

    return Command(argv, inspect, lambda env, ws: run(env, ws, argv(env, ws)), result)


def adapt_case() -> Command:
    def argv(env: Env, ws: Path) -> list[str]:
        return ["adapt", str(env.source_run), "tinydigits-big", "--method", "tent", "--steps", "4",
                "--batch-size", "64", "--out", str(ws / "adapted"), "--json"]

    def inspect(env: Env, ws: Path) -> str:
        from graftzoo.train.run import load_run

        if not (ws / "adapted").exists():
            return "before the adapted run appeared"
        load_run(ws / "adapted")  # complete, or absent
        return "after the adapted run appeared"

    def carry_on(env: Env, ws: Path) -> subprocess.CompletedProcess[str] | None:
        return None if (ws / "adapted").exists() else run(env, ws, argv(env, ws))

    def result(env: Env, ws: Path) -> dict[str, float]:
        record = json.loads((ws / "adapted" / "graft.json").read_text())["adaptation"]
        return {k: float(record[k]) for k in ("entropy_before", "entropy_after", "target_accuracy_after")
                if k in record}

    return Command(argv, inspect, carry_on, result)


@dataclass
class Command:
    argv: Callable[[Env, Path], list[str]]
    inspect: Callable[[Env, Path], str]
    carry_on: Callable[[Env, Path], subprocess.CompletedProcess[str] | None]
    result: Callable[[Env, Path], dict[str, float]]


COMMANDS: dict[str, Callable[[], Command]] = {
    **{name: (lambda p=p: tune_case(p)) for name, p in POLICIES.items()},
    "pull": pull_case, "rank": rank_case, "adapt": adapt_case,
}


# --- the loop -----------------------------------------------------------------------------------------------------

def reference(env: Env, cmd: Command, scratch: Path) -> tuple[dict[str, float], float]:
    ws = Path(tempfile.mkdtemp(dir=scratch, prefix="ref-"))
    start = time.perf_counter()
    done = run(env, ws, cmd.argv(env, ws))
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"reference run failed: {' '.join(cmd.argv(env, ws))}\n{done.stderr[-3000:]}")
    return cmd.result(env, ws), seconds


def equal(a: dict[str, float], b: dict[str, float]) -> tuple[bool, float]:
    if set(a) != set(b):
        return False, float("inf")
    worst = max((abs(a[k] - b[k]) for k in a), default=0.0)
    return worst <= TOL, worst


def one_kill(env: Env, cmd: Command, ref: dict[str, float], scratch: Path,
             delay: float) -> tuple[str, str | None, float]:
    """(where the kill landed, problem or None, largest metric difference)."""
    ws = Path(tempfile.mkdtemp(dir=scratch, prefix="kill-"))
    child = subprocess.Popen(graft(env, ws, cmd.argv(env, ws)), cwd=ROOT, env=environ(env, ws),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        child.wait(timeout=delay)
        landed = "after it had finished"
    except subprocess.TimeoutExpired:
        child.send_signal(signal.SIGKILL)
        child.wait()
        landed = ""
    try:
        where = cmd.inspect(env, ws)
    except Exception as exc:  # noqa: BLE001 - any failure to read the state is the finding
        return landed or "?", f"half-written state after the kill: {type(exc).__name__}: {exc}", float("inf")
    done = cmd.carry_on(env, ws)
    if done is not None and done.returncode != 0:
        return where, f"carrying on failed: {done.stderr.strip().splitlines()[-1:]}", float("inf")
    try:
        got = cmd.result(env, ws)
    except Exception as exc:  # noqa: BLE001
        return where, f"no result: {type(exc).__name__}: {exc}", float("inf")
    ok, worst = equal(got, ref)
    shutil.rmtree(ws, ignore_errors=True)
    return landed or where, None if ok else f"result differs by {worst:.4f}: {got}", worst



def setup(scratch: Path, names: list[str]) -> tuple[Env, Callable[[], None]]:
    from tests.train import tiny

    weights = scratch / "weights"
    weights.mkdir()
    tiny.pretrain(weights / "tinycnn.safetensors")
    tiny.install(weights)  # this process reads the runs it checks (load_run rebuilds the tiny CNN)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("GRAFTZOO_", "HF_"))}
    base.update(GRAFTZOO_NO_PLUGINS="1", GRAFTZOO_NO_PROGRESS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env = Env(weights, base)
    stops: list[Callable[[], None]] = []
    if "pull" in names:
        from hub_servers import Fault, FaultProxy, Olah, make_repo, safetensors_bytes

        files = {"model.safetensors": safetensors_bytes(7, 1_500_000),
                 "extra.safetensors": safetensors_bytes(8, 500_000), "config.json": b'{"arch": "kill-bench"}\n'}
        make_repo(scratch / "mirrors", "bench/kill", files)
        olah = Olah(scratch / "mirrors", scratch / "olah")
        olah.wait("/bench/kill/resolve/main/config.json")
        proxy = FaultProxy(olah.port)
        proxy.add(Fault("/bench/kill/resolve/", "slow"))  # ~5 MB/s: a kill lands mid-download
        env.hub_url, env.hub_files = proxy.url, files
        env.registry = scratch / "registry.toml"
        env.registry.write_text('[[model]]\nid = "bench.kill"\nmodality = "vision"\nbackbone = "timm"\n'
                                'license = "MIT"\nsource = "hf://bench/kill@main"\n')
        stops += [proxy.stop, olah.stop]
    if "adapt" in names:
        ws = scratch / "source"
        ws.mkdir()
        done = run(env, ws, [*TUNE, "--policy", "top-k", "--unfreeze", "1", "--epochs", "3",
                             "--out", str(ws / "run")])
        if done.returncode != 0:
            raise SystemExit(f"could not train the run to adapt:\n{done.stderr[-3000:]}")
        env.source_run = ws / "run"
    return env, lambda: [stop() for stop in stops]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20, help="kills per command (default 20)")
    parser.add_argument("--only", default=",".join(COMMANDS), help="comma-separated commands")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--spread", action="store_true",
                        help="kill at evenly spaced moments of the reference run instead of random ones")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(names) - set(COMMANDS))
    if unknown:
        parser.error(f"unknown command(s) {unknown}; choose from {', '.join(COMMANDS)}")
    rng = random.Random(args.seed)
    failures = 0
    with tempfile.TemporaryDirectory(prefix="graft-kill-") as tmp:
        scratch = Path(tmp)
        env, stop = setup(scratch, names)
        try:
            for name in names:
                cmd = COMMANDS[name]()
                ref, seconds = reference(env, cmd, scratch)
                landed: Counter[str] = Counter()
                problems: list[str] = []
                worst = 0.0
                for i in range(args.kills):
                    delay = (i + 0.5) / args.kills * seconds if args.spread else rng.uniform(0.0, seconds)
                    where, problem, diff = one_kill(env, cmd, ref, scratch, delay)
                    landed[where] += 1
                    worst = max(worst, diff)
                    if problem:
                        problems.append(f"killed {where}: {problem}")
                ok = args.kills - len(problems)
                failures += len(problems)
                spread = ", ".join(f"{n} {w}" for w, n in sorted(landed.items(), key=lambda kv: -kv[1]))
                print(f"{name}: {ok}/{args.kills} resumed equal (reference {seconds:.1f} s; max |diff| "
                      f"{worst:.4f}; kills landed: {spread})", flush=True)
                for problem in problems:
                    print(f"  FAIL {problem}", flush=True)
        finally:
            stop()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

"""Pull throughput: ``graftzoo.sources.pull`` vs ``huggingface_hub.snapshot_download``, same repo, same hub.

The hub is the real ``olah`` server on 127.0.0.1 serving a git repository
this script creates (LFS-stored safetensors files); nothing leaves the
machine. Each round downloads the whole repository into a fresh cache with
each client, alternating which goes first. Then both run against one shared
cache to show that a Graftzoo pull leaves nothing for huggingface_hub to
download or store again. Figures are ratios, printed, never asserted.

    .venv/bin/python bench/pull.py [--mb 128] [--files 2] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "sources"))

from hub_servers import Olah, make_repo, safetensors_bytes

REPO = "bench/weights"


def _files(total_mb: int, count: int) -> dict[str, bytes]:
    per = total_mb * (1 << 20) // 4 // count
    files = {f"model-{i:05d}-of-{count:05d}.safetensors": safetensors_bytes(i, per) for i in range(count)}
    files["config.json"] = b'{"architectures": ["Bench"], "hidden_size": 8}\n'
    return files


def _ours(cache: Path) -> Path:
    from graftzoo.registry import entry_from_dict
    from graftzoo.sources import pull

    os.environ["HF_HUB_CACHE"] = str(cache)
    entry = entry_from_dict({"id": "bench.weights", "modality": "vision", "backbone": "timm", "license": "MIT",
                             "source": f"hf://{REPO}@main"}, "bench")
    return pull(entry).path


def _theirs(cache: Path) -> Path:
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(REPO, revision="main", cache_dir=str(cache), endpoint=os.environ["HF_ENDPOINT"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=128, help="total size of the repository's weights (MB)")
    parser.add_argument("--files", type=int, default=2, help="number of safetensors shards")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from graftzoo.sources.manage import disk_usage

    with tempfile.TemporaryDirectory(prefix="graftzoo-bench-") as tmp:
        root = Path(tmp)
        files = _files(args.mb, args.files)
        size = sum(len(b) for b in files.values())
        make_repo(root / "mirrors", REPO, files)
        server = Olah(root / "mirrors", root / "olah")
        os.environ.update({"HF_ENDPOINT": server.url, "GRAFTZOO_HOME": str(root / "home"), "GRAFTZOO_PROGRESS": "0",
                           "GRAFTZOO_NO_PLUGINS": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"})
        os.environ.pop("HF_HUB_OFFLINE", None)
        try:
            server.wait(f"/{REPO}/resolve/main/config.json")
            _theirs(root / "warm")  # warm olah's and the OS's caches so neither client pays for them
            times: dict[str, list[float]] = {"graftzoo pull": [], "snapshot_download": []}
            clients = {"graftzoo pull": _ours, "snapshot_download": _theirs}
            for round_ in range(args.rounds):
                order = list(clients) if round_ % 2 == 0 else list(reversed(clients))
                for name in order:
                    cache = root / f"cache-{name.split()[0]}-{round_}"
                    start = time.perf_counter()
                    clients[name](cache)
                    times[name].append(time.perf_counter() - start)
                    shutil.rmtree(cache)
            shared = root / "shared"
            ours_path = _ours(shared)
            after_ours = disk_usage(shared)
            theirs_path = _theirs(shared)
            after_both = disk_usage(shared)
        finally:
            server.stop()

    print(f"repo {REPO}: {len(files)} files, {size / 1e6:.1f} MB, hub = olah on 127.0.0.1, "
          f"{args.rounds} rounds (median)")
    print(f"{'client':<20}{'median s':>10}{'MB/s':>10}")
    medians = {name: statistics.median(t) for name, t in times.items()}
    for name, seconds in medians.items():
        print(f"{name:<20}{seconds:>10.2f}{size / 1e6 / seconds:>10.1f}")
    ratio = medians["snapshot_download"] / medians["graftzoo pull"]
    print(f"throughput ratio graftzoo/snapshot_download: {ratio:.2f}x (goal >= 0.95x)")
    print(f"shared cache: after graftzoo pull {after_ours / 1e6:.1f} MB, after snapshot_download too "
          f"{after_both / 1e6:.1f} MB (repo {size / 1e6:.1f} MB); same folder: {ours_path == theirs_path}")


if __name__ == "__main__":
    main()

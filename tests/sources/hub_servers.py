"""Loopback servers for the sources tests and bench/pull.py (127.0.0.1 only, never the internet).

- ``make_repo``: a git repository in olah's mirror layout with real safetensors
  files stored the git-LFS way (pointer committed, object in .git/lfs/objects).
- ``Olah``: the real ``olah`` hub server (offline mode) serving those repos.
- ``FaultProxy``: a forwarding proxy in front of it that can flip bytes,
  truncate bodies, answer 404/500, slow down or rewrite tree listings.
- ``PushHub``: a small HF-API server of our own that accepts create-repo,
  preupload, LFS batch/PUT and commit, keeping the files for inspection.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def safetensors_bytes(seed: int, numel: int) -> bytes:
    """A real safetensors file (one float32 tensor) built without torch."""
    import numpy as np
    from safetensors.numpy import save

    rng = np.random.default_rng(seed)
    return bytes(save({"weight": rng.standard_normal(numel).astype("float32")}))


def _git(repo: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=repo, env={**os.environ, **GIT_ENV}, check=True,
                         capture_output=True, text=True, timeout=60)
    return out.stdout.strip()


def commit_files(repo: Path, files: dict[str, bytes], lfs: tuple[str, ...] = (), message: str = "update") -> str:
    """Write files into a mirror repo (LFS ones as pointers + objects), commit, return the commit hash."""
    for name, data in files.items():
        target = repo / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if name in lfs or name.endswith(".safetensors"):
            oid = hashlib.sha256(data).hexdigest()
            obj = repo / ".git" / "lfs" / "objects" / oid[:2] / oid[2:4] / oid
            obj.parent.mkdir(parents=True, exist_ok=True)
            obj.write_bytes(data)
            target.write_text(f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {len(data)}\n")
        else:
            target.write_bytes(data)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", message)
    return _git(repo, "rev-parse", "HEAD")


def make_repo(mirrors: Path, repo_id: str, files: dict[str, bytes]) -> tuple[Path, str]:
    """A new model repo under ``mirrors/models/ORG/NAME`` on branch main; returns (path, commit)."""
    repo = mirrors / "models" / repo_id
    repo.mkdir(parents=True)
    _git(repo, "init", "-q", "-b", "main")
    return repo, commit_files(repo, files, message="init")


class Olah:
    """The olah hub server on 127.0.0.1 serving the repos under ``mirrors`` (offline mode)."""

    def __init__(self, mirrors: Path, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        config = workdir / "olah.toml"
        config.write_text(
            "[basic]\n"
            f'host = "127.0.0.1"\nport = {self.port}\n'
            f'repos-path = "{workdir / "repos"}"\nmirrors-path = ["{mirrors}"]\n'
            f'mirror-netloc = "127.0.0.1:{self.port}"\nmirror-lfs-netloc = "127.0.0.1:{self.port}"\n'
            "[accessibility]\noffline = true\n"
        )
        self.log = open(workdir / "olah.log", "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "olah.server", "-c", str(config)], cwd=workdir,
                                     stdout=self.log, stderr=subprocess.STDOUT)

    def wait(self, probe: str, timeout: float = 60.0) -> None:
        """Wait until ``probe`` (a path) answers 200, bounded."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"olah exited with {self.proc.returncode}; see {self.log.name}")
            with contextlib.suppress(OSError):
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("HEAD", probe)
                if conn.getresponse().status == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"olah did not answer {probe} within {timeout} s; see {self.log.name}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.log.close()


@dataclass
class Fault:
    """One injected failure: requests whose method and path match get ``mode`` (``times`` times, or always)."""

    path: str
    mode: str  # flip | truncate | status:NNN | slow | tree-traversal
    method: str = "GET"
    times: int | None = None


@dataclass
class _ProxyState:
    upstream: tuple[str, int]
    faults: list[Fault] = field(default_factory=list)
    log: list[tuple[str, str, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.method == method and fault.path in urllib.parse.unquote(path):
                    if fault.times is not None:
                        if fault.times <= 0:
                            continue
                        fault.times -= 1
                    return fault
        return None


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: _ProxyState

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _forward(self) -> None:
        state = self.state
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        fault = state.take(self.command, self.path)
        if fault is not None and fault.mode.startswith("status:"):
            code = int(fault.mode.split(":")[1])
            payload = json.dumps({"error": f"injected {code}"}).encode()
            state.log.append((self.command, self.path, code))
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload) if self.command != "HEAD" else 0))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
            return
        conn = http.client.HTTPConnection(*state.upstream, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        conn.request(self.command, self.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read() if self.command != "HEAD" else b""
        state.log.append((self.command, self.path, resp.status))
        declared = len(data)
        if fault is not None and data:
            if fault.mode == "flip":
                middle = len(data) // 2
                data = data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:]
            elif fault.mode == "tree-traversal":
                listing = json.loads(data)
                listing.append({"type": "file", "oid": "0" * 40, "size": 4, "path": "../../escaped.safetensors"})
                data = json.dumps(listing).encode()
                declared = len(data)
        self.send_response(resp.status)
        for key, value in resp.getheaders():
            if key.lower() == "location":  # keep redirects (olah resolves branches by 307) on the proxy
                value = value.replace(f"127.0.0.1:{state.upstream[1]}", self.headers.get("Host", ""))
            if key.lower() not in ("content-length", "transfer-encoding", "connection", "date", "server"):
                self.send_header(key, value)
        if self.command == "HEAD":
            self.send_header("Content-Length", resp.getheader("content-length") or "0")
        else:
            self.send_header("Content-Length", str(declared))
        self.end_headers()
        if self.command == "HEAD":
            return
        if fault is not None and fault.mode == "truncate":
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault is not None and fault.mode == "slow":
            for start in range(0, len(data), 256 * 1024):
                self.wfile.write(data[start:start + 256 * 1024])
                self.wfile.flush()
                time.sleep(0.05)
            return
        self.wfile.write(data)

    do_GET = do_HEAD = do_POST = _forward


class FaultProxy:
    """A forwarding proxy on 127.0.0.1 with injectable faults and a request log."""

    def __init__(self, upstream_port: int) -> None:
        self.state = _ProxyState(("127.0.0.1", upstream_port))
        handler = type("Handler", (_ProxyHandler,), {"state": self.state})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def add(self, fault: Fault) -> None:
        with self.state.lock:
            self.state.faults.append(fault)

    def reset(self) -> None:
        with self.state.lock:
            self.state.faults.clear()
            self.state.log.clear()

    def requests(self, method: str, fragment: str) -> int:
        """How many ``method`` requests whose path contains ``fragment`` reached the proxy."""
        return sum(1 for m, p, _ in self.state.log if m == method and fragment in p)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class RepoRecord:
    private: bool
    files: dict[str, bytes] = field(default_factory=dict)
    commits: list[str] = field(default_factory=list)


class PushHub:
    """A small HF-API server: repos/create, preupload, LFS batch + PUT, commit, and model search."""

    def __init__(self, models: list[dict[str, Any]] | None = None) -> None:
        self.repos: dict[str, RepoRecord] = {}
        self.lfs: dict[str, bytes] = {}
        self.models = models or []
        self.tokens: list[str | None] = []
        self.cards: list[str] = []
        self.unknown: list[tuple[str, str]] = []  # requests no route answered (a protocol change shows here)
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _reply(self, code: int, payload: Any) -> None:
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def do_GET(self) -> None:
                url = urllib.parse.urlparse(self.path)
                if url.path == "/api/models":  # search, then the hub's order: by a count, largest first
                    params = urllib.parse.parse_qs(url.query)
                    query, order = params.get("search", [""])[0], params.get("sort", [""])[0]
                    found = [m for m in hub.models if query.lower() in m["id"].lower()]
                    if order:
                        found.sort(key=lambda m: -int(m.get(order, 0)))
                    self._reply(200, found)
                else:
                    hub.unknown.append(("GET", self.path))
                    self._reply(404, {"error": "not found"})

            def do_PUT(self) -> None:
                oid = self.path.rsplit("/", 1)[-1]
                hub.lfs[oid] = self._body()
                self._reply(200, {})

            def do_POST(self) -> None:
                url = urllib.parse.urlparse(self.path)
                body = self._body()
                hub.tokens.append(self.headers.get("authorization"))
                parts = url.path.strip("/").split("/")
                if url.path == "/api/repos/create":
                    req = json.loads(body)
                    repo_id = f"{req.get('organization')}/{req['name']}" if req.get("organization") else req["name"]
                    if repo_id in hub.repos:
                        self._reply(409, {"error": "You already created this model repo", "url": repo_id})
                        return
                    private = req.get("visibility", "private" if req.get("private") else "public") == "private"
                    hub.repos[repo_id] = RepoRecord(private=private)
                    self._reply(200, {"url": f"http://{self.headers['host']}/{repo_id}", "name": repo_id})
                elif url.path == "/api/validate-yaml":  # model-card metadata check before a commit
                    hub.cards.append(json.loads(body)["content"])
                    self._reply(200, {"warnings": []})
                elif len(parts) >= 5 and parts[:2] == ["api", "models"] and parts[4] == "preupload":
                    files = json.loads(body)["files"]
                    self._reply(200, {"files": [{"path": f["path"], "shouldIgnore": False, "uploadMode":
                                                 "lfs" if f["path"].endswith(".safetensors") else "regular"}
                                                for f in files]})
                elif url.path.endswith(".git/info/lfs/objects/batch"):
                    objects = json.loads(body)["objects"]
                    host = self.headers["host"]
                    self._reply(200, {"transfer": "basic", "objects": [
                        {"oid": o["oid"], "size": o["size"],
                         "actions": {"upload": {"href": f"http://{host}/lfs-upload/{o['oid']}"}}}
                        for o in objects]})
                elif len(parts) >= 5 and parts[:2] == ["api", "models"] and parts[4] == "commit":
                    repo_id = f"{parts[2]}/{parts[3]}"
                    record = hub.repos.get(repo_id)
                    if record is None:
                        self._reply(404, {"error": "Repository not found"})
                        return
                    for line in body.splitlines():
                        item = json.loads(line)
                        value = item["value"]
                        if item["key"] == "file":
                            record.files[value["path"]] = base64.b64decode(value["content"])
                        elif item["key"] == "lfsFile":
                            record.files[value["path"]] = hub.lfs[value["oid"]]
                    oid = hashlib.sha1(repr(sorted(record.files)).encode() + str(len(record.commits)).encode(),
                                       usedforsecurity=False).hexdigest()
                    record.commits.append(oid)
                    self._reply(200, {"commitUrl": f"http://{self.headers['host']}/{repo_id}/commit/{oid}",
                                      "commitOid": oid, "pullRequestUrl": None})
                else:
                    hub.unknown.append(("POST", self.path))
                    self._reply(404, {"error": f"no route {url.path}"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextlib.contextmanager
def olah_hub(root: Path, repos: dict[str, dict[str, bytes]]) -> Iterator[tuple[Olah, dict[str, str]]]:
    """Create ``repos`` (id -> files), start olah on them, yield (server, id -> commit), stop it."""
    mirrors = root / "mirrors"
    commits = {repo_id: make_repo(mirrors, repo_id, files)[1] for repo_id, files in repos.items()}
    server = Olah(mirrors, root / "olah")
    try:
        first, files = next(iter(repos.items()))
        server.wait(f"/{first}/resolve/main/{next(iter(files))}")
        yield server, commits
    finally:
        server.stop()

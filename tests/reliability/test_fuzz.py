"""Fuzzed inputs: the only outcomes are success or a GraftError whose message names the file.

Registry files (text mutations of the real registry.toml, and raw bytes), a
run's graft.json, a lock file, and every data format loader (imagefolder,
csv/jsonl, conll, audiofolder, and the image/audio decoders on corrupt
bytes). A few hundred cases per target keep the suite fast;
``GRAFTZOO_FUZZ_EXAMPLES=5000`` (or ``bench/fuzz.py``) runs thousands.
Every case that reaches the CLI must end in one ``Error:`` line, never a
traceback.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graftzoo.cli import cli
from graftzoo.errors import GraftError

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = int(os.environ.get("GRAFTZOO_FUZZ_EXAMPLES", "200"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=os.environ.get("GRAFTZOO_FUZZ_RANDOM") is None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large], database=None)
REGISTRY_LINES = (REPO / "registry.toml").read_text(encoding="utf-8").splitlines()
JUNK = st.sampled_from(['""', "0", "-1", "1e999", "[]", "{}", "true", '"hf://"', '"file://../../x"', '"pkg://a"',
                        '"\\u0000"', "nan", '"' + "x" * 300 + '"', "[1, [2]]", "{a = 1}", "'''", "\\", '"mit"'])


@pytest.fixture(autouse=True)
def _fresh_plugins() -> Iterator[None]:
    """A CLI call under GRAFTZOO_NO_PLUGINS=1 loads a plugin-less manager: never hand it to the next test."""
    from graftzoo.plugins import reset_plugins

    yield
    reset_plugins()


@st.composite
def mutated_lines(draw: st.DrawFn, lines: list[str]) -> str:
    """Delete, duplicate, swap lines, replace values with junk, truncate."""
    out = list(lines)
    for _ in range(draw(st.integers(1, 6))):
        if not out:
            break
        i = draw(st.integers(0, len(out) - 1))
        op = draw(st.sampled_from(["delete", "duplicate", "swap", "junk", "truncate", "insert"]))
        if op == "delete":
            del out[i]
        elif op == "duplicate":
            out.insert(i, out[i])
        elif op == "swap":
            j = draw(st.integers(0, len(out) - 1))
            out[i], out[j] = out[j], out[i]
        elif op == "junk" and "=" in out[i]:
            out[i] = out[i].split("=", 1)[0] + "= " + draw(JUNK)
        elif op == "truncate":
            out[i] = out[i][: draw(st.integers(0, len(out[i])))]
        else:
            out.insert(i, draw(st.text(max_size=40)))
    return "\n".join(out) + "\n"


@st.composite
def mutated_bytes(draw: st.DrawFn, data: bytes) -> bytes:
    """Flip, insert or cut bytes (including ones that are not valid UTF-8)."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["flip", "insert", "cut"]))
        i = draw(st.integers(0, max(len(out) - 1, 0)))
        if op == "flip" and out:
            out[i] ^= draw(st.integers(1, 255))
        elif op == "insert":
            out[i:i] = draw(st.binary(min_size=1, max_size=16))
        else:
            del out[i: i + draw(st.integers(1, 64))]
    return bytes(out)


def names_file(exc: BaseException, path: Path) -> None:
    assert isinstance(exc, GraftError), f"{type(exc).__name__}: {exc}"
    assert str(path) in str(exc) or path.name in str(exc), f"the error does not name {path}: {exc}"


def cli_clean(args: list[str], env: dict[str, str] | None = None) -> str:
    """Run the CLI; it must succeed or print one Error line (never a traceback)."""
    result = CliRunner().invoke(cli, args, env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"traceback through the CLI: {type(result.exception).__name__}: {result.exception}")
    assert result.exit_code in (0, 1, 2), result.output
    if result.exit_code:
        assert result.output.count("Error:") == 1, result.output
    return result.output


# --- registry files -------------------------------------------------------------------------------------------

def _load_registry(path: Path) -> None:
    from graftzoo.registry import load_registry

    try:
        load_registry([path], plugins=False)
    except GraftError as exc:
        names_file(exc, path)


@FUZZ
@given(text=mutated_lines(REGISTRY_LINES))
def test_registry_text(text: str, tmp_path: Path) -> None:
    path = tmp_path / "registry.toml"
    path.write_text(text, encoding="utf-8")
    _load_registry(path)


@FUZZ
@given(data=st.one_of(mutated_bytes((REPO / "registry.toml").read_bytes()[:3000]), st.binary(max_size=300)))
def test_registry_bytes(data: bytes, tmp_path: Path) -> None:
    path = tmp_path / "registry.toml"
    path.write_bytes(data)
    _load_registry(path)


def test_non_utf8_registry_through_the_cli(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_bytes(b'[[model]]\nid = "caf\xe9"\n')
    out = cli_clean(["list"], env={"GRAFTZOO_REGISTRY": str(path), "GRAFTZOO_NO_PLUGINS": "1"})
    assert str(path) in out and "UTF-8" in out


# --- graft.json of a run --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny run (the source of the mutated graft.json files)."""
    from graftzoo.plugins import reset_plugins
    from graftzoo.train.config import TrainConfig
    from graftzoo.train.engine import train
    from tests.train import tiny

    folder = tmp_path_factory.mktemp("fuzz-run")
    home = os.environ.get("GRAFTZOO_HOME")
    os.environ["GRAFTZOO_HOME"] = str(folder / "home")
    reset_plugins(entry_points=False)
    tiny.install(folder)
    try:
        train(TrainConfig(model=tiny.MODEL_ID, data="tinydigits", epochs=1, batch_size=16), folder / "run",
              progress=False)
    finally:
        reset_plugins()
        if home is not None:
            os.environ["GRAFTZOO_HOME"] = home
    return folder / "run"


def _json_values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 10**6), st.floats(allow_nan=True),
                        st.text(max_size=12))
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6),
                                                                                             inner, max_size=3),
                        max_leaves=6)


@st.composite
def mutated_info(draw: st.DrawFn, info: dict[str, Any]) -> dict[str, Any]:
    out = json.loads(json.dumps(info))
    for _ in range(draw(st.integers(1, 4))):
        target = out
        keys = [k for k in target]
        key = draw(st.sampled_from(keys))
        while isinstance(target[key], dict) and target[key] and draw(st.booleans()):
            target = target[key]
            key = draw(st.sampled_from(list(target)))
        if draw(st.booleans()):
            del target[key]
        else:
            target[key] = draw(_json_values())
    return out


@FUZZ
@given(case=st.data())
def test_run_graft_json(case: st.DataObject, run_dir: Path, tmp_path: Path) -> None:
    from graftzoo.plugins import reset_plugins
    from graftzoo.train import engine
    from graftzoo.train.run import load_run
    from tests.train import tiny

    info = json.loads((run_dir / "graft.json").read_text())
    copy = tmp_path / "fuzzed-run-dir"
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(run_dir, copy)
    if case.draw(st.booleans()):
        (copy / "graft.json").write_text(json.dumps(case.draw(mutated_info(info))))
    else:
        (copy / "graft.json").write_bytes(case.draw(mutated_bytes((run_dir / "graft.json").read_bytes())))
    reset_plugins(entry_points=False)
    tiny.install(run_dir.parent)
    try:  # loading the run, and what resume reads before it trains (plan and checkpoint)
        for step in (lambda: load_run(copy), lambda: engine.plan_resume(copy)):
            try:
                step()
            except GraftError as exc:
                names_file(exc, copy)
    finally:
        reset_plugins()


def test_an_unknown_adapter_in_graft_json_names_the_run(run_dir: Path, tmp_path: Path) -> None:
    """Found by the fuzzer: a graft.json whose entry names an adapter no plugin provides gave a PluginError
    that said which adapter but not which run; loading it and resuming it must both name the run directory."""
    from graftzoo.errors import PluginError
    from graftzoo.plugins import reset_plugins
    from graftzoo.train import engine
    from graftzoo.train.run import load_run
    from tests.train import tiny

    copy = tmp_path / "renamed-adapter-run"
    shutil.copytree(run_dir, copy)
    info = json.loads((copy / "graft.json").read_text())
    info["entry"]["backbone"] = "uinycnn-test"
    info["status"] = "running"
    (copy / "graft.json").write_text(json.dumps(info))
    reset_plugins(entry_points=False)
    tiny.install(run_dir.parent)
    try:
        with pytest.raises(PluginError, match="uinycnn-test") as loading:
            load_run(copy)
        assert str(loading.value).startswith(f"{copy}: ")
        info["config"]["policy"] = "no-such-policy"
        (copy / "graft.json").write_text(json.dumps(info))
        with pytest.raises(GraftError, match="no-such-policy") as resuming:
            engine.plan_resume(copy)
        assert str(copy) in str(resuming.value)
    finally:
        reset_plugins()


# --- lock files -----------------------------------------------------------------------------------------------

LOCK = json.dumps({"version": 1, "models": {"a.b": {"source": "hf://x/y@main", "revision": "0" * 40, "files": {
    "model.safetensors": {"sha256": "1" * 64, "size": 10}}}}}, indent=2).encode()


@FUZZ
@given(data=st.one_of(mutated_bytes(LOCK), st.binary(max_size=200),
                      _json_values().map(lambda v: json.dumps(v).encode())))
def test_lock_file(data: bytes, tmp_path: Path) -> None:
    from graftzoo.registry import Registry
    from graftzoo.sources.lockfile import pull_locked, read_lock

    path = tmp_path / "graft.lock"
    path.write_bytes(data)
    try:
        read_lock(path)
        pull_locked(path, Registry([]))
    except GraftError as exc:
        names_file(exc, path)


def test_bad_lock_file_through_the_cli(tmp_path: Path) -> None:
    path = tmp_path / "graft.lock"
    path.write_bytes(b'{"version": 1, "models": {"x": {"files": {"a": {"sha256": 5}}}}}\xff')
    out = cli_clean(["pull", "--locked", str(path)], env={"GRAFTZOO_NO_PLUGINS": "1"})
    assert str(path) in out


# --- data loaders ---------------------------------------------------------------------------------------------

def _load(path: Path, fmt: str | None = None, modality: str | None = None) -> None:
    from graftzoo.data import load_data

    try:
        load_data(str(path), modality=modality, format=fmt)
    except GraftError as exc:
        names_file(exc, path)


CSV = b"text,label\nhello world,pos\nawful film,neg\n\"quoted, text\",pos\nmore,neg\n"
JSONL = b'{"text": "hello", "label": "pos"}\n{"text": "bad", "label": "neg"}\n{"text": ["a", "b"], "label": "x"}\n'


@FUZZ
@given(data=st.one_of(mutated_bytes(CSV), st.binary(max_size=200), st.text(max_size=200).map(str.encode)))
def test_csv(data: bytes, tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(data)
    _load(path, "csv")


@FUZZ
@given(data=st.one_of(mutated_bytes(JSONL), st.binary(max_size=200),
                      st.lists(_json_values(), max_size=4).map(lambda v: "\n".join(map(json.dumps, v)).encode())))
def test_jsonl(data: bytes, tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_bytes(data)
    _load(path, "jsonl")


@pytest.fixture(scope="module")
def conll_sample() -> bytes:
    return (REPO / "plugins" / "nlp" / "tests" / "data" / "tiny_ner.conll").read_bytes()[:1500]


@FUZZ
@given(case=st.data())
def test_conll(case: st.DataObject, conll_sample: bytes, tmp_path: Path) -> None:
    path = tmp_path / "data.conll"
    path.write_bytes(case.draw(st.one_of(mutated_bytes(conll_sample), st.binary(max_size=200))))
    _load(path, "conll")


def _png() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buf, format="PNG")
    return buf.getvalue()


def _wav() -> bytes:
    import io
    import wave

    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\x01\x02" * 800)
    return buf.getvalue()


def _folder(root: Path, files: dict[str, bytes]) -> None:
    if root.exists():
        shutil.rmtree(root)
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)


@st.composite
def class_folder(draw: st.DrawFn, good: bytes, suffix: str) -> dict[str, bytes]:
    """Two to three class folders; some files are corrupt, some classes empty or tiny."""
    files: dict[str, bytes] = {}
    for c in draw(st.lists(st.sampled_from(["cat", "dog", "Cat", "cat ", "bird"]), min_size=1, max_size=3,
                           unique=True)):
        for i in range(draw(st.integers(0, 3))):
            data = draw(st.one_of(st.just(good), mutated_bytes(good), st.binary(max_size=64)))
            files[f"{c}/{i}{suffix}"] = data
    return files


def _fuzz_class_folder(files: dict[str, bytes], root: Path, fmt: str, modality: str,
                       decode: Callable[[Path], object]) -> None:
    """Load the folder with its format's loader, and decode every file with the plugin's decoder."""
    _folder(root, files)
    if files:
        _load(root, fmt, modality)
    for name in files:
        try:
            decode(root / name)
        except GraftError as exc:
            names_file(exc, root / name)


@FUZZ
@given(case=st.data())
def test_imagefolder(case: st.DataObject, tmp_path: Path) -> None:
    pytest.importorskip("graftzoo_vision")
    from graftzoo_vision.images import open_image

    _fuzz_class_folder(case.draw(class_folder(_png(), ".png")), tmp_path / "images", "imagefolder", "vision",
                       open_image)


@FUZZ
@given(case=st.data())
def test_audiofolder(case: st.DataObject, tmp_path: Path) -> None:
    pytest.importorskip("graftzoo_speech")
    from graftzoo_speech.audio import read_audio

    _fuzz_class_folder(case.draw(class_folder(_wav(), ".wav")), tmp_path / "audio", "audiofolder", "audio",
                       lambda path: read_audio(path, 16000))


def test_corrupt_image_through_the_cli(tmp_path: Path) -> None:
    """The end of the chain: a corrupt file in DATA is one Error line from 'graft tune' naming it."""
    pytest.importorskip("graftzoo_vision")
    root = tmp_path / "images"
    _folder(root, {"a/1.png": _png(), "a/2.png": _png(), "b/1.png": _png()[:40], "b/2.png": _png()})
    out = cli_clean(["tune", "mobilenetv2_100.tv_in1k", str(root), "--epochs", "1", "--out", str(tmp_path / "r")])
    assert str(root / "b" / "1.png") in out

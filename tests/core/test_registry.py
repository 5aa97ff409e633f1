"""registry.toml parsing: every problem names the file, the entry and the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from graftzoo.errors import RegistryError
from graftzoo.registry import Registry, entry_from_dict, load_registry, parse_registry_file, parse_source

from .conftest import REPO, run_graft

GOOD = """
[[model]]
id = "tiny_cnn.test"
modality = "vision"
backbone = "timm"
source = "file://weights.safetensors"
sha256 = "{sha}"
license = "MIT"
tasks = ["image-classification"]
"""
SHA = "a" * 64


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "registry.toml"
    path.write_text(text)
    return path


def test_shipped_registry_parses_and_pins_every_file() -> None:
    entries = parse_registry_file(REPO / "registry.toml")
    assert {e.modality for e in entries} == {"vision", "text", "audio"}
    for e in entries:
        src = e.parsed_source
        if src.scheme == "hf":
            assert src.revision, e.id
        elif src.is_directory:
            assert e.files, e.id
        else:
            assert e.sha256 and len(e.sha256) == 64, e.id


def test_good_entry(tmp_path: Path) -> None:
    (entry,) = parse_registry_file(write(tmp_path, GOOD.format(sha=SHA)))
    assert entry.id == "tiny_cnn.test"
    assert entry.arch_name == "tiny_cnn"
    assert entry.tasks == ("image-classification",)
    assert entry.origin == str(tmp_path / "registry.toml")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[[model]\nid = 1", "malformed TOML"),
        (GOOD.format(sha=SHA) + 'colour = "red"\n', "unknown field 'colour'"),
        (GOOD.format(sha=SHA) + 'licence = "MIT"\n', "did you mean 'license'"),
        (GOOD.format(sha=SHA).replace("file://weights.safetensors", "ftp://x/y"), "field 'source': unknown scheme"),
        (GOOD.format(sha=SHA).replace("file://weights.safetensors", "hf://org/repo/model.safetensors"),
         "field 'source': hf:// sources must pin a revision"),
        (GOOD.format(sha=SHA).replace(f'sha256 = "{SHA}"', ""), "field 'sha256': missing"),
        (GOOD.format(sha="xyz"), "field 'sha256'"),
        (GOOD.format(sha=SHA).replace('"vision"', '"smell"'), "field 'modality': unknown modality 'smell'"),
        (GOOD.format(sha=SHA) + GOOD.format(sha=SHA), "duplicate id"),
        (GOOD.format(sha=SHA).replace('id = "tiny_cnn.test"', 'id = "notag"'), "field 'id'"),
        (GOOD.format(sha=SHA).replace('tasks = ["image-classification"]', 'tasks = "x"'), "field 'tasks'"),
        ('[[model]]\nid = "a.b"\n', "field 'modality': missing"),
        ('[models]\nx = 1\n', "unknown top-level key 'models'"),
    ],
)
def test_bad_registry_is_one_clear_line(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(RegistryError, match=None) as info:
        load_registry([path], plugins=False)
    assert expected in str(info.value)
    assert str(path) in str(info.value)
    # The same through the CLI: one line, exit code 1, no traceback.
    result = run_graft("list", env={"GRAFTZOO_REGISTRY": str(path), "GRAFTZOO_HOME": str(tmp_path / "home")})
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ")
    assert expected in lines[0] and str(path) in lines[0]


def test_entry_names_itself_in_errors() -> None:
    with pytest.raises(RegistryError, match=r"plugin 'p': entry 'a.b', field 'license': missing"):
        entry_from_dict({"id": "a.b", "modality": "text", "backbone": "x", "source": "file://w"}, "plugin 'p'")


def test_directory_sources_pin_files() -> None:
    base = {"id": "a.b", "modality": "text", "backbone": "x", "license": "MIT"}
    with pytest.raises(RegistryError, match="field 'files': missing"):
        entry_from_dict({**base, "source": "pkg://dist==1.0/model/"}, "r.toml")
    entry = entry_from_dict({**base, "source": "pkg://dist==1.0/model/", "files": {"w.bin": SHA}}, "r.toml")
    assert entry.parsed_source.is_directory
    # A whole hub snapshot is pinned by revision (files verified against the hub's LFS sha256).
    assert entry_from_dict({**base, "source": "hf://org/repo@abc123"}, "r.toml").parsed_source.path == ""


@pytest.mark.parametrize(
    ("uri", "scheme", "repo", "revision", "path"),
    [
        ("hf://timm/mobilenetv2_100.ra_in1k@0123abc/model.safetensors", "hf", "timm/mobilenetv2_100.ra_in1k",
         "0123abc", "model.safetensors"),
        ("hf://org/repo@main", "hf", "org/repo", "main", ""),
        ("pkg://resemblyzer==0.1.4/resemblyzer/pretrained.pt", "pkg", "resemblyzer", "0.1.4",
         "resemblyzer/pretrained.pt"),
        ("pkg://some-dist/a/b.pth", "pkg", "some-dist", None, "a/b.pth"),
        ("file://weights/w.safetensors", "file", "", None, "weights/w.safetensors"),
    ],
)
def test_parse_source(uri: str, scheme: str, repo: str, revision: str | None, path: str) -> None:
    src = parse_source(uri)
    assert (src.scheme, src.repo, src.revision, src.path) == (scheme, repo, revision, path)


def test_unknown_id_suggests_close_ones() -> None:
    registry = Registry(parse_registry_file(REPO / "registry.toml"))
    with pytest.raises(RegistryError, match=r"did you mean mobilenetv2_100\.tv_in1k"):
        registry.get("mobilenetv2_100")


def test_filter() -> None:
    registry = Registry(parse_registry_file(REPO / "registry.toml"))
    assert all(e.modality == "vision" for e in registry.filter(modality="vision"))
    assert registry.filter(modality="vision")
    bsd = registry.filter(license="bsd-3-clause")
    assert "mobilenetv2_100.tv_in1k" in [e.id for e in bsd]
    assert all(e.license == "BSD-3-Clause" for e in bsd)
    assert registry.filter(task="no-such-task") == []


def test_large_registry_files_are_parsed_once_per_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from graftzoo import registry_cache
    from graftzoo.registry import parse_registry_document

    monkeypatch.setenv("GRAFTZOO_HOME", str(tmp_path / "home"))
    blocks = [GOOD.format(sha=f"{i:064x}").replace("tiny_cnn.test", f"m{i}.test") +
              '[model.input]\nsize = [3, 32, 32]\nmean = [0.5, 0.5, 0.5]\n' for i in range(60)]
    path = write(tmp_path, "[adapters]\ntimm = \"graftzoo-vision\"\n" + "".join(blocks))
    assert path.stat().st_size >= registry_cache.MIN_BYTES
    parsed: list[Path] = []

    def parse(p: Path) -> registry_cache.Document:
        parsed.append(p)
        return parse_registry_document(p)

    first = registry_cache.cached_document(path, parse)
    second = registry_cache.cached_document(path, parse)
    assert parsed == [path] and second == first and second[1] == {"timm": "graftzoo-vision"}
    assert second[0][5].input["size"] == [3, 32, 32] and second[0][5].parsed_source.scheme == "file"
    (cache,) = (tmp_path / "home" / "registry-cache").iterdir()
    # A changed file is parsed again (and a broken one is still an error, never served from the cache).
    path.write_text(path.read_text().replace("m59.test", "renamed.test"))
    assert registry_cache.cached_document(path, parse)[0][-1].id == "renamed.test" and len(parsed) == 2
    path.write_text(path.read_text().replace('license = "MIT"', "license = 3", 1))
    with pytest.raises(RegistryError, match="license"):
        registry_cache.cached_document(path, parse)
    # A damaged cache file is ignored and rewritten.
    path.write_text("".join(blocks))
    registry_cache.cached_document(path, parse)
    cache.write_bytes(b"\x00garbage")
    assert registry_cache.cached_document(path, parse)[0] == parse_registry_document(path)[0]
    assert len(parsed) == 5 and registry_cache.cached_document(path, parse) and len(parsed) == 5


def test_registries_are_layered_and_a_later_layer_overrides_only_on_purpose(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GRAFTZOO_NO_CATALOGUE", raising=False)
    monkeypatch.setenv("GRAFTZOO_HOME", str(tmp_path / "home"))
    catalogue = {e.id: e for e in parse_registry_file(REPO / "registry.toml")}
    taken = next(iter(catalogue))
    (tmp_path / "home").mkdir(exist_ok=True)
    user = tmp_path / "home" / "registry.toml"
    user.write_text(GOOD.format(sha=SHA).replace("tiny_cnn.test", "mine.user"))
    extra = tmp_path / "extra.toml"
    extra.write_text(GOOD.format(sha="b" * 64).replace("tiny_cnn.test", "mine.extra"))
    monkeypatch.setenv("GRAFTZOO_REGISTRY", str(extra))
    registry = load_registry(plugins=False)
    ids = [e.id for e in registry]
    assert set(catalogue) | {"mine.user", "mine.extra"} == set(ids)  # every layer adds, none replaces
    assert ids.index("mine.user") < ids.index("mine.extra") and registry.get("mine.user").origin == str(user)

    # The same id in a later layer: an error naming both files, unless that entry says it overrides.
    clash = tmp_path / "clash.toml"
    clash.write_text(GOOD.format(sha="c" * 64).replace("tiny_cnn.test", taken))
    monkeypatch.setenv("GRAFTZOO_REGISTRY", str(clash))
    with pytest.raises(RegistryError, match=rf"{clash}: entry '{taken}', field 'id': duplicate id, already "
                                            rf"defined in .*registry\.toml.*overrides = true"):
        load_registry(plugins=False)
    clash.write_text(clash.read_text().replace('license = "MIT"', 'license = "MIT"\noverrides = true'))
    replaced = load_registry(plugins=False).get(taken)
    assert replaced.origin == str(clash) and replaced.sha256 == "c" * 64
    user.write_text(GOOD.format(sha=SHA).replace("tiny_cnn.test", taken))  # the user layer clashes first
    with pytest.raises(RegistryError, match=rf"{user}: entry '{taken}'.*already defined in .*registry\.toml"):
        load_registry(plugins=False)
    user.unlink()
    monkeypatch.setenv("GRAFTZOO_NO_CATALOGUE", "1")
    assert [e.id for e in load_registry(plugins=False)] == [taken]  # only the --registry layer is left


def test_graft_registry_flag_adds_a_last_layer_listed_with_its_origin(tmp_path: Path) -> None:
    extra = tmp_path / "extra.toml"
    extra.write_text(GOOD.format(sha=SHA).replace("tiny_cnn.test", "mine.extra"))
    env = {"GRAFTZOO_HOME": str(tmp_path / "home"), "GRAFTZOO_REGISTRY": "", "GRAFTZOO_NO_CATALOGUE": ""}
    result = run_graft("--registry", str(extra), "list", "--json", env=env)
    assert result.returncode == 0, result.stderr
    listed = {e["id"]: e for e in json.loads(result.stdout)}
    assert listed["mine.extra"]["origin"] == str(extra) and listed["mine.extra"]["weights"] == "missing"
    assert any(e["origin"].endswith("registry.toml") and e["id"] != "mine.extra" for e in listed.values())
    table = run_graft("--registry", str(extra), "list", env=env).stdout
    assert "catalogue" in table and str(extra) in table

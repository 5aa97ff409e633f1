"""``graft plugin new``: generate a complete, installable, tested plugin distribution.

The templates under ``templates/`` are plain files with ``{{name}}``
placeholders: ``common/`` for every plugin, and one directory per modality
with its backbone adapter and data format. ``__pkg__`` in a path becomes the
import package and ``.tmpl`` is dropped. The scaffold then runs the generated
``write_weights`` to ship real (seeded random) safetensors weights and pins
their sha256 in the generated registry fragment.
"""

from __future__ import annotations

import hashlib
import importlib.util
import keyword
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from graftzoo.errors import GraftError

TEMPLATES = Path(__file__).resolve().parent / "templates"
MODALITIES = ("vision", "text", "audio")
NAME_RE = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")
_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


class ScaffoldError(GraftError):
    """``graft plugin new`` cannot create the plugin (bad name, existing directory, ...)."""


@dataclass(frozen=True)
class PluginNames:
    """Every name a generated plugin uses, derived from the distribution name."""

    dist: str  # graftzoo-foo: the distribution on PyPI
    pkg: str  # graftzoo_foo: the import package
    short: str  # foo: the entry-point name, the backbone adapter's name

    @property
    def model_id(self) -> str:
        return f"{self.short.replace('-', '_')}_tiny.seed0"


def plugin_names(name: str) -> PluginNames:
    """Validate NAME and derive the plugin's names; ``ScaffoldError`` says what to change."""
    if not NAME_RE.match(name):
        raise ScaffoldError(f"plugin name {name!r} is not valid: use lowercase letters, digits and single hyphens, "
                            "starting with a letter, e.g. graftzoo-mynet")
    short = name.removeprefix("graftzoo-")
    if name == "graftzoo" or short in ("builtins", "testing", "scaffold"):
        raise ScaffoldError(f"plugin name {name!r} is reserved by Graftzoo; choose another, e.g. graftzoo-mynet")
    pkg = name.replace("-", "_")
    if keyword.iskeyword(pkg) or keyword.iskeyword(short):
        raise ScaffoldError(f"plugin name {name!r} is a Python keyword; choose another, e.g. graftzoo-{name}net")
    return PluginNames(dist=name, pkg=pkg, short=short)


def _check_free(names: PluginNames) -> None:
    """The import package and the registered names must not clash with what is installed."""
    if importlib.util.find_spec(names.pkg) is not None:
        raise ScaffoldError(f"a module named {names.pkg!r} is already importable in this environment; "
                            "choose another plugin name")
    from graftzoo.plugins import get_plugins

    owner = get_plugins().collect("backbones").get(names.short)
    if owner is not None:
        raise ScaffoldError(f"backbone adapter name {names.short!r} is taken by plugin {owner.plugin!r}; "
                            "choose another plugin name")


def _values(names: PluginNames, modality: str) -> dict[str, str]:
    from graftzoo import __version__

    suffix = ".tsv" if modality == "text" else ".npz"
    inputs = {
        "vision": 'size = 32\nmean = [0.5, 0.5, 0.5]\nstd = [0.25, 0.25, 0.25]',
        "text": 'tokenizer = "utf8-bytes"\nmax_length = 64',
        "audio": "sample_rate = 16000\nmax_seconds = 1.0",
    }
    what = {"vision": "a small CNN", "text": "a small byte-level transformer encoder",
            "audio": "a small 1-D CNN on raw waveforms"}
    fmt = {"vision": "images and labels in one .npz file", "text": "label<TAB>text lines in a .tsv file",
           "audio": "waveforms, labels and sample_rate in one .npz file"}
    return {
        "dist": names.dist, "pkg": names.pkg, "short": names.short, "modality": modality,
        "model_id": names.model_id, "head": f"{names.short}-cosine",
        "format": f"{names.short}-{suffix[1:]}", "sample_suffix": suffix,
        "graftzoo_version": ".".join(__version__.split(".")[:2]) + ".0",
        "task": {"vision": "image-classification", "text": "text-classification",
                 "audio": "audio-classification"}[modality],
        "width": "32" if modality == "text" else "16",
        "input_table": inputs[modality], "backbone_description": f"{names.short}: {what[modality]}",
        "format_description": fmt[modality],
    }


def render(text: str, values: dict[str, str], where: str) -> str:
    """Replace ``{{name}}`` placeholders; an unknown one is a bug in the templates."""
    def sub(match: re.Match[str]) -> str:
        if match[1] not in values:
            raise ScaffoldError(f"template {where}: unknown placeholder {match[0]}")
        return values[match[1]]

    return _PLACEHOLDER.sub(sub, text)


def _write_templates(root: Path, modality: str, values: dict[str, str]) -> None:
    for base in (TEMPLATES / "common", TEMPLATES / modality):
        for template in sorted(base.rglob("*.tmpl")):
            rel = template.relative_to(base).as_posix().replace("__pkg__", values["pkg"]).removesuffix(".tmpl")
            if rel.endswith("registry.toml"):
                continue  # written last, once the weights' sha256 is known
            target = root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(render(template.read_text(encoding="utf-8"), values, str(template)), encoding="utf-8")


def _write_weights(root: Path, names: PluginNames) -> str:
    """Run the generated ``write_weights`` and return the file's sha256."""
    try:
        import torch  # noqa: F401 - only to report a missing engine clearly
    except ImportError:
        raise ScaffoldError("graft plugin new needs the training engine: pip install 'graftzoo[train]'") from None
    module_name = f"_graftzoo_scaffold_{names.pkg}"
    spec = importlib.util.spec_from_file_location(module_name, root / names.pkg / "backbone.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and typing look modules up by name
    try:
        spec.loader.exec_module(module)
        weights = root / names.pkg / "weights" / f"{names.model_id}.safetensors"
        weights.parent.mkdir(parents=True, exist_ok=True)
        module.write_weights(weights)
    finally:
        sys.modules.pop(module_name, None)
    return hashlib.sha256(weights.read_bytes()).hexdigest()


def new_plugin(name: str, modality: str, directory: Path | str = ".") -> Path:
    """Create plugin ``name`` (a distribution name such as ``graftzoo-mynet``) in ``directory``; return its path.

    The plugin is written to a temporary directory first and moved into place
    at the end, so a failure leaves nothing half-made behind.
    """
    if modality not in MODALITIES:
        raise ScaffoldError(f"unknown modality {modality!r}; use one of {', '.join(MODALITIES)}")
    names = plugin_names(name)
    parent = Path(directory).expanduser().resolve()
    target = parent / names.dist
    if target.exists():
        raise ScaffoldError(f"{target} already exists; choose another name or --dir, or remove it first")
    if not parent.is_dir():
        raise ScaffoldError(f"{parent} is not a directory; create it first or pass another --dir")
    _check_free(names)
    values = _values(names, modality)
    with tempfile.TemporaryDirectory(dir=parent, prefix=f".{names.dist}.") as tmp:
        root = Path(tmp) / names.dist
        _write_templates(root, modality, values)
        values["sha256"] = _write_weights(root, names)
        template = TEMPLATES / "common" / "__pkg__" / "registry.toml.tmpl"
        (root / names.pkg / "registry.toml").write_text(render(template.read_text(encoding="utf-8"), values,
                                                               str(template)), encoding="utf-8")
        shutil.rmtree(root / names.pkg / "__pycache__", ignore_errors=True)
        root.rename(target)
    return target

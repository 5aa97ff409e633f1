"""``graft plugin new``: generate a complete, installable, tested plugin distribution.

The templates under ``templates/`` are plain files with ``{{name}}``
placeholders and ``{{#part}}...{{/part}}`` (``{{^part}}`` for "not") sections
kept only for the parts asked for: ``common/`` for every plugin, and one
directory per modality with its backbone adapter and data format. ``__pkg__``
in a path becomes the import package and ``.tmpl`` is dropped. With the
``models`` part the scaffold then runs the generated ``write_weights`` to ship
real (seeded random) safetensors weights and pins their sha256 in the
generated registry fragment.
"""

from __future__ import annotations

import hashlib
import importlib.util
import keyword
import re
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from graftzoo.errors import GraftError

TEMPLATES = Path(__file__).resolve().parent / "templates"
MODALITIES = ("vision", "text", "audio")  # the modalities there are templates for
PARTS = ("backbone", "head", "policy", "dataset", "models")
#: which template files each part needs (relative to the package; data.py also holds the backbone's samples)
_FILES = {"backbone": ("backbone.py", "data.py"), "head": ("heads.py",), "policy": ("policies.py",),
          "dataset": ("data.py",), "models": ()}
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

    @property
    def head(self) -> str:
        return self.short if "cosine" in self.short else f"{self.short}-cosine"

    @property
    def policy(self) -> str:
        return self.short if "top" in self.short else f"{self.short}-top-fraction"


def parse_parts(spec: str | Sequence[str]) -> tuple[str, ...]:
    """``backbone,head,policy,dataset,models`` (any subset, in any order) -> the parts, validated."""
    parts = [p.strip() for p in (spec.split(",") if isinstance(spec, str) else spec) if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown or not parts:
        raise ScaffoldError(f"unknown part {unknown[0]!r}; choose from {', '.join(PARTS)}" if unknown else
                            f"no parts; choose from {', '.join(PARTS)}")
    if "models" in parts and "backbone" not in parts:
        raise ScaffoldError("the models part ships weights for the plugin's own backbone: add backbone to --parts")
    return tuple(p for p in PARTS if p in parts)


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


def _check_free(names: PluginNames, parts: tuple[str, ...]) -> None:
    """The import package and the registered names must not clash with what is installed."""
    if importlib.util.find_spec(names.pkg) is not None:
        raise ScaffoldError(f"a module named {names.pkg!r} is already importable in this environment; "
                            "choose another plugin name")
    from graftzoo.plugins import get_plugins

    for part, kind, label, registered in (("backbone", "backbones", "backbone adapter", names.short),
                                          ("head", "heads", "head", names.head),
                                          ("policy", "freeze_policies", "freeze policy", names.policy)):
        owner = get_plugins().collect(kind).get(registered) if part in parts else None
        if owner is not None:
            raise ScaffoldError(f"{label} name {registered!r} is taken by plugin {owner.plugin!r}; "
                                "choose another plugin name")


def _values(names: PluginNames, modality: str, parts: tuple[str, ...]) -> dict[str, str]:
    from graftzoo import __version__

    suffix = ".tsv" if modality == "text" else ".npz"
    values = {
        "dist": names.dist, "pkg": names.pkg, "short": names.short, "modality": modality,
        "model_id": names.model_id, "head": names.head, "policy": names.policy,
        "format": f"{names.short}-{suffix[1:]}", "sample_suffix": suffix,
        "graftzoo_version": ".".join(__version__.split(".")[:2]) + ".0",
        "task": {"vision": "image-classification", "text": "text-classification",
                 "audio": "audio-classification"}[modality],
        "width": "32" if modality == "text" else "16",
        "input_table": _INPUTS[modality], "backbone_description": f"{names.short}: {_WHAT[modality]}",
        "format_description": _FORMAT[modality], "parts": ",".join(parts),
        "hook_types": "\n".join(f"    {t}," for p, t in _HOOK_TYPES if p in parts),
        "test_modules": ", ".join(m for m in ("data", "hooks") if m == "hooks" or {"backbone", "dataset"} & set(parts)),
    }
    described = {"backbone": f"the {names.short} {modality} backbone", "models": f"the {names.model_id} model",
                 "head": f"the {names.head} head", "policy": f"the {names.policy} freeze policy",
                 "dataset": f"the {values['format']} data format"}
    values["summary"] = ", ".join(described[p] for p in parts)
    values.update({f"_part_{part}": "1" if part in parts else "" for part in PARTS})
    return values


_INPUTS = {"vision": 'size = 32\nmean = [0.5, 0.5, 0.5]\nstd = [0.25, 0.25, 0.25]',
           "text": 'tokenizer = "utf8-bytes"\nmax_length = 64', "audio": "sample_rate = 16000\nmax_seconds = 1.0"}
_WHAT = {"vision": "a small CNN", "text": "a small byte-level transformer encoder",
         "audio": "a small 1-D CNN on raw waveforms"}
_FORMAT = {"vision": "images and labels in one .npz file", "text": "label<TAB>text lines in a .tsv file",
           "audio": "waveforms, labels and sample_rate in one .npz file"}
_HOOK_TYPES = (("backbone", "RegisterBackbone"), ("dataset", "RegisterDataFormat"),
               ("policy", "RegisterFreezePolicy"), ("head", "RegisterHead"), ("models", "RegisterModel"))
_LINE_SECTION = re.compile(r"^\{\{([#^/])(\w+)\}\}$")
_INLINE_SECTION = re.compile(r"\{\{([#^])(\w+)\}\}(.*?)\{\{/\2\}\}", re.DOTALL)


def _sections(text: str, values: dict[str, str]) -> str:
    """Keep ``{{#part}}`` sections of the chosen parts (``{{^part}}``: of the others); drop the rest."""
    out: list[str] = []
    stack: list[bool] = []
    for line in text.split("\n"):
        m = _LINE_SECTION.match(line.strip())
        if m:
            if m[1] == "/":
                stack.pop()
            else:
                stack.append(bool(values.get(f"_part_{m[2]}")) == (m[1] == "#"))
            continue
        if all(stack):
            out.append(line)
    return _INLINE_SECTION.sub(lambda m: m[3] if bool(values.get(f"_part_{m[2]}")) == (m[1] == "#") else "",
                               "\n".join(out))


def render(text: str, values: dict[str, str], where: str) -> str:
    """Replace ``{{name}}`` placeholders; an unknown one is a bug in the templates."""
    def sub(match: re.Match[str]) -> str:
        if match[1] not in values:
            raise ScaffoldError(f"template {where}: unknown placeholder {match[0]}")
        return values[match[1]]

    return _PLACEHOLDER.sub(sub, _sections(text, values))


def _write_templates(root: Path, modality: str, values: dict[str, str], parts: tuple[str, ...]) -> None:
    wanted = {name for part in parts for name in _FILES[part]}
    optional = {name for names in _FILES.values() for name in names}
    for base in (TEMPLATES / "common", TEMPLATES / modality):
        for template in sorted(base.rglob("*.tmpl")):
            rel = template.relative_to(base).as_posix().replace("__pkg__", values["pkg"]).removesuffix(".tmpl")
            name = rel.rsplit("/", 1)[-1]
            if rel.endswith("registry.toml") or (name in optional and name not in wanted):
                continue  # the registry is written last, once the weights' sha256 is known
            target = root / (".gitignore" if rel == "gitignore" else rel)
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


def new_plugin(name: str, modality: str, directory: Path | str = ".", parts: str | Sequence[str] = PARTS) -> Path:
    """Create plugin ``name`` (a distribution name such as ``graftzoo-mynet``) in ``directory``; return its path.

    ``parts`` are what it contains (default: all of ``PARTS``). The plugin is
    written to a temporary directory first and moved into place at the end,
    so a failure leaves nothing half-made behind.
    """
    if modality not in MODALITIES:
        raise ScaffoldError(f"unknown modality {modality!r}; use one of {', '.join(MODALITIES)}")
    chosen = parse_parts(parts)
    names = plugin_names(name)
    parent = Path(directory).expanduser().resolve()
    target = parent / names.dist
    if target.exists():
        raise ScaffoldError(f"{target} already exists; choose another name or --dir, or remove it first")
    if not parent.is_dir():
        raise ScaffoldError(f"{parent} is not a directory; create it first or pass another --dir")
    _check_free(names, chosen)
    values = _values(names, modality, chosen)
    with tempfile.TemporaryDirectory(dir=parent, prefix=f".{names.dist}.") as tmp:
        root = Path(tmp) / names.dist
        _write_templates(root, modality, values, chosen)
        if "models" in chosen:
            values["sha256"] = _write_weights(root, names)
            template = TEMPLATES / "common" / "__pkg__" / "registry.toml.tmpl"
            (root / names.pkg / "registry.toml").write_text(render(template.read_text(encoding="utf-8"), values,
                                                                   str(template)), encoding="utf-8")
        shutil.rmtree(root / names.pkg / "__pycache__", ignore_errors=True)
        root.rename(target)
    return target

"""The public plugin API is pinned: its names and signatures (graftzoo.api and the hook Protocols), and the
plugins import nothing else from Graftzoo.

Changing this snapshot is changing the contract with third-party plugins: bump the API version, say so in
docs/plugins.md, and keep old plugins working or make them fail with one message saying what to change.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from typing import Any

import graftzoo.api as api
import graftzoo.hookspecs as hookspecs

ROOT = Path(__file__).resolve().parents[2]
#: what plugin code may import from Graftzoo (tests may also use graftzoo.testing)
PUBLIC = {"graftzoo.api", "graftzoo.hookspecs"}

EXPECTED: dict[str, Any] = {'API_VERSION': "'0.1'",
 'Backbone': {'batch_mixer': "(self, settings: 'Mapping[str, float]', num_classes: 'int') -> 'BatchMixer | None'",
              'channels_last': 'attribute',
              'collate': "(self, samples: 'list[Any]', train: 'bool') -> 'Any'",
              'default_views': 'attribute',
              'extra_files': "(self) -> 'dict[str, Path]'",
              'feature_dim': 'attribute',
              'fine_tuning': "(self) -> 'dict[str, Any]'",
              'forward': "(self, batch: 'Any') -> 'torch.Tensor'",
              'forward_tokens': "(self, batch: 'Any') -> 'torch.Tensor'",
              'groups': "(self) -> 'list[tuple[str, nn.Module]]'",
              'lora_targets': "(self) -> 'list[str]'",
              'modality': 'attribute',
              'preprocessing': "(self) -> 'dict[str, Any]'",
              'supports_tokens': 'attribute',
              'token_labels': "(self, batch: 'Any', word_labels: 'list[list[int]]') -> 'torch.Tensor'"},
 'ChecksumError': 'exception',
 'DataError': 'exception',
 'Exported': {'__init__': "(self, library: 'str', pipeline_tag: 'str', snippet: 'str') -> None"},
 'FreezePolicy': {'__init__': "(self, **options: 'Any') -> 'None'",
                  'apply': "(self, model: 'GraftModel') -> 'None'",
                  'backbone_lr_scale': 'attribute',
                  'caches_features': 'attribute',
                  'describe': "(self) -> 'str'",
                  'load_state_dict': "(self, state: 'dict[str, Any]') -> 'None'",
                  'name': 'attribute',
                  'on_epoch_start': "(self, model: 'GraftModel', epoch: 'int') -> 'bool'",
                  'options_used': 'attribute',
                  'state_dict': "(self) -> 'dict[str, Any]'",
                  'train_groups': "(self, model: 'GraftModel') -> 'set[str]'",
                  'validate': "(self, model: 'GraftModel') -> 'None'"},
 'GraftError': 'exception',
 'GraftModel': {'__init__': "(self, backbone: 'Backbone', head: 'nn.Module', task: 'str' = 'classification') -> "
                            "'None'",
                'features': "(self, batch: 'Any') -> 'torch.Tensor'",
                'forward': "(self, batch: 'Any') -> 'torch.Tensor'",
                'group_modules': "(self) -> 'list[tuple[str, nn.Module]]'"},
 'HubRepo': {'__init__': "(self, repo: 'str', revision: 'str', commit: 'str', files: 'dict[str, HubFile]', card: "
                         "'dict[str, Any]', config: 'dict[str, Any]', reader: 'Callable[[str], bytes]') -> None",
             'library': 'property',
             'license': 'property',
             'pipeline_tag': 'property',
             'present': "(self, names: 'tuple[str, ...]') -> 'list[str]'",
             'read_json': "(self, name: 'str') -> 'dict[str, Any]'",
             'size': 'property',
             'tags': 'property',
             'weight_files': "(self) -> 'list[str]'"},
 'LabelledData': {'__init__': "(self, samples: 'list[Any]', labels: 'list[Any]', name: 'str', modality: 'str | "
                              "None' = None, task: 'str' = 'classification', fingerprint_parts: 'list[str]' = "
                              "<factory>, meta: 'dict[str, Any]' = <factory>) -> None",
                  'classes': 'property',
                  'fingerprint': "(self) -> 'str'",
                  'modality': 'attribute',
                  'subset': "(self, indices: 'Sequence[int]', name: 'str | None' = None) -> 'LabelledData'",
                  'task': 'attribute'},
 'LinearHead': {'__init__': "(self, weight: 'torch.Tensor', bias: 'torch.Tensor') -> None"},
 'ModelEntry': {'__init__': "(self, id: 'str', modality: 'str', backbone: 'str', source: 'str', license: 'str', "
                            "sha256: 'str | None' = None, files: 'Mapping[str, str]' = <factory>, tasks: "
                            "'tuple[str, ...]' = (), pretrained_on: 'str' = '', input: 'Mapping[str, Any]' = "
                            "<factory>, config: 'Mapping[str, Any]' = <factory>, arch: 'str' = '', description: "
                            "'str' = '', num_classes: 'int | None' = None, overrides: 'bool' = False, origin: "
                            "'str' = '') -> None",
                'arch': 'attribute',
                'arch_name': 'property',
                'description': 'attribute',
                'num_classes': 'attribute',
                'origin': 'attribute',
                'overrides': 'attribute',
                'parsed_source': 'property',
                'pretrained_on': 'attribute',
                'sha256': 'attribute',
                'tasks': 'attribute',
                'to_dict': "(self) -> 'dict[str, Any]'"},
 'OptionError': 'exception',
 'PluginError': 'exception',
 'RegistryError': 'exception',
 'SourceError': 'exception',
 'StorageError': 'exception',
 'TrainingError': 'exception',
 'atomic_dir': "(dest: 'Path', what: 'str | None' = None, replace: 'bool' = False) -> 'Iterator[Path]'",
 'cache_dir': "(*parts: 'str') -> 'Path'",
 'class_folder_files': "(root: 'Path', suffixes: 'Collection[str]') -> 'list[tuple[Path, str]]'",
 'fetch': "(entry: 'ModelEntry', revision: 'str | None' = None, force: 'bool' = False) -> 'Path'",
 'hookimpl': 'HookimplMarker',
 'hookspecs.RegisterBackbone': "(self, name: 'str', factory: 'Target', *, modality: 'str', description: 'str' = "
                               "'', hub_libraries: 'Sequence[str]' = (), hub_tasks: 'Sequence[str]' = (), "
                               "hub_entry: 'Target | None' = None) -> 'None'",
 'hookspecs.RegisterDataFormat': "(self, name: 'str', loader: 'Target', *, modality: 'str | None', detect: "
                                 "'Target | None' = None, task: 'str' = 'classification', description: 'str' = "
                                 "'') -> 'None'",
 'hookspecs.RegisterDataset': "(self, name: 'str', loader: 'Target', *, modality: 'str | None', detect: 'Target | "
                              "None' = None, named: 'bool' = False, task: 'str' = 'classification', description: "
                              "'str' = '') -> 'None'",
 'hookspecs.RegisterFreezePolicy': "(self, name: 'str', factory: 'Target', *, description: 'str' = '') -> 'None'",
 'hookspecs.RegisterHead': "(self, name: 'str', factory: 'Target', *, description: 'str' = '') -> 'None'",
 'hookspecs.RegisterModality': "(self, name: 'str', *, task: 'str', pipeline_tag: 'str' = '', inputs: 'str' = "
                               "'files', description: 'str' = '') -> 'None'",
 'hookspecs.RegisterModel': "(self, entry: 'Any') -> 'None'",
 'hookspecs.RegisterNamedDataset': "(self, name: 'str', loader: 'Target', *, modality: 'str | None', task: 'str' "
                                   "= 'classification', description: 'str' = '') -> 'None'",
 'hookspecs.register_backbones': "(register: 'RegisterBackbone') -> 'None'",
 'hookspecs.register_commands': "(cli: 'Any') -> 'None'",
 'hookspecs.register_data_formats': "(register: 'RegisterDataFormat') -> 'None'",
 'hookspecs.register_datasets': "(register: 'RegisterDataset') -> 'None'",
 'hookspecs.register_freeze_policies': "(register: 'RegisterFreezePolicy') -> 'None'",
 'hookspecs.register_heads': "(register: 'RegisterHead') -> 'None'",
 'hookspecs.register_modalities': "(register: 'RegisterModality') -> 'None'",
 'hookspecs.register_models': "(register: 'RegisterModel') -> 'None'",
 'hookspecs.register_named_datasets': "(register: 'RegisterNamedDataset') -> 'None'",
 'is_class_folder': "(path: 'Path', suffixes: 'Collection[str]') -> 'bool'",
 'label_maps': "(labels: 'list[str]') -> 'dict[str, Any]'",
 'load_state_dict': "(path: 'Path') -> 'dict[str, torch.Tensor]'",
 'parse_registry_file': "(path: 'Path') -> 'list[ModelEntry]'",
 'parse_source': "(uri: 'str') -> 'Source'",
 'set_trainable': "(module: 'nn.Module', flag: 'bool') -> 'None'",
 'split_words': "(text: 'str') -> 'list[Word]'"}


def describe() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in api.__all__:
        obj = getattr(api, name)
        if inspect.isclass(obj) and issubclass(obj, BaseException):
            out[name] = "exception"
        elif inspect.isclass(obj):
            members: dict[str, str] = {}
            for member, value in sorted(vars(obj).items()):
                if member.startswith("_") and member != "__init__":
                    continue
                if inspect.isfunction(value):
                    members[member] = str(inspect.signature(value))
                elif isinstance(value, property):
                    members[member] = "property"
                elif not callable(value):
                    members[member] = "attribute"
            out[name] = members
        elif inspect.isfunction(obj):
            out[name] = str(inspect.signature(obj))
        else:
            out[name] = repr(obj) if isinstance(obj, str) else type(obj).__name__
    for name, obj in sorted(vars(hookspecs).items()):
        if name.startswith("Register") and inspect.isclass(obj):
            out[f"hookspecs.{name}"] = str(inspect.signature(obj.__call__))
        if name.startswith("register_") and inspect.isfunction(obj):
            out[f"hookspecs.{name}"] = str(inspect.signature(obj))
    return out


def test_the_public_api_is_pinned() -> None:
    actual = describe()
    changed = sorted(k for k in set(actual) | set(EXPECTED) if actual.get(k) != EXPECTED.get(k))
    assert not changed, "the public plugin API changed: " + ", ".join(changed)


def plugin_sources() -> list[Path]:
    packages = [*ROOT.glob("plugins/*/graftzoo_*"), ROOT / "tests" / "devkit" / "signal" / "graftzoo_signal"]
    return sorted(p for package in packages for p in package.rglob("*.py"))


def graftzoo_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
            [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
        for name in names:
            if name == "graftzoo" and isinstance(node, ast.ImportFrom):
                found += [f"graftzoo.{a.name}" for a in node.names]
            elif name == "graftzoo" or name.startswith("graftzoo."):
                found.append(name)
    return found


def test_plugins_import_only_the_public_api() -> None:
    sources = plugin_sources()
    assert len(sources) > 15
    private = [f"{p.relative_to(ROOT)}: {name}" for p in sources for name in graftzoo_imports(p) if name not in PUBLIC]
    assert not private, "plugins must import only graftzoo.api / graftzoo.hookspecs:\n" + "\n".join(private)


def test_the_import_scan_can_fail(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from graftzoo.train.build import fetch_weights\nfrom graftzoo import home\nimport graftzoo.data\n")
    assert graftzoo_imports(bad) == ["graftzoo.train.build", "graftzoo.home", "graftzoo.data"]


def test_the_api_module_is_cheap() -> None:
    import subprocess
    import sys

    code = "import sys, graftzoo.api; print(sorted(m for m in ('torch', 'numpy', 'timm') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"


def test_core_never_names_a_first_party_plugin() -> None:
    names = ("graftzoo_vision", "graftzoo-vision", "graftzoo_nlp", "graftzoo-nlp", "graftzoo_speech",
             "graftzoo-speech", "hf-encoder", "resemblyzer", "hf-audio")
    found = [f"{p.relative_to(ROOT)}: {n}" for p in sorted((ROOT / "core").rglob("*"))
             if p.is_file() and p.suffix in (".py", ".tmpl") for n in names if n in p.read_text(encoding="utf-8")]
    assert not found, "core names a plugin (move it into the plugin's registration):\n" + "\n".join(found)


def test_plugins_pin_the_api_they_are_tested_against() -> None:
    import tomllib

    import graftzoo

    minor = ".".join(graftzoo.__version__.split(".")[:2])
    for pyproject in sorted(ROOT.glob("plugins/*/pyproject.toml")):
        deps = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"]
        pins = [d for d in deps if d.split("[")[0].split("~")[0].split("=")[0].strip() == "graftzoo"]
        assert pins == [f"graftzoo~={minor}.0"], (pyproject, pins)

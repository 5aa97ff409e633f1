"""Run directories: writing graft.json and weights, and ``load_run`` to use a finished run.

A run directory holds ``model.safetensors`` (backbone + head, LoRA adapters
included), ``graft.json`` (entry, options, preprocessing, labels, metrics,
versions), a README.md model card, ``metrics.jsonl`` and PNG plots. Everything
needed to rebuild the model offline is in it: the backbone is rebuilt from the
stored entry at random initialisation and the run's weights are loaded on top.
"""

from __future__ import annotations

import json
import platform
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from graftzoo.errors import DataError, GraftError, TrainingError, naming
from graftzoo.registry import ModelEntry, entry_from_dict, pipeline_tag
from graftzoo.storage import atomic
from graftzoo.train.config import TrainConfig
from graftzoo.train.inference import classify, evaluate_samples, tag
from graftzoo.train.model import GraftModel

if TYPE_CHECKING:
    from graftzoo.train.plan import RunPlan
    from graftzoo.train.policies import FreezePolicy

RUN_FORMAT = "graftzoo-run/1"
WEIGHTS = "model.safetensors"
INFO = "graft.json"


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to a temp file beside ``path`` and rename it into place."""
    atomic.write_json(path, data, f"the run file {path.name}", default=_json_default)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def read_info(run_dir: Path) -> dict[str, Any]:
    """The run's graft.json, or a ``TrainingError`` saying it is not a run directory."""
    path = Path(run_dir) / INFO
    if not path.is_file():
        raise TrainingError(f"{run_dir}: not a Graftzoo run directory (no {INFO}); pass a directory 'graft tune' "
                            "wrote")
    try:
        info: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise TrainingError(f"{path}: unreadable ({exc}); the run directory is damaged") from None
    if not isinstance(info, dict) or info.get("format") != RUN_FORMAT:
        found = info.get("format") if isinstance(info, dict) else type(info).__name__
        raise TrainingError(f"{path}: unknown run format {found!r} (expected {RUN_FORMAT})")
    _check_info(path, info)
    return info


# field -> type every reader of graft.json relies on
_INFO_FIELDS: dict[str, type | tuple[type, ...]] = {
    "status": str, "model": str, "entry": dict, "config": dict, "labels": list, "task": str, "data": dict,
    "epochs": list, "final": dict, "preprocessing": dict, "policy": dict}


def _check_info(path: Path, info: dict[str, Any]) -> None:
    """Refuse a graft.json whose fields are missing or of the wrong type, naming the field."""
    for name, kind in _INFO_FIELDS.items():
        if not isinstance(info.get(name), kind):
            raise TrainingError(f"{path}: field {name!r} is missing or not a {getattr(kind, '__name__', kind)}; "
                                "the run directory is damaged (or was written by another program)")
    if not info["labels"] or not all(isinstance(label, str) for label in info["labels"]):
        raise TrainingError(f"{path}: 'labels' must be a list of class names; the run directory is damaged")
    extra = info.get("extra_files", {})
    if not isinstance(info["data"].get("fingerprint"), str) or not isinstance(extra, dict) or not all(
            isinstance(v, str) for v in extra.values()):
        raise TrainingError(f"{path}: 'data.fingerprint' or 'extra_files' is damaged")
    try:
        TrainConfig.from_dict(info["config"])
        stored_entry(info)
    except (GraftError, TypeError, ValueError, KeyError, AttributeError) as exc:
        raise TrainingError(f"{path}: the stored configuration or entry is invalid ({exc})") from None


def save_weights(model: torch.nn.Module, path: Path, metadata: dict[str, str] | None = None) -> None:
    """``model``'s state as safetensors, written atomically (shared tensors handled by safetensors)."""
    from safetensors.torch import save_model

    atomic.write_with(path, lambda tmp: save_model(model, str(tmp), metadata=metadata), f"the weights {path.name}")


def library_versions() -> dict[str, str]:
    """Versions of the libraries a run depends on (for graft.json and the model card)."""
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for dist in ("graftzoo", "torch", "accelerate", "peft", "safetensors", "timm", "transformers"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            continue
    return out


def stored_entry(info: dict[str, Any]) -> ModelEntry:
    """The registry entry a run was trained from, as stored in its graft.json."""
    raw = {k: v for k, v in info["entry"].items() if k != "origin" and v not in (None, "", [], {})}
    return entry_from_dict(raw, origin=f"graft.json of run {info.get('model')}")


def run_info(plan: RunPlan, model: GraftModel, policy: FreezePolicy, history: list[dict[str, Any]]) -> dict[str, Any]:
    """graft.json's content at the start of a run (history and final metrics are added as it goes)."""
    config, entry, data = plan.config, plan.entry, plan.data
    return {
        "format": RUN_FORMAT,
        "status": "running",
        "model": entry.id,
        "entry": entry.to_dict(),
        "task": data.task,
        "pipeline_tag": pipeline_tag(entry.modality, data.task),
        "config": config.to_dict(),
        "policy": {"name": config.policy, "description": policy.describe(), "state": policy.state_dict()},
        "preprocessing": model.backbone.preprocessing(),
        "groups": [name for name, _ in model.group_modules()],
        "labels": plan.classes,
        "data": {"spec": config.data, "name": data.name, "fingerprint": data.fingerprint(),
                 "n": len(data), "n_train": len(plan.split.train), "n_val": len(plan.split.val)},
        "epochs": history,
        "final": {},
        "versions": library_versions(),
    }


def copy_extra_files(files: dict[str, Path], out: Path) -> dict[str, str]:
    """Copy a backbone's ``extra_files()`` into ``out/extra``; returns name -> path relative to ``out``."""
    extra: dict[str, str] = {}
    for name, src in files.items():
        dest = out / "extra" / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if Path(src).is_dir():
            shutil.copytree(src, dest, dirs_exist_ok=True)
        else:
            shutil.copy2(src, dest)
        extra[name] = str(dest.relative_to(out))
    return extra


@dataclass
class Run:
    """A finished (or interrupted) run, loaded for predict/evaluate/export/diagnostics."""

    path: Path
    info: dict[str, Any]
    config: TrainConfig
    entry: ModelEntry
    model: GraftModel
    classes: list[str]
    task: str

    @property
    def preprocessing(self) -> dict[str, Any]:
        """The input pipeline the run was trained with."""
        pre: dict[str, Any] = self.info.get("preprocessing", {})
        return pre

    def predict(self, samples: Sequence[Any], batch_size: int = 64) -> torch.Tensor:
        """Class probabilities ``[N, C]`` (columns in ``classes`` order).

        For token classification, ``samples`` are lists of words and the result
        is ``[N, T, C]`` with T the longest sentence (rows past a sentence's
        length are zero); ``predict_tags`` gives tag names directly.
        """
        if self.task == "token-classification":
            per_word = tag(self.model, samples, batch_size)
            width = max((w.shape[0] for w in per_word), default=0)
            out = torch.zeros(len(per_word), width, len(self.classes))
            for i, w in enumerate(per_word):
                out[i, : w.shape[0]] = w.softmax(-1)
            return out
        return classify(self.model, samples, batch_size).softmax(-1)

    def predict_labels(self, samples: Sequence[Any], batch_size: int = 64) -> list[Any]:
        """Class names (or per-word tag lists) of ``samples``."""
        if self.task == "token-classification":
            return [[self.classes[int(i)] for i in w.argmax(-1)] for w in tag(self.model, samples, batch_size)]
        return [self.classes[int(i)] for i in self.predict(samples, batch_size).argmax(-1)]

    def evaluate(self, samples: Sequence[Any], labels: Sequence[Any], batch_size: int = 64,
                 progress: bool = False) -> dict[str, Any]:
        """accuracy, loss, n, macro_f1 (+ entity F1 for token tasks) on labelled samples.

        Labels the run never saw are a ``TrainingError`` naming them.
        """
        return evaluate_samples(self.model, samples, self.targets(labels), self.classes, batch_size,
                                progress=progress)

    def targets(self, labels: Sequence[Any]) -> list[Any]:
        """Class ids of ``labels`` (per-word id lists for token tasks); unseen labels are a ``DataError``."""
        index = {c: i for i, c in enumerate(self.classes)}
        flat = [t for seq in labels for t in seq] if self.task == "token-classification" else list(labels)
        unseen = sorted({str(label) for label in flat if str(label) not in index})
        if unseen:
            raise DataError(f"labels never seen in training: {', '.join(unseen[:10])}"
                            f"{' ...' if len(unseen) > 10 else ''}; the run knows {', '.join(self.classes)}")
        if self.task == "token-classification":
            return [[index[str(t)] for t in seq] for seq in labels]
        return [index[str(label)] for label in labels]


def load_run(run_dir: str | Path, device: str | torch.device = "cpu") -> Run:
    """Load a run directory written by ``graft tune``: model (eval mode), classes, config, entry."""
    from safetensors.torch import load_model

    from graftzoo.train.build import build_model, make_policy

    path = Path(run_dir)
    info = read_info(path)
    weights = path / WEIGHTS
    if not weights.is_file():
        raise TrainingError(f"{path}: no {WEIGHTS} yet (status {info.get('status')!r}); finish it with "
                            f"'graft tune --resume {path}'")
    with naming(path):  # an unknown adapter or option in graft.json names the run it came from
        config = TrainConfig.from_dict(info["config"])
        entry = stored_entry(info)
        classes: list[str] = list(info["labels"])
        task = str(info.get("task", "classification"))
        extra = {name: str(path / rel) for name, rel in info.get("extra_files", {}).items()}
        model = build_model(entry, config, len(classes), task, pretrained=False,
                            extra_options={"extra_files": extra} if extra else None)
        make_policy(config.policy, config).apply(model)  # re-creates structure the policy added (LoRA adapters)
    try:
        load_model(model, str(weights), strict=True)
    except (RuntimeError, KeyError) as exc:
        raise TrainingError(f"{weights}: does not fit {entry.id} rebuilt by its adapter ({exc}); was the plugin "
                            "upgraded since the run?") from exc
    model.to(device).eval()
    return Run(path, info, config, entry, model, classes, task)

"""Experiment trackers through Accelerate: ``graft tune --log-with tensorboard,mlflow --project NAME``.

Graftzoo writes no logging layer of its own: the engine's ``Accelerator`` is
made with ``log_with``, and Accelerate's trackers (TensorBoard, MLflow,
Trackio, Weights & Biases) receive

- the run's configuration (``init_trackers(config=...)``),
- per optimiser step: ``train/loss`` and ``lr/<group>`` for every parameter group,
- per epoch: every number of the metrics.jsonl row, as ``epoch/<name>``,
- at the end: the confusion matrix and the curves as images where the
  tracker takes images (TensorBoard), as artifacts for MLflow.

Offline by default: TensorBoard event files go to ``RUN/tensorboard/<project>``,
MLflow to a file store in ``RUN/mlruns`` (unless ``MLFLOW_TRACKING_URI`` is
set), Weights & Biases runs in offline mode into the run directory (unless
``WANDB_MODE`` is set). Each tracker's package is an install extra
(``graftzoo[tensorboard]``, ``graftzoo[mlflow]``; trackio and wandb are
installed as themselves); a missing one is one error naming what to install,
before anything is trained.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from graftzoo.errors import OptionError

#: tracker -> (module that must import, what to install: a graftzoo extra or the package itself)
TRACKERS = {"tensorboard": ("tensorboard", "'graftzoo[tensorboard]'"), "mlflow": ("mlflow", "'graftzoo[mlflow]'"),
            "trackio": ("trackio", "trackio"), "wandb": ("wandb", "wandb")}


def _installed(name: str) -> bool:
    return importlib.util.find_spec(TRACKERS[name][0]) is not None


def resolve_trackers(spec: str | Sequence[str] | None) -> list[str]:
    """``"tensorboard,mlflow"`` / ``["all"]`` -> tracker names, each checked to be installed."""
    if not spec:
        return []
    items = spec.split(",") if isinstance(spec, str) else [s for part in spec for s in str(part).split(",")]
    names = [s.strip().lower() for s in items if s.strip()]
    if "all" in names:
        found = [n for n in TRACKERS if _installed(n)]
        if not found:
            raise OptionError("--log-with all: no tracker is installed; pip install 'graftzoo[tensorboard]' "
                                "or 'graftzoo[mlflow]'")
        return found
    unknown = [n for n in names if n not in TRACKERS]
    if unknown:
        raise OptionError(f"--log-with: unknown tracker {unknown[0]!r}; use {', '.join(TRACKERS)} or all")
    for name in names:
        if not _installed(name):
            raise OptionError(f"--log-with {name}: the {TRACKERS[name][0]!r} package is not installed; "
                                f"pip install {TRACKERS[name][1]}")
    return list(dict.fromkeys(names))


def accelerator_kwargs(trackers: Sequence[str], out: Path) -> dict[str, Any]:
    """``log_with`` / ``project_dir`` for the Accelerator, with offline stores inside the run directory."""
    if not trackers:
        return {}
    if "mlflow" in trackers and not os.environ.get("MLFLOW_TRACKING_URI"):
        import mlflow

        # MLflow 3 keeps the file store in maintenance mode behind this opt-in; it is the one offline
        # store that needs no database server or SQLAlchemy, and it lives inside the run directory.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        mlflow.set_tracking_uri((out / "mlruns").resolve().as_uri())
    if "wandb" in trackers:
        os.environ.setdefault("WANDB_MODE", "offline")
        os.environ.setdefault("WANDB_DIR", str(out))
    return {"log_with": list(trackers), "project_dir": str(out / "tensorboard")}


def _scalar(value: Any) -> bool:
    return isinstance(value, int | float | str | bool) and not isinstance(value, complex)


def start(accelerator: Any, trackers: Sequence[str], project: str | None, out: Path,
          config: dict[str, Any]) -> None:
    """``init_trackers`` with the run's flattened configuration (trackers take scalars only)."""
    if not trackers:
        return
    import json

    flat = {k: v if _scalar(v) else json.dumps(v, default=str) for k, v in config.items() if v is not None}
    accelerator.init_trackers(project or out.name, config=flat, init_kwargs=_init_kwargs(trackers, out))


def _init_kwargs(trackers: Sequence[str], out: Path) -> dict[str, dict[str, Any]]:
    kwargs: dict[str, dict[str, Any]] = {}
    if "mlflow" in trackers:
        kwargs["mlflow"] = {"run_name": out.name}
    if "wandb" in trackers:
        kwargs["wandb"] = {"name": out.name, "dir": str(out)}
    return kwargs


def log_step(accelerator: Any, step: int, loss: float, optimizer: Any) -> None:
    """The batch loss and each parameter group's learning rate at optimiser step ``step``."""
    values = {"train/loss": loss}
    for group in optimizer.param_groups:
        # "head/no_decay" -> "head.no_decay": MLflow's file store keeps "lr/head" as a file, so no deeper path
        values[f"lr/{str(group.get('name', 'group')).replace('/', '.')}"] = float(group["lr"])
    accelerator.log(values, step=step)


def log_epoch(accelerator: Any, step: int, row: dict[str, Any]) -> None:
    """Every number of the epoch's metrics.jsonl row, as ``epoch/<name>``."""
    accelerator.log({f"epoch/{k}": v for k, v in row.items() if isinstance(v, int | float)}, step=step)


def finish(accelerator: Any, out: Path, step: int) -> None:
    """The plots as images (TensorBoard) or artifacts (MLflow), then close every tracker."""
    plots = [p for p in (out / "confusion.png", out / "curves.png") if p.is_file()]
    for tracker in accelerator.trackers:
        if tracker.name == "tensorboard" and plots:
            import matplotlib.image

            images = {p.stem: (matplotlib.image.imread(str(p))[..., :3] * 255).astype("uint8") for p in plots}
            tracker.log_images(images, step=step, dataformats="HWC")
        elif tracker.name == "mlflow":
            import mlflow

            for plot in plots:
                mlflow.log_artifact(str(plot))
    accelerator.end_training()

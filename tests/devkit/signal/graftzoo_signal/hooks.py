"""Hook implementations: names and ``module:attr`` targets only (nothing heavy is imported here)."""

from __future__ import annotations

from pathlib import Path

from graftzoo.api import parse_registry_file
from graftzoo.hookspecs import (
    RegisterBackbone,
    RegisterDataFormat,
    RegisterModality,
    RegisterModel,
    hookimpl,
)


@hookimpl
def register_modalities(register: RegisterModality) -> None:
    register("signal", task="signal-classification", pipeline_tag="time-series-classification",
             description="1-D sensor signals (accelerometers, ECG, vibration)", inputs="files")


@hookimpl
def register_backbones(register: RegisterBackbone) -> None:
    register("sigcnn", "graftzoo_signal.backbone:create", modality="signal",
             description="a small 1-D CNN on raw signals")


@hookimpl
def register_data_formats(register: RegisterDataFormat) -> None:
    register("signal-npz", "graftzoo_signal.data:load_npz", modality="signal",
             detect="graftzoo_signal.data:is_signal_npz", description="signals [N, L] and labels [N] in one .npz")


@hookimpl
def register_models(register: RegisterModel) -> None:
    for entry in parse_registry_file(Path(__file__).parent / "registry.toml"):
        register(entry)

"""Hook implementations of the vision plugin.

Targets are ``"module:attr"`` strings: nothing heavy (torch, timm,
torchvision, PIL) is imported until a command actually builds a network or
reads an image, so ``graft list`` stays fast with this plugin installed.
"""

from __future__ import annotations

from graftzoo.hookspecs import RegisterBackbone, RegisterDataFormat, RegisterNamedDataset, hookimpl


@hookimpl
def register_backbones(register: RegisterBackbone) -> None:
    register("timm", "graftzoo_vision.backbone:create", modality="vision",
             description="any timm architecture, classifier removed, grouped stem/stages/head",
             hub_libraries=["timm"], hub_entry="graftzoo_vision.hub:hub_entry")


@hookimpl
def register_data_formats(register: RegisterDataFormat) -> None:
    register("imagefolder", "graftzoo_vision.data:load_imagefolder", modality="vision",
             detect="graftzoo_vision.data:is_imagefolder",
             description="root/<class>/*.jpg|jpeg|png|bmp|webp")


@hookimpl
def register_named_datasets(register: RegisterNamedDataset) -> None:
    register("digits", "graftzoo_vision.data:load_digits", modality="vision",
             description="scikit-learn's 1,797 handwritten digits (8x8), dark ink on white, 10 classes")
    register("digits-inverted", "graftzoo_vision.data:load_digits_inverted", modality="vision",
             description="the digits as white ink on black: a controlled domain shift")

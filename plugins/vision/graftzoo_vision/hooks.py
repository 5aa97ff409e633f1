"""Hook implementations of the vision plugin.

Targets are ``"module:attr"`` strings: nothing heavy (torch, timm,
torchvision, PIL) is imported until a command actually builds a network or
reads an image, so ``graft list`` stays fast with this plugin installed.
"""

from __future__ import annotations

from graftzoo.hookspecs import Register, hookimpl


@hookimpl
def register_backbones(register: Register) -> None:
    register("timm", "graftzoo_vision.backbone:create", modality="vision",
             description="any timm architecture, classifier removed, grouped stem/stages/head")


@hookimpl
def register_datasets(register: Register) -> None:
    register("imagefolder", "graftzoo_vision.data:load_imagefolder", modality="vision",
             detect="graftzoo_vision.data:is_imagefolder",
             description="root/<class>/*.jpg|jpeg|png|bmp|webp")
    register("digits", "graftzoo_vision.data:load_digits", modality="vision", named=True,
             description="scikit-learn's 1,797 handwritten digits (8x8), dark ink on white, 10 classes")
    register("digits-inverted", "graftzoo_vision.data:load_digits_inverted", modality="vision", named=True,
             description="the digits as white ink on black: a controlled domain shift")

"""The image input pipeline: preprocessing facts, decoding samples, timm transforms.

Preprocessing is a small JSON-ready dict (input size, mean, std,
interpolation, crop_pct, crop_mode) built from the registry entry's
``[model.input]`` table, falling back to timm's pretrained config, with the
user's ``image_size`` on top. It is stored with every run, and the transforms
are rebuilt from it alone, so evaluate/predict/export see exactly the pixels
training saw.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from graftzoo.api import DataError, OptionError

#: Suffixes the imagefolder loader picks up (lower case).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

#: Train-time augmentation presets (``--augment``), all through timm's transform factory. timm's
#: ImageNet recipe crops down to 8% of the image and flips half the images; on data the adapter knows
#: nothing about that destroys content (a flipped 3 is no 3, a 35% crop of a digit loses strokes), so the
#: default, ``light``, never flips and keeps at least 80% of the image. ``strong`` is the ImageNet-style
#: recipe (flips, crops to 35%, RandAugment) for data where that is known to be safe.
AUGMENT_PRESETS: dict[str, dict[str, Any]] = {
    "none": {"enabled": False},
    "light": {"scale": (0.8, 1.0), "ratio": (0.9, 1.1), "hflip": 0.0, "color_jitter": 0.0},
    "strong": {"scale": (0.35, 1.0), "ratio": (3 / 4, 4 / 3), "hflip": 0.5, "color_jitter": 0.0,
               "auto_augment": "rand-m9-mstd0.5"},
}
#: Named transforms for ``--augment T1,T2``; each adds to a no-op base (whole image, no flip).
NAMED_TRANSFORMS: dict[str, dict[str, Any]] = {
    "crop": {"scale": (0.8, 1.0), "ratio": (0.9, 1.1)},
    "strongcrop": {"scale": (0.35, 1.0), "ratio": (3 / 4, 4 / 3)},
    "hflip": {"hflip": 0.5},
    "vflip": {"vflip": 0.5},
    "colorjitter": {"color_jitter": 0.3},
    "randaugment": {"auto_augment": "rand-m9-mstd0.5"},
    "trivialaugment": {"trivial_augment": True},
}
_NO_OP: dict[str, Any] = {"scale": (1.0, 1.0), "ratio": (1.0, 1.0), "hflip": 0.0, "color_jitter": 0.0}
DEFAULT_AUGMENT = "light"
TRAIN_DEFAULTS: dict[str, Any] = AUGMENT_PRESETS[DEFAULT_AUGMENT]


def augment_settings(augment: str | None) -> dict[str, Any]:
    """The train-transform settings of a preset or a comma-separated list of named transforms."""
    name = (augment or DEFAULT_AUGMENT).strip().lower()
    if name in AUGMENT_PRESETS:
        return dict(AUGMENT_PRESETS[name])
    settings = dict(_NO_OP)
    for part in (p.strip() for p in name.split(",")):
        if part not in NAMED_TRANSFORMS:
            raise OptionError(f"--augment {augment!r}: unknown vision transform {part!r}; use none, light, strong or "
                            f"a comma-separated list of {', '.join(NAMED_TRANSFORMS)}")
        settings.update(NAMED_TRANSFORMS[part])
    return settings


def resolve_preprocessing(entry_input: Mapping[str, Any], pretrained_cfg: Mapping[str, Any],
                          options: Mapping[str, Any]) -> dict[str, Any]:
    """Input size, mean, std, interpolation, crop from entry, then timm's config, then options."""

    def pick(key: str, cfg_key: str, default: Any) -> Any:
        if key in entry_input:
            return entry_input[key]
        return pretrained_cfg.get(cfg_key, default)

    size = list(pick("size", "input_size", (3, 224, 224)))
    if len(size) == 2:
        size = [3, *size]
    image_size = options.get("image_size")
    if image_size is not None:
        if isinstance(image_size, int | float | str):
            hw = [int(image_size), int(image_size)]
        else:
            hw = [int(v) for v in image_size]
        if len(hw) != 2 or min(hw) < 8:
            raise DataError(f"image_size {image_size!r}: give one size of at least 8 pixels, or [height, width]")
        size = [size[0], *hw]
    interpolation = options.get("interpolation") or pick("interpolation", "interpolation", "bilinear")
    prep: dict[str, Any] = {
        "input_size": [int(v) for v in size],
        "mean": [float(v) for v in pick("mean", "mean", (0.485, 0.456, 0.406))],
        "std": [float(v) for v in pick("std", "std", (0.229, 0.224, 0.225))],
        "interpolation": str(interpolation),
        "crop_pct": _crop_pct(options, pick("crop_pct", "crop_pct", 0.875)),
        "crop_mode": str(pick("crop_mode", "crop_mode", "center")),
    }
    train = augment_settings(options.get("augment"))
    train["augment"] = str(options.get("augment") or DEFAULT_AUGMENT)
    for key in ("scale", "ratio"):
        if options.get(key) is not None:
            train[key] = _pair(options[key], key)
    for key in ("hflip", "color_jitter"):
        if options.get(key) is not None:
            train[key] = float(options[key])
    prep["train"] = {k: list(v) if isinstance(v, tuple) else v for k, v in train.items()}
    return prep


def _crop_pct(options: Mapping[str, Any], pretrained_crop: float) -> float:
    """The evaluation centre crop: the user's (``--crop-pct``), else the entry's (timm's, 87.5% for most).

    Measured (issue 15): the whole image (1.0) was the transfer default for a while, on the belief that a
    centre crop cuts away a digit's strokes; on real digits it did worse -- the demo's frozen probe (64 px)
    0.9415 against 0.9582 validation accuracy with the 87.5% crop, the few-shot bench (96 px, 10/class,
    1,697 test digits) 0.8621 against 0.8715. The crop the backbone was trained to see is the default
    for a frozen backbone; a fine-tuned one gets ``matched_crop`` (``TimmBackbone.fine_tuning``).
    """
    if options.get("crop_pct") is not None:
        return float(options["crop_pct"])
    return float(pretrained_crop)


def matched_crop(train: Mapping[str, Any]) -> float | None:
    """The evaluation crop at which objects look as large as in a fine-tuned network's training crops.

    FixRes (Touvron et al., 2019): a random-resized crop of area ``s`` (a fraction of the image, uniform
    in ``scale = (a, b)``) blown up to the input size magnifies objects ``1 / sqrt(s)`` times, a centre crop
    ``c`` magnifies them ``1 / c`` times; equal on average when ``c = 1 / E[s^-1/2] = (sqrt(a) + sqrt(b)) / 2``
    (the aspect-ratio jitter is left out: ``ratio`` near 1 changes it by under 1%). The default ``light``
    crops (80-100% of the area) give 0.9472, ``strong`` (35-100%) 0.7958, transforms without a crop 1.0.
    A frozen backbone keeps the crop it was pretrained for, and without augmentation (``--augment none``)
    training saw the evaluation crop itself: ``None`` then, nothing to match.

    Measured (issue 15, few-shot digits at 96 px, 1,697 held-out digits): ``--policy full`` 0.9104 with the
    model's 0.875, 0.9204 with 0.947, 0.9252 with 1.0; ``--policy lora`` 0.9157, 0.9234, 0.9352.
    """
    if train.get("enabled", True) is False:
        return None
    lo, hi = (float(v) for v in train.get("scale", TRAIN_DEFAULTS["scale"]))
    return round((math.sqrt(lo) + math.sqrt(hi)) / 2, 4)


def _pair(value: Any, key: str) -> tuple[float, float]:
    """Two floats from a sequence or a "a,b" string (as --backbone-option gives it)."""
    parts = value.split(",") if isinstance(value, str) else list(value)
    try:
        lo, hi = (float(v) for v in parts)
    except (TypeError, ValueError):
        raise DataError(f"option {key}={value!r}: expected two numbers, e.g. {key}=0.35,1.0") from None
    return lo, hi


def build_transform(prep: Mapping[str, Any], train: bool) -> Any:
    """timm's transform for this preprocessing: augmenting for training, deterministic for eval."""
    from timm.data import create_transform  # type: ignore[attr-defined]

    common = {
        "input_size": tuple(prep["input_size"]),
        "interpolation": prep["interpolation"],
        "mean": tuple(prep["mean"]),
        "std": tuple(prep["std"]),
    }
    aug = prep.get("train", {})
    if not train or aug.get("enabled", True) is False:
        return create_transform(is_training=False, crop_pct=prep["crop_pct"], crop_mode=prep["crop_mode"], **common)
    transform = create_transform(
        is_training=True,
        scale=tuple(aug.get("scale", TRAIN_DEFAULTS["scale"])),
        ratio=tuple(aug.get("ratio", TRAIN_DEFAULTS["ratio"])),
        hflip=float(aug.get("hflip", TRAIN_DEFAULTS["hflip"])),
        vflip=float(aug.get("vflip", 0.0)),
        color_jitter=float(aug.get("color_jitter", TRAIN_DEFAULTS["color_jitter"])),
        auto_augment=aug.get("auto_augment"),
        **common,
    )
    if aug.get("trivial_augment"):  # torchvision's TrivialAugmentWide on the PIL image, before tensor conversion
        from torchvision.transforms import TrivialAugmentWide

        transform.transforms.insert(len(transform.transforms) - 2, TrivialAugmentWide())
    return transform


def open_image(path: str | Path, data: bytes | None = None, *, keep_gray: bool = False) -> Image.Image:
    """Decode an image file (or its ``data``, already read) fully into RGB (a greyscale one stays ``L`` with
    ``keep_gray``).

    An unreadable file is a ``DataError`` naming ``path``.
    """
    try:
        with Image.open(io.BytesIO(data) if data is not None else path) as img:
            img.load()
            return img.convert("L" if keep_gray and img.mode == "L" else "RGB")
    except FileNotFoundError:
        raise DataError(f"{path}: image file not found") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        # PIL reports truncated/corrupt files as OSError, bad headers as UnidentifiedImageError/SyntaxError.
        raise DataError(f"{path}: cannot read image ({exc}); fix or remove the file, "
                        "or pass --skip-bad to leave unreadable images out") from None


def to_pil(sample: Any, keep_gray: bool = False) -> Image.Image:
    """A sample as an RGB PIL image: a file path, a PIL image, or an HxW / HxWxC array.

    ``keep_gray``: a greyscale (``L``) image stays ``L`` -- for ``stack``, which converts it after the
    steps that treat every channel alike.
    """
    if isinstance(sample, Image.Image):
        return sample if sample.mode == "RGB" or (keep_gray and sample.mode == "L") else sample.convert("RGB")
    if isinstance(sample, str | Path):
        return open_image(sample, keep_gray=keep_gray)
    if hasattr(sample, "detach") and hasattr(sample, "numpy"):  # a torch tensor
        sample = sample.detach().cpu().numpy()
    if isinstance(sample, np.ndarray):
        return _array_to_pil(sample, keep_gray)
    raise DataError(f"cannot turn a {type(sample).__name__} into an image; give file paths, PIL images "
                    "or HxW/HxWxC arrays")


def _array_to_pil(arr: np.ndarray, keep_gray: bool = False) -> Image.Image:
    if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[-1] not in (1, 3, 4):
        arr = np.moveaxis(arr, 0, -1)  # CHW -> HWC
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
        raise DataError(f"image array of shape {arr.shape}: expected HxW, HxWx3 or HxWx4")
    if arr.dtype != np.uint8:
        # Floats are taken as [0, 1] images (what ToTensor and most libraries produce).
        arr = np.clip(np.asarray(arr, dtype=np.float64) * (255.0 if arr.max() <= 1.0 else 1.0), 0, 255)
        arr = arr.round().astype(np.uint8)
    img = Image.fromarray(arr)
    return img if keep_gray and img.mode == "L" else img.convert("RGB")


def stack(images: Sequence[Any], transform: Any, channels_last: bool = False) -> Any:
    """Apply ``transform`` to each sample and stack into a ``[B, C, H, W]`` float tensor.

    A transform that ends in to-tensor + normalise (every timm transform) runs
    its image steps per sample and those two once on the stacked uint8 batch:
    the same arithmetic in the same order, so the same values, without a
    float tensor, a division and a normalisation per image. A greyscale sample
    goes through resizes, crops and flips as one channel and is copied into
    three after them (the same pixels as converting it first). The result is in
    channels_last layout when ``channels_last``, else contiguous.
    """
    import torch

    if not images:
        raise DataError("cannot collate an empty batch")
    steps = list(getattr(transform, "transforms", ()))
    if len(steps) < 2 or not _is_to_tensor(steps[-2]) or not _is_normalize(steps[-1]):
        return torch.stack([transform(to_pil(s)) for s in images])
    keep_gray = all(_per_channel(step) for step in steps[:-2])
    pixels = []
    for sample in images:
        img = to_pil(sample, keep_gray)
        for step in steps[:-2]:
            img = step(img)
        if img.mode == "L" and keep_gray:  # grey into RGB: the value copied to the three channels
            pixels.append(np.broadcast_to(np.asarray(img)[..., None], (img.height, img.width, 3)))
        else:
            pixels.append(np.asarray(img.convert("RGB") if img.mode != "RGB" else img))
    norm = steps[-1]
    mean = torch.as_tensor(norm.mean, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.as_tensor(norm.std, dtype=torch.float32).view(1, -1, 1, 1)
    # The arithmetic on a [B, C, H, W]-contiguous tensor: broadcasting mean and std over the innermost
    # 3 channels of the [B, H, W, C] layout is not vectorised (twice as slow for a batch of 64 images).
    planes = torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2).contiguous()
    batch = planes.float().div_(255).sub_(mean).div_(std)
    return batch.contiguous(memory_format=torch.channels_last) if channels_last else batch


def _per_channel(step: Any) -> bool:
    """True for the steps that treat every channel alike and draw nothing from the pixels (resizes, crops, flips):
    a greyscale image goes through them as one channel, a third of the work, and gives the same pixels."""
    from timm.data.transforms import RandomResizedCropAndInterpolation, ResizeKeepRatio
    from torchvision import transforms as tv

    if isinstance(step, tv.ColorJitter):  # all strengths 0 (the default presets): it only draws its random order
        return all(getattr(step, k) is None for k in ("brightness", "contrast", "saturation", "hue"))
    return isinstance(step, tv.Resize | tv.CenterCrop | tv.RandomHorizontalFlip | tv.RandomVerticalFlip
                      | RandomResizedCropAndInterpolation | ResizeKeepRatio)


def _is_to_tensor(step: Any) -> bool:
    return type(step).__name__ in ("ToTensor", "MaybeToTensor")


def _is_normalize(step: Any) -> bool:
    from torchvision.transforms import Normalize

    return isinstance(step, Normalize) and not step.inplace

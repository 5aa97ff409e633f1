"""Where and how a run computes: ``--device``, ``--precision``, ``--workers``, ``--grad-accum``.

``check_hardware`` refuses, in plain words, what this machine cannot do (fp16
without a CUDA GPU, bf16 on a GPU or CPU without bf16 arithmetic, a device
that is not there) before anything is written; ``make_accelerator`` then
builds the Accelerate object the engine runs on. The chosen values are part
of the ``TrainConfig`` and so of graft.json.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from graftzoo.errors import OptionError

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("fp32", "bf16", "fp16")
_ACCELERATE_PRECISION = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}


def resolve_device(device: str | None) -> str:
    """``auto`` (or None) becomes cuda when a GPU is visible, else cpu; an absent device is an ``OptionError``."""
    name = device or "auto"
    if name not in DEVICES:
        raise OptionError(f"--device {name}: unknown device; use one of {', '.join(DEVICES)}")
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise OptionError("--device cuda: no CUDA GPU is visible to torch (torch.cuda.is_available() is False); "
                          "use --device cpu")
    if name == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise OptionError("--device mps: Apple's Metal backend is not available here; use --device cpu")
    return name


def cpu_has_bf16() -> bool:
    """Whether this CPU has bf16 arithmetic (AVX512-BF16 or AMX); elsewhere bf16 is emulated and slow."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in text.split() for flag in ("avx512_bf16", "amx_bf16"))


def resolve_precision(precision: str | None, device: str) -> str:
    """The precision to run in: the one asked for when the device supports it (else an ``OptionError``).

    Without ``--precision``: bf16 on a GPU that has it, fp32 everywhere else.
    """
    if precision is None:
        return "bf16" if device == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    if precision not in PRECISIONS:
        raise OptionError(f"--precision {precision}: unknown; use one of {', '.join(PRECISIONS)}")
    if precision == "fp16" and device != "cuda":
        raise OptionError(f"--precision fp16 needs a CUDA GPU (fp16 mixed precision scales the loss on the GPU); "
                          f"this run is on {device}: use --precision fp32 or bf16")
    if precision == "bf16" and device == "cuda" and not torch.cuda.is_bf16_supported():
        raise OptionError(f"--precision bf16: {torch.cuda.get_device_name()} has no bf16 arithmetic (it needs "
                          "compute capability 8.0 or newer); use --precision fp16 or fp32")
    if precision == "bf16" and device == "cpu" and not cpu_has_bf16():
        raise OptionError("--precision bf16: this CPU has no bf16 instructions (avx512_bf16 or amx_bf16); use "
                          "--precision fp32")
    if precision == "bf16" and device == "mps":
        raise OptionError("--precision bf16 is not supported on mps; use --precision fp32")
    return precision


def check_hardware(config: Any) -> tuple[str, str]:
    """``(device, precision)`` of a ``TrainConfig``, or an ``OptionError`` naming the option that cannot run."""
    if config.grad_accum < 1:
        raise OptionError(f"--grad-accum {config.grad_accum}: must be 1 or more")
    if config.workers is not None and config.workers < 0:
        raise OptionError(f"--workers {config.workers}: must be 0 (decode in the main process) or more")
    device = resolve_device(config.device)
    return device, resolve_precision(config.precision, device)


def make_accelerator(config: Any | None = None, **kwargs: Any) -> Any:
    """Accelerate on the configured device and precision (default: fp32 on CPU, bf16 on a GPU that has it).

    ``kwargs`` go to ``Accelerator`` as they are (the trackers of ``graftzoo.train.tracking``).
    """
    from accelerate import Accelerator, DataLoaderConfiguration

    _cache_package_probe()
    if config is None:
        device, precision, accum = resolve_device(None), resolve_precision(None, resolve_device(None)), 1
    else:
        (device, precision), accum = check_hardware(config), config.grad_accum
    # split_batches must go through DataLoaderConfiguration: accelerate 1.15 accepts and ignores
    # Accelerator(split_batches=True), which silently doubles the global batch on two processes.
    return Accelerator(cpu=device == "cpu", mixed_precision=_ACCELERATE_PRECISION[precision],
                       gradient_accumulation_steps=accum,
                       dataloader_config=DataLoaderConfiguration(split_batches=True), **kwargs)


def _cache_package_probe() -> None:
    """Look up the optional ``lomo_optim`` package once per process, not twice per optimiser step.

    accelerate 1.15's ``AcceleratedOptimizer.step`` calls ``is_lomo_available()``, an ``importlib``
    file-system search, twice on every step (0.4 ms a step in the profile of a frozen probe: a fifth of its
    head-only epochs). Whether a package is installed does not change while a run trains.
    """
    import functools

    import accelerate.optimizer as accelerated

    probe = accelerated.is_lomo_available
    if not hasattr(probe, "cache_info"):
        accelerated.is_lomo_available = functools.cache(probe)


def hardware_info(accelerator: Any) -> dict[str, Any]:
    """What the run actually ran on, for graft.json: device, precision, processes, gradient accumulation."""
    return {"device": str(accelerator.device), "precision": str(accelerator.mixed_precision),
            "processes": int(accelerator.num_processes),
            "grad_accum": int(accelerator.gradient_accumulation_steps)}

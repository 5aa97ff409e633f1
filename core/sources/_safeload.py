"""Safe weight loading: safetensors, or a tensors-only pickle converted to safetensors once.

``.pt``/``.pth``/``.bin`` files are read with ``torch.load(weights_only=True)``,
which refuses any pickle that would import or call code; the result is stored
as ``GRAFTZOO_HOME/converted/SHA256.safetensors`` (keyed by the source file's
sha256, with its own checksum record, see ``graftzoo.storage.checked``) and
every later load reads that file instead of unpickling again; a damaged
conversion is removed and made again, never loaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graftzoo.errors import SourceError
from graftzoo.home import graftzoo_home
from graftzoo.sources import _cache
from graftzoo.storage import checked

if TYPE_CHECKING:
    import torch

_NESTED_KEYS = ("state_dict", "model_state", "model_state_dict", "model", "module")


def _tensors_only(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """The state dict inside a checkpoint: a flat name -> tensor mapping."""
    import torch

    if isinstance(obj, Mapping):
        for key in _NESTED_KEYS:  # training checkpoints wrap the weights: {"state_dict": {...}, "epoch": 3}
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                obj = inner
                break
        tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if tensors:
            return tensors
    raise SourceError(f"{path}: holds no state dict (found {type(obj).__name__}); expected a mapping of parameter "
                      "names to tensors")


def converted_path(sha256: str) -> Path:
    """Where the safetensors conversion of a file with this sha256 is kept."""
    return graftzoo_home() / "converted" / f"{sha256}.safetensors"


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Load weights as ``{name: tensor}`` without ever running code from the file.

    ``model.safetensors`` is read directly (a directory is searched for it).
    Anything else is treated as a torch pickle: loaded once with
    ``weights_only=True``, converted to safetensors in the cache, and read from
    there afterwards. A pickle that carries code is refused with a
    ``SourceError``; nothing is written to the cache for it.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if path.is_dir():
        candidates = sorted(path.glob("*.safetensors"))
        if len(candidates) != 1:
            raise SourceError(f"{path}: a directory must hold exactly one .safetensors file to load as a state "
                              f"dict, found {len(candidates)}; pass the file itself")
        path = candidates[0]
    if not path.is_file():
        raise SourceError(f"{path}: no such weights file; run 'graft pull ID' first")
    if path.suffix == ".safetensors":
        try:
            return dict(load_file(str(path)))
        except (SafetensorError, OSError, ValueError) as exc:
            raise SourceError(f"{path}: not a readable safetensors file ({exc}); run 'graft cache verify' and "
                              "pull it again") from None
    digest = _cache.cached_sha256(path)
    target = converted_path(digest)
    state = _read_converted(target, path)
    if state is not None:
        return state
    with _cache.lock("convert-" + digest):
        state = _read_converted(target, path)  # another process may have converted it meanwhile
        if state is None:
            state = _unpickle(path)
            _save_converted(state, target, path)
    return state


def _read_converted(target: Path, source: Path) -> dict[str, torch.Tensor] | None:
    """The cached conversion if it is complete and its checksum matches; a damaged one is removed.

    Hashed in blocks, then memory-mapped (``checked.load_checked``): the weights
    are not read into a bytes object and copied again into tensors.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    def load(p: Path) -> dict[str, torch.Tensor] | None:
        try:
            return dict(load_file(str(p)))
        except (SafetensorError, OSError, ValueError):
            return None

    return checked.load_checked(target, f"conversion of {source}", load)  # not safetensors: removed, rebuilt


def _unpickle(path: Path) -> dict[str, torch.Tensor]:
    import pickle

    import torch

    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()
        detail = next((line for line in first if "GLOBAL" in line or "Unsupported" in line), first[0] if first else "")
        raise SourceError(
            f"{path}: refused to load: the pickle asks to import or run code ({detail.strip()}). Only plain tensors "
            "are accepted (torch.load weights_only=True); get safetensors weights from the publisher"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise SourceError(f"{path}: not a readable torch checkpoint ({type(exc).__name__}: {exc}); run "
                          "'graft cache verify' and pull it again") from None
    return _tensors_only(obj, path)


def _save_converted(state: Mapping[str, torch.Tensor], target: Path, source: Path) -> None:
    from graftzoo.storage.tensorfile import write_safetensors

    # Written tensor by tensor from their own memory (tied weights each in full): no bytes copy of the weights.
    checked.save_checked_with(target, lambda tmp: write_safetensors(tmp, state, {"format": "pt"}),
                              f"the safetensors conversion of {source}")

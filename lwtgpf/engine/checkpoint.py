"""Training checkpoints: atomic writes, safe loads, and the RNG states that make a resume exact.

A checkpoint is one `torch.save` file holding a dict of plain data only (tensors, numbers, strings,
lists, tuples, dicts, None) so that `torch.load(..., weights_only=True)` reads it: model / optimizer /
scheduler state_dicts, epoch and iteration counters, the proxy memory, `capture_rng_state()` and the
resolved config dict. `save_checkpoint` checks that before writing and names the offending key.

Convention for the counters (the public code's resume skipped an epoch): store `epoch` = the number of
epochs completed; a resumed run starts its loop at that index.

Verified both ways: `torch.load` does not check the archive's CRC-32 checksums, so a flipped bit in a
tensor loads silently. `verify_archive` checks every member of the zip archive `torch.save` writes
(Python's zipfile): after writing (before the atomic rename) and before every load.
"""
from __future__ import annotations

import pickle
import random
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from lwtgpf.errors import UserError
from lwtgpf.fileio import atomic_write

FORMAT = "lwtgpf-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(UserError):
    """A checkpoint file that is corrupt, not a checkpoint, or holds data weights_only cannot load."""


def save_checkpoint(path: str | Path, state: Mapping[str, Any]) -> Path:
    """Write `state` to `path` atomically: a temporary file in the same folder, fsync, then os.replace.

    A crash or a failing write leaves any previous file at `path` intact. Returns the path.
    """
    path = Path(path)
    reserved = {"format", "format_version"} & set(state)
    if reserved:
        raise ValueError(f"checkpoint state may not use the reserved keys {sorted(reserved)}")
    _check_plain(dict(state), "state")
    payload = {**state, "format": FORMAT, "format_version": FORMAT_VERSION}
    try:
        return atomic_write(path, lambda stream: torch.save(payload, stream), verify=verify_archive)
    except CheckpointError as error:  # the file on disk is not what was written: keep the previous one
        raise CheckpointError(f"cannot write {path}: the written file does not verify ({error}); "
                              "the previous checkpoint is kept") from None


def verify_archive(path: str | Path) -> None:
    """Check every member of a `torch.save` zip archive against its CRC-32; CheckpointError names the file.

    Reads the whole file once (about 1 GB/s); catches truncation and flipped bits that `torch.load`
    would load silently.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except zipfile.BadZipFile as error:
        raise CheckpointError(f"{path}: not a readable torch checkpoint (truncated or corrupt?): {error}") from None
    except (EOFError, ValueError) as error:  # zipfile's errors on archives cut inside a member
        raise CheckpointError(f"{path}: truncated or corrupt checkpoint ({error})") from None
    if bad is not None:
        raise CheckpointError(f"{path}: corrupt checkpoint: member {bad!r} fails its CRC-32 check "
                              "(a damaged copy or a failing disk); it was not loaded")


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a file written by `save_checkpoint` with weights_only=True (checkpoints are untrusted input).

    Raises CheckpointError, naming the file, when it is missing, corrupt (`verify_archive`), holds objects weights_only refuses, or is not an lwtgpf checkpoint (e.g. bare weights).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    verify_archive(path)
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"{path}: holds objects that weights_only=True refuses to load, or is not a torch file ({error})"
        ) from error
    except Exception as error:  # a corrupt file fails anywhere in the unpickler; re-raised with its name
        raise CheckpointError(
            f"{path}: not a readable torch checkpoint (truncated or corrupt?): {type(error).__name__}: {error}"
        ) from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = sorted(payload)[:8] if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"{path}: not an lwtgpf checkpoint (no format={FORMAT!r} entry; found {found})")
    if payload.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {payload.get('format_version')} is not {FORMAT_VERSION}"
        )
    return payload


def capture_rng_state() -> dict[str, Any]:
    """The python, numpy (legacy global), torch CPU and CUDA generator states as plain data."""
    version, python_state, gauss_next = random.getstate()
    bit_generator, keys, pos, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    return {
        "python": {"version": version, "state": list(python_state), "gauss_next": gauss_next},
        "numpy": {
            "bit_generator": bit_generator,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Undo `capture_rng_state`. CUDA states are restored for the devices present (none on a CPU box)."""
    python = state["python"]
    random.setstate((python["version"], tuple(python["state"]), python["gauss_next"]))
    numpy_state = state["numpy"]
    keys = numpy_state["keys"].cpu().numpy().astype(np.uint32)
    np.random.set_state(
        (numpy_state["bit_generator"], keys, numpy_state["pos"], numpy_state["has_gauss"], numpy_state["cached_gaussian"])
    )
    torch.set_rng_state(state["torch"].cpu())
    if torch.cuda.is_available():
        for device, cuda_state in zip(range(torch.cuda.device_count()), state["cuda"]):
            torch.cuda.set_rng_state(cuda_state.cpu(), device)


_PLAIN_SCALARS = (str, int, float, bool, type(None), torch.Tensor, torch.Size, torch.dtype, torch.device)
_PLAIN_MAPPINGS = (dict, OrderedDict)  # exact types: weights_only refuses e.g. defaultdict or namedtuple
_PLAIN_SEQUENCES = (list, tuple)


def _check_plain(obj: Any, where: str) -> None:
    """Raise TypeError naming the key path of the first value weights_only=True could not load."""
    if isinstance(obj, _PLAIN_SCALARS) and not isinstance(obj, np.generic):  # np.float64 is a float
        return
    if type(obj) in _PLAIN_MAPPINGS:
        for key, value in obj.items():
            if not isinstance(key, (str, int)):
                raise TypeError(f"checkpoint key {where}[{key!r}] must be a str or int, got {type(key).__name__}")
            _check_plain(value, f"{where}[{key!r}]")
        return
    if type(obj) in _PLAIN_SEQUENCES:
        for index, value in enumerate(obj):
            _check_plain(value, f"{where}[{index}]")
        return
    raise TypeError(
        f"checkpoint value {where} is a {type(obj).__module__}.{type(obj).__name__}; store plain data only "
        "(tensors, numbers, strings, lists, dicts), e.g. a state_dict() or a tensor instead of a numpy array"
    )

"""Atomic file writes: the one way anything in a run folder (checkpoints, logs, configs) is written.

A write goes to a temporary file in the target's folder, is flushed and fsync-ed, optionally verified,
then renamed over the target (`os.replace`, atomic on POSIX). A failure at any point (disk full, a
killed process, a failing check) leaves the previous file intact and no temporary file behind, and the
OSError names the target path.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Callable


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None],
                 verify: Callable[[Path], None] | None = None) -> Path:
    """Write `path` atomically: `write(handle)` fills a temporary file, `verify(tmp_path)` may check it.

    Raises OSError naming `path` when the disk is full or the folder is not writable; whatever `write` or
    `verify` raise propagates. Returns the path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        if verify is not None:
            verify(tmp)
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise OSError(err.errno, f"cannot write {path}: {err.strerror or err}", str(path)) from err
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda stream: stream.write(text.encode()))


def write_json_atomic(path: str | Path, data: Any) -> Path:
    return write_text_atomic(path, json.dumps(data, indent=2, default=_json_default) + "\n")


def append_line(path: str | Path, line: str) -> None:
    """Append one line (a log) and flush it to disk; OSError names the path."""
    path = Path(path)
    try:
        with open(path, "a", encoding="utf-8") as stream:
            stream.write(line.rstrip("\n") + "\n")
            stream.flush()
            os.fsync(stream.fileno())
    except OSError as err:
        raise OSError(err.errno, f"cannot write {path}: {err.strerror or err}", str(path)) from err


def _json_default(value: Any) -> Any:
    """numpy scalars and 0-d tensors as plain numbers (`.item()`); anything else as its str."""
    item = getattr(value, "item", None)
    return item() if callable(item) else str(value)


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)

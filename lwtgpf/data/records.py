"""Records and splits: what every dataset loader produces.

A record is one crop: `(path, pid, camid)` like torchreid, plus dataset extras. A `ReidDataset` holds
the train / query / gallery record lists of one benchmark and can print the statistics table users
know from the toolboxes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from lwtgpf.errors import UserError


class DatasetError(UserError):
    """A dataset that is missing, empty or malformed; the message names the path and what was expected."""


class Record(NamedTuple):
    """One crop. Unpacks as `path, pid, camid, extras`; `camid` is 0-based, `pid` -1 never occurs
    (junk is dropped at load time), pid 0 is a Market-1501 distractor (gallery only)."""

    path: str
    pid: int
    camid: int
    extras: dict[str, Any] = {}


@dataclass
class ReidDataset:
    """One benchmark: its three splits and the number of cameras (camids are in [0, num_cameras))."""

    name: str
    root: str
    num_cameras: int
    train: list[Record]
    query: list[Record]
    gallery: list[Record]
    extras: dict[str, Any] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)  # hidden / system files skipped, per folder

    def split(self, name: str) -> list[Record]:
        if name not in ("train", "query", "gallery"):
            raise ValueError(f"unknown split {name!r}; expected train, query or gallery")
        return getattr(self, name)

    def statistics(self) -> str:
        """The table torchreid prints: ids, images and cameras per split."""
        rows = [("train", self.train), ("query", self.query), ("gallery", self.gallery)]
        lines = [
            f"=> {self.name} ({self.root})",
            "  ----------------------------------------",
            "  subset   | # ids | # images | # cameras",
            "  ----------------------------------------",
        ]
        for split_name, records in rows:
            ids = len({r.pid for r in records})
            cams = len({r.camid for r in records})
            lines.append(f"  {split_name:<8} | {ids:5d} | {len(records):8d} | {cams:9d}")
        lines.append("  ----------------------------------------")
        if self.skipped:
            counts = ", ".join(f"{n} in {folder}" for folder, n in self.skipped.items())
            lines.append(f"  skipped hidden/system files (._*, .DS_Store, Thumbs.db, ...): {counts}")
        return "\n".join(lines)

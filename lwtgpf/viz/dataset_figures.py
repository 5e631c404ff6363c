"""Figures of a dataset on disk: what the synthetic benchmark looks like.

    fig = synthetic_overview_figure("benchmarks/synthetic")
    save_synthetic_overview("benchmarks/synthetic", "docs/images/synthetic_benchmark.png")

Top block: one identity in every camera (the camera shift a re-ID model must see through).
Bottom block: many identities in one camera (what tells people apart once the camera is fixed).
"""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from lwtgpf.data.datasets import MARKET_PATTERN, SPLIT_FOLDERS, parse_market_style_split
from lwtgpf.data.records import DatasetError, Record


def synthetic_overview_figure(dataset_root: str | Path, rows_per_block: int = 2) -> Figure:
    """Crops of a synthetic dataset folder (`<root>/<preset>/` with its meta.json) as a grid.

    Block 1: the identity seen by the most cameras, `rows_per_block` crops per camera (columns).
    Block 2: `rows_per_block * num_cameras` different identities in camera 1, one crop each.
    """
    folder = Path(dataset_root)
    meta = _read_meta(folder)
    num_cameras = meta["num_cameras"]
    camera_names = meta.get("cameras") or [f"camera {c + 1}" for c in range(num_cameras)]
    records = [
        record
        for split_folder in SPLIT_FOLDERS.values()
        for record in parse_market_style_split(folder / split_folder, MARKET_PATTERN, ".jpg", num_cameras)
        if record.pid > 0  # distractors have no identity to show
    ]
    by_pid_cam: dict[int, dict[int, list[Record]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        by_pid_cam[record.pid][record.camid].append(record)
    # the identity seen by the most cameras, with the most crops among those (ties: lowest pid)
    star = max(sorted(by_pid_cam), key=lambda pid: (len(by_pid_cam[pid]), sum(map(len, by_pid_cam[pid].values()))))
    first_camera = 0
    others = [pid for pid in sorted(by_pid_cam) if first_camera in by_pid_cam[pid]][: rows_per_block * num_cameras]

    cols = num_cameras
    fig = Figure(figsize=(1.0 * cols, 2.2 * rows_per_block * 2 + 0.8), dpi=100)
    top, bottom = fig.subfigures(2, 1)
    top.suptitle(f"one identity (pid {star}) in each camera", fontsize=11)
    bottom.suptitle(f"{len(others)} identities in camera {first_camera + 1} ({camera_names[first_camera]})",
                    fontsize=11)

    for block in (top, bottom):
        block.subplots_adjust(left=0.02, right=0.98, top=0.86, bottom=0.01, wspace=0.06, hspace=0.22)
    axes = top.subplots(rows_per_block, cols, squeeze=False)
    for cam in range(cols):
        axes[0, cam].set_title(f"cam {cam + 1}\n{camera_names[cam]}", fontsize=7)
        shots = by_pid_cam[star].get(cam, [])
        # spread over the tracklet (first ... last crop), so the rows show how the pose moves on
        picks = np.linspace(0, len(shots) - 1, rows_per_block).round().astype(int) if shots else []
        for row in range(rows_per_block):
            _show(axes[row, cam], shots[picks[row]].path if shots else None)
    axes = bottom.subplots(rows_per_block, cols, squeeze=False)
    for index, ax in enumerate(axes.flat):
        pid = others[index] if index < len(others) else None
        _show(ax, by_pid_cam[pid][first_camera][0].path if pid is not None else None)
        if pid is not None:
            ax.set_title(f"pid {pid}", fontsize=7)
    return fig


def save_synthetic_overview(dataset_root: str | Path, out_png: str | Path, dpi: int = 100) -> Path:
    """Draw `synthetic_overview_figure(dataset_root)` into `out_png` (folders are created); returns its path."""
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    synthetic_overview_figure(dataset_root).savefig(out, dpi=dpi)
    return out


def _show(ax, path: str | None) -> None:
    """One crop without axes; an empty cell says the person was not seen there."""
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    if path is None:
        ax.text(0.5, 0.5, "not seen", ha="center", va="center", fontsize=7, color="0.5", transform=ax.transAxes)
        return
    with Image.open(path) as image:
        ax.imshow(np.asarray(image.convert("RGB")), interpolation="nearest")


def _read_meta(folder: Path) -> dict:
    path = folder / "meta.json"
    if not path.is_file():
        raise DatasetError(f"{path} is missing: {folder} is not a synthetic dataset (see `lwtgpf synth`)")
    meta = json.loads(path.read_text())
    if not isinstance(meta.get("num_cameras"), int):
        raise DatasetError(f"{path}: expected an integer 'num_cameras', got {meta.get('num_cameras')!r}")
    return meta

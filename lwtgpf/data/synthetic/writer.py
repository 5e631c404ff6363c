"""Plan, draw and write a synthetic benchmark: who is seen where, each crop, the files and `meta.json`.

`plan_dataset` decides every crop without drawing any (identities, which cameras see whom, tracklets
with their poses and framing, queries, frame numbers); `render_crop` draws one; `generate_synthetic`
writes them all in the Market-1501 layout plus a `meta.json` that records the generator version, the
seed and every preset setting. The loader (`lwtgpf.data.datasets`) refuses a folder written by another
generator version, with the command that regenerates it.
"""
from __future__ import annotations

import dataclasses
import io
import json
import multiprocessing
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from lwtgpf.data.datasets import SPLIT_FOLDERS

from . import streams
from .cameras import CameraLook, apply_camera, camera_looks
from .occluders import Occlusion, draw_occluder, random_occlusion
from .people import BodyFrame, Identity, Pose, draw_shadow, paste_person, random_pose, sample_identities
from .presets import SyntheticPreset, resolve_preset
from .scenes import (
    Framing,
    camera_backgrounds,
    draw_bystander,
    draw_neighbour,
    drift_framing,
    random_framing,
    scene_canvas,
)

# Version 2: several backgrounds per camera from scene types shared by the cameras, framing that varies
# per tracklet, neighbours cut by the box edge, wider people. Version 1 (one fixed scene per camera)
# wrote folders the loader now refuses. Version 3: crops stored at 64x32 (presets.py says why); version 2
# folders hold 128x64 crops and are refused too.
GENERATOR_VERSION = 3
GENERATOR_NAME = "lwtgpf.data.synthetic"
SUPERSAMPLE = 2  # crops are drawn at 2x their size and box-filtered down: anti-aliased edges
# The camera records a crop at this multiple of the stored size (its blur, noise and JPEG act there);
# the crop is then stored downsampled, as a re-id benchmark stores its detector boxes (presets.py: why).
RECORD_SCALE = 2
# Stored crops: JPEG at quality 95 without chroma subsampling (the camera's own quality acted at the
# recorded size). Development probes (one seed each, start mAP of the pretrained network on `synthetic`;
# reproduced by editing these constants): 4:2:0 subsampling at 64x32 halves the colour resolution that
# identities are told apart by (15.4-16.3%); quality 100 keeps the camera's pixel noise, which read at 2x
# becomes a camera fingerprint (18.8%); quality 95 4:4:4 gives 25.9%.
STORED_JPEG_QUALITY = 95
TURN_PROB = 0.15  # chance that a crop of a tracklet shows the person turned to another view
MIN_SHOTS_PER_WORKER = 200  # below this a worker process costs more than it saves


@dataclass(frozen=True)
class Shot:
    """One planned crop: who, which camera, how, and where it goes."""

    split: str  # train | query | gallery
    pid: int  # 0 = distractor
    camid: int  # 0-based
    frame: int
    identity: Identity
    pose: Pose
    framing: Framing
    key: tuple[int, ...]  # random-stream key of this crop


def build_cameras(preset: SyntheticPreset, seed: int) -> list[CameraLook]:
    """The preset's cameras with their backgrounds, for a generation seed (preset offset included)."""
    backgrounds = camera_backgrounds(preset.num_cameras, preset.backgrounds_per_camera,
                                     streams.rng(seed, streams.SCENES))
    return camera_looks(preset.num_cameras, seed, backgrounds, preset.camera_shift)


def plan_dataset(preset: SyntheticPreset, seed: int) -> list[Shot]:
    """Every crop of the dataset, without drawing any: identities, camera tracklets, query choice, frames."""
    looks = build_cameras(preset, seed)
    plan_rng = streams.rng(seed, streams.PLAN)
    num_ids = preset.num_train_ids + preset.num_test_ids
    people = sample_identities(num_ids + preset.num_distractors, streams.rng(seed, streams.IDENTITIES))
    pids = plan_rng.permutation(np.arange(1, num_ids + 1))
    train_pids = sorted(int(p) for p in pids[: preset.num_train_ids])
    test_pids = sorted(int(p) for p in pids[preset.num_train_ids:])

    tracklets: list[list[dict[str, Any]]] = []
    for split, split_pids in (("train", train_pids), ("gallery", test_pids)):
        for pid in split_pids:
            n_cams = int(plan_rng.integers(preset.cameras_per_id[0], preset.cameras_per_id[1] + 1))
            cams = sorted(int(c) for c in plan_rng.choice(preset.num_cameras, size=n_cams, replace=False))
            pid_tracklets = [_tracklet(split, pid, cam, people[pid - 1], looks[cam], preset, seed) for cam in cams]
            if split == "gallery":  # test ids: one query per chosen camera, the rest stays in the gallery
                chosen = [t for t in pid_tracklets if plan_rng.random() < preset.query_camera_prob]
                for tracklet in chosen or [pid_tracklets[int(plan_rng.integers(len(pid_tracklets)))]]:
                    tracklet[int(plan_rng.integers(len(tracklet)))]["split"] = "query"
            tracklets += pid_tracklets
    for index in range(preset.num_distractors):
        cam = int(plan_rng.integers(preset.num_cameras))
        rng = streams.rng(seed, streams.TRACKLET, 0, index)
        pose = random_pose(rng, looks[cam].view_probs)
        framing = random_framing(rng, len(looks[cam].backgrounds))
        tracklets.append([dict(split="gallery", pid=0, camid=cam, identity=people[num_ids + index], pose=pose,
                               framing=framing, key=(0, cam, index))])

    # frame numbers grow per camera: a few frames apart inside a tracklet, further between tracklets
    next_frame = [int(plan_rng.integers(100, 2000)) for _ in range(preset.num_cameras)]
    shots = []
    for tracklet in tracklets:
        cam = tracklet[0]["camid"]
        for crop in tracklet:
            shots.append(Shot(frame=next_frame[cam], **crop))
            next_frame[cam] += int(plan_rng.integers(4, 25))
        next_frame[cam] += int(plan_rng.integers(50, 600))
    return shots


def _tracklet(split: str, pid: int, cam: int, person: Identity, look: CameraLook,
              preset: SyntheticPreset, seed: int) -> list[dict[str, Any]]:
    """Consecutive crops of one person in one camera: the pose advances, the box jitters, the scene slides
    by as the person walks past one of the camera's backgrounds, and now and then the person turns."""
    rng = streams.rng(seed, streams.TRACKLET, pid, cam)
    length = int(rng.integers(preset.crops_per_camera[0], preset.crops_per_camera[1] + 1))
    start = random_pose(rng, look.view_probs)
    framing = random_framing(rng, len(look.backgrounds))
    crops = []
    for index in range(length):
        turned = random_pose(rng, look.view_probs).view if rng.random() < TURN_PROB else start.view
        pose = dataclasses.replace(
            start,
            view=turned,
            phase=start.phase + index * float(rng.uniform(0.7, 1.5)),
            x_shift=float(np.clip(start.x_shift + rng.normal(0, 0.025), -0.12, 0.12)),
            y_shift=float(np.clip(start.y_shift + rng.normal(0, 0.1), 0.0, 1.0)),
            fill=float(np.clip(start.fill + rng.normal(0, 0.03), 0.82, 1.0)),
        )
        if index:
            framing = drift_framing(framing, rng)
        crops.append(dict(split=split, pid=pid, camid=cam, identity=person, pose=pose, framing=framing,
                          key=(pid, cam, index)))
    return crops


def render_crop(
    identity: Identity,
    camera: CameraLook,
    pose: Pose,
    rng: np.random.Generator,
    size: tuple[int, int] = (128, 64),
    occlusion: Occlusion | None = None,
    framing: Framing | None = None,
    bystander_prob: float = 0.3,
    neighbour_prob: float = 0.25,
) -> Image.Image:
    """One pedestrian crop as the camera records it: an RGB image of `size` = (height, width).

    `framing` picks the window of the camera's backgrounds (None: drawn from `rng`; a camera without
    backgrounds gets the first of its scene types, see `build_cameras`). `rng` decides only what varies
    from shot to shot (other pedestrians, a little light change, sensor noise); who, how, where and
    what occludes are the arguments.
    """
    height, width = size
    canvas_h, canvas_w = height * SUPERSAMPLE, width * SUPERSAMPLE
    backgrounds = camera.backgrounds or camera_backgrounds(1, 1, np.random.default_rng(0))[0]
    if framing is None:
        framing = random_framing(rng, len(backgrounds))
    canvas = scene_canvas(backgrounds[framing.background], framing, canvas_h, canvas_w)
    if rng.random() < bystander_prob:
        draw_bystander(canvas, framing.horizon, camera.view_probs, camera.light, rng)
    if rng.random() < neighbour_prob:
        draw_neighbour(canvas, camera.view_probs, camera.light, rng)
    body = BodyFrame.place(identity, pose, canvas_h, canvas_w)
    draw_shadow(canvas, body)
    paste_person(canvas, identity, pose, body, camera.light)
    if occlusion is not None:
        draw_occluder(canvas, occlusion, camera.light)
    crop = canvas.resize((width, height), Image.Resampling.BOX)
    return apply_camera(crop, camera, rng)


def crop_filename(pid: int, camid: int, frame: int) -> str:
    """Market-1501 style name: 4-digit pid, 1-based camera, sequence, 6-digit frame, box index."""
    return f"{pid:04d}_c{camid + 1}s{1 + frame // 1_000_000}_{frame % 1_000_000:06d}_01.jpg"


def generate_synthetic(
    root: str | Path, preset: str | SyntheticPreset = "synthetic", seed: int = 0, overwrite: bool = False,
    workers: int = 1, **overrides: Any,
) -> Path:
    """Draw and write the benchmark to `<root>/<preset name>/`; returns that folder.

    `overrides` replace preset fields (`num_train_ids=12, num_cameras=3`, ...). `workers` > 1 draws in
    that many processes (the files are the same bytes whatever the number). An existing non-empty
    folder is kept unless `overwrite=True`, and even then only a folder this generator wrote (it has
    our meta.json) is replaced. Files are first written to a sibling `.partial` folder, so an
    interrupted run never leaves a half dataset under the real name.
    """
    spec = resolve_preset(preset, **overrides)
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    folder = Path(root) / spec.name
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        if not overwrite:
            raise FileExistsError(
                f"{folder} already exists and is not empty; pass overwrite=True (CLI: --overwrite) to replace it"
            )
        if not written_by_us(folder):
            raise FileExistsError(
                f"{folder} exists but has no synthetic meta.json with a 'generator' key; refusing to delete "
                "a folder this generator did not write"
            )
    partial = folder.with_name(f".{spec.name}.partial")
    if partial.exists():
        shutil.rmtree(partial)
    for sub in SPLIT_FOLDERS.values():
        (partial / sub).mkdir(parents=True)

    seed += spec.seed_offset
    looks = build_cameras(spec, seed)
    shots = plan_dataset(spec, seed)
    workers = max(1, min(int(workers), len(shots) // MIN_SHOTS_PER_WORKER))
    if workers == 1:
        _write_shots(shots, spec, seed, looks, partial)
    else:  # every file depends only on its shot: the bytes do not depend on the number of workers
        chunks = [shots[i::workers] for i in range(workers)]
        context = multiprocessing.get_context("spawn" if sys.platform == "darwin" else "fork")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            list(pool.map(_write_shots, chunks, [spec] * workers, [seed] * workers, [looks] * workers,
                          [partial] * workers))
    counts = {split: sum(shot.split == split for shot in shots) for split in SPLIT_FOLDERS}

    meta = {
        "generator": GENERATOR_NAME,
        "generator_version": GENERATOR_VERSION,
        "preset": spec.name,
        "seed": seed,
        "num_cameras": spec.num_cameras,
        "num_train_ids": spec.num_train_ids,
        "num_test_ids": spec.num_test_ids,
        "num_distractors": spec.num_distractors,
        "height": spec.height,
        "width": spec.width,
        "num_images": counts,
        "cameras": [look.name for look in looks],
        "backgrounds": [[f"{bg.scene}/{bg.variant}" for bg in look.backgrounds] for look in looks],
        "settings": dataclasses.asdict(spec),
    }
    (partial / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    if folder.exists():
        shutil.rmtree(folder)
    partial.rename(folder)
    return folder


def _write_shots(shots: list[Shot], spec: SyntheticPreset, seed: int, looks: list[CameraLook], folder: Path) -> None:
    """Draw and write these crops into `folder` (one worker's share)."""
    for shot in shots:
        occlusion = None
        occlusion_rng = streams.rng(seed, streams.OCCLUSION, *shot.key)
        if occlusion_rng.random() < spec.occlusion_prob(shot.split):
            occlusion = random_occlusion(occlusion_rng, spec.occlusion_area)
        recorded = render_crop(shot.identity, looks[shot.camid], shot.pose, streams.rng(seed, streams.CROP, *shot.key),
                               size=(spec.height * RECORD_SCALE, spec.width * RECORD_SCALE), occlusion=occlusion,
                               framing=shot.framing, bystander_prob=spec.bystander_prob,
                               neighbour_prob=spec.neighbour_prob)
        path = folder / SPLIT_FOLDERS[shot.split] / crop_filename(shot.pid, shot.camid, shot.frame)
        stored_crop(recorded, looks[shot.camid], (spec.height, spec.width)).save(
            path, format="JPEG", quality=STORED_JPEG_QUALITY, subsampling=0)


def stored_crop(recorded: Image.Image, look: CameraLook, size: tuple[int, int]) -> Image.Image:
    """The crop as the benchmark stores it: the camera's JPEG compression at the recorded size, then
    downsampled (bicubic, antialiased) to `size` = (height, width); saved by the caller as JPEG with
    STORED_JPEG_QUALITY and no chroma subsampling."""
    buffer = io.BytesIO()
    recorded.save(buffer, format="JPEG", quality=look.jpeg_quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return decoded.convert("RGB").resize((size[1], size[0]), Image.Resampling.BICUBIC)


def ensure_synthetic(root: str | Path, preset: str = "synthetic", seed: int = 0, workers: int = 1,
                     **overrides: Any) -> str:
    """Generate `<root>/<preset>/` (`seed`, preset `overrides`) unless a folder of the current generator
    version is there.

    A folder written by an older version of this generator is replaced (it is a function of its
    seed: nothing is lost). Returns what happened: "kept", "generated" or "regenerated (...)".
    """
    folder = Path(root) / resolve_preset(preset).name
    meta_path = folder / "meta.json"
    if not meta_path.exists():
        generate_synthetic(root, preset, seed=seed, workers=workers, **overrides)
        return "generated"
    try:
        meta = json.loads(meta_path.read_text())
    except ValueError:
        return "kept"  # the loader names what is wrong with it
    if isinstance(meta, dict) and "generator" in meta and meta.get("generator_version") != GENERATOR_VERSION:
        generate_synthetic(root, preset, seed=seed, overwrite=True, workers=workers, **overrides)
        return f"regenerated (it was from generator version {meta.get('generator_version')})"
    return "kept"


def written_by_us(folder: Path) -> bool:
    """Whether `folder` holds a meta.json of this generator (any version): only such a folder is replaced."""
    try:
        return "generator" in json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return False

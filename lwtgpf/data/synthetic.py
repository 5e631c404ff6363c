"""The built-in synthetic re-ID benchmark: procedurally drawn pedestrians seen by cameras that disagree.

Nothing is downloaded and nothing is learned: every crop is drawn with PIL and numpy from a seed, and
written as JPEG in the Market-1501 layout (`bounding_box_train/`, `query/`, `bounding_box_test/`, file
names like `0002_c1s1_000451_01.jpg`) plus a small `meta.json`, so the standard loader reads it:

    folder = generate_synthetic("benchmarks", preset="synthetic", seed=0)   # -> benchmarks/synthetic
    ds = build_dataset("synthetic", root="benchmarks")

What makes it a re-ID problem rather than a colour-matching one:
- An identity is a combination of attributes (garment colours and patterns, hair, skin, shoes, bags,
  hat, body proportions) drawn from small palettes, so many people share any single attribute and only
  the combination, often a single body part, tells two of them apart. Some attributes depend on the
  view (a backpack is seen from behind, a chest logo from the front).
- A camera is a strong, consistent appearance shift (colour cast, exposure, blur, resolution loss,
  noise, JPEG quality, its own background and its own mix of front/back/side views). Generic features
  group crops by camera before they group them by person: the effect camera-aware proxies exist to fix.
- Crops of one person in one camera form a tracklet: the walking pose advances, the box jitters like a
  detector's, the person sometimes turns.
- The occluded preset hides 20-50% of most query crops behind cars, pillars, bushes or other people.

Determinism: every random draw comes from a numpy Generator seeded by (seed, stream, keys), never from
global state, and JPEG encoding is deterministic, so the same seed writes byte-identical files. Each
crop's occluder has its own stream, so `synthetic` and `synthetic_occluded` with one seed hold the same
people in the same poses and differ only by the occluders.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from lwtgpf.data.datasets import SPLIT_FOLDERS

GENERATOR_VERSION = 1
SUPERSAMPLE = 2  # people are drawn at 2x the crop size and box-filtered down: anti-aliased edges
BYSTANDER_PROB = 0.3  # chance that someone further away walks in the background of a crop

RGB = tuple[int, int, int]

# --- palettes: small on purpose, so single attributes are shared by many identities -------------------
UPPER_COLOURS: dict[str, RGB] = {
    "red": (185, 35, 40), "navy": (35, 45, 95), "white": (232, 232, 226), "black": (32, 32, 34),
    "grey": (128, 128, 132), "green": (40, 125, 65), "yellow": (228, 192, 45), "sky": (110, 168, 222),
    "pink": (226, 132, 172), "orange": (232, 122, 35),
}
LOWER_COLOURS: dict[str, RGB] = {
    "black": (30, 30, 33), "denim": (52, 72, 122), "grey": (112, 112, 118), "khaki": (176, 156, 110),
    "white": (226, 226, 220), "brown": (102, 66, 42), "olive": (86, 96, 52),
}
SKIN_TONES: dict[str, RGB] = {
    "pale": (246, 218, 194), "light": (228, 188, 152), "tan": (196, 146, 106), "brown": (150, 102, 72),
    "dark": (98, 66, 48),
}
HAIR_COLOURS: dict[str, RGB] = {
    "black": (24, 20, 20), "dark_brown": (62, 42, 28), "brown": (118, 78, 42), "blonde": (216, 182, 112),
    "grey": (168, 168, 162), "auburn": (142, 58, 32),
}
SHOE_COLOURS: dict[str, RGB] = {
    "black": (22, 22, 24), "white": (236, 236, 232), "brown": (92, 58, 34), "red": (176, 36, 36),
    "grey": (120, 120, 124),
}
BAG_COLOURS: dict[str, RGB] = {
    "black": (34, 34, 38), "brown": (110, 72, 40), "red": (168, 40, 44), "navy": (40, 52, 100),
    "beige": (206, 188, 150),
}
OCCLUDER_COLOURS: tuple[RGB, ...] = (
    (196, 30, 36), (230, 230, 232), (30, 30, 36), (60, 90, 160), (150, 150, 156), (210, 180, 60),
)

UPPER_PATTERNS = {"plain": 0.45, "stripes": 0.2, "checks": 0.15, "logo": 0.2}
LOWER_PATTERNS = {"plain": 0.75, "stripes": 0.12, "checks": 0.13}
LOWER_STYLES = {"trousers": 0.65, "shorts": 0.2, "skirt": 0.15}
HAIR_STYLES = {"short": 0.4, "long": 0.25, "buzz": 0.15, "ponytail": 0.1, "bun": 0.1}
VIEWS = ("front", "back", "side")
BACKGROUND_TEXTURES = ("bricks", "windows", "foliage", "tiles", "columns", "asphalt", "gradient")


@dataclass(frozen=True)
class Identity:
    """One person: the attribute combination that every crop of this pid shows (colours are palette names)."""

    upper_colour: str
    upper_pattern: str  # plain | stripes | checks | logo (the logo is on the chest: front view only)
    upper_accent: str  # second colour of stripes / checks / logo
    long_sleeves: bool
    lower_colour: str
    lower_style: str  # trousers | shorts | skirt
    lower_pattern: str  # plain | stripes (vertical) | checks
    lower_accent: str
    skin: str
    hair_colour: str
    hair_style: str  # short | long | buzz | ponytail | bun
    shoes: str
    backpack: str | None  # bag colour, or None
    shoulder_bag: str | None
    hat: str | None  # cap colour (an upper-garment colour), or None
    build: float  # width factor of shoulders, hips and limbs
    leg_ratio: float  # leg length / torso length
    head_scale: float
    stature: float  # how much of the detector box the person fills

    def attributes(self) -> tuple:
        """The discrete attributes; no two identities of one dataset share all of them."""
        values = (getattr(self, f.name) for f in dataclasses.fields(self))
        return tuple(value for value in values if not isinstance(value, float))


@dataclass(frozen=True)
class CameraLook:
    """How one camera renders the world: a consistent shift applied to every crop it sees."""

    name: str
    gains: tuple[float, float, float]  # per-channel colour cast
    brightness: float  # added after contrast, in [0, 1] units
    contrast: float  # around mid-grey
    gamma: float  # > 1 darkens mid-tones
    saturation: float  # 1 = unchanged, 0 = grey
    blur: float  # Gaussian radius in pixels of a 64-pixel-wide crop (scaled with the crop width)
    downscale: float  # resolution loss: the crop is down- and up-sampled by this factor
    noise: float  # std of sensor noise, [0, 1] units
    jpeg_quality: int
    view_probs: tuple[float, float, float]  # probability of front / back / side views
    wall: RGB  # background above the floor line
    floor: RGB
    texture: str  # bricks | windows | foliage | tiles | columns | asphalt | gradient
    texture_colour: RGB
    horizon: float  # floor line height as a fraction of the crop height from the top
    light: float = 0.0  # side light on people: > 0 brightens their image-right side, < 0 the left
    background_seed: int = 0  # set by `camera_looks`; the background strip is a function of the look

    def __post_init__(self) -> None:
        if abs(sum(self.view_probs) - 1.0) > 1e-6:
            raise ValueError(f"camera look {self.name!r}: view_probs {self.view_probs} must sum to 1")
        if self.texture not in BACKGROUND_TEXTURES:
            raise ValueError(f"camera look {self.name!r}: unknown texture {self.texture!r}; "
                             f"expected one of {BACKGROUND_TEXTURES}")


# Hand-designed so that any two cameras differ clearly; a preset uses the first `num_cameras` of them.
CAMERA_LOOKS: tuple[CameraLook, ...] = (
    CameraLook("daylight", gains=(1.04, 1.0, 0.95), brightness=0.04, contrast=1.1, gamma=1.0, saturation=1.05,
               blur=0.0, downscale=1.0, noise=0.012, jpeg_quality=92, view_probs=(0.5, 0.3, 0.2),
               wall=(168, 96, 78), floor=(150, 146, 140), texture="bricks", texture_colour=(206, 200, 190),
               horizon=0.74, light=0.18),
    CameraLook("blue shade", gains=(0.8, 0.92, 1.22), brightness=-0.03, contrast=0.9, gamma=1.05, saturation=0.85,
               blur=0.5, downscale=0.8, noise=0.02, jpeg_quality=85, view_probs=(0.2, 0.6, 0.2),
               wall=(120, 140, 160), floor=(90, 96, 104), texture="windows", texture_colour=(60, 84, 110),
               horizon=0.8, light=-0.1),
    CameraLook("warm indoor", gains=(1.25, 1.0, 0.72), brightness=0.0, contrast=0.95, gamma=0.9, saturation=1.0,
               blur=0.3, downscale=0.9, noise=0.03, jpeg_quality=88, view_probs=(0.3, 0.2, 0.5),
               wall=(222, 206, 170), floor=(176, 150, 112), texture="tiles", texture_colour=(150, 120, 84),
               horizon=0.82, light=0.08),
    CameraLook("dim night", gains=(0.95, 0.95, 1.1), brightness=-0.12, contrast=0.85, gamma=1.35, saturation=0.7,
               blur=0.6, downscale=0.55, noise=0.05, jpeg_quality=75, view_probs=(0.4, 0.4, 0.2),
               wall=(64, 66, 80), floor=(46, 46, 52), texture="columns", texture_colour=(92, 94, 110),
               horizon=0.78, light=-0.2),
    CameraLook("green fluorescent", gains=(0.88, 1.16, 0.86), brightness=0.02, contrast=1.2, gamma=1.0,
               saturation=1.0, blur=0.8, downscale=0.75, noise=0.025, jpeg_quality=85, view_probs=(0.6, 0.1, 0.3),
               wall=(66, 120, 58), floor=(120, 112, 100), texture="foliage", texture_colour=(40, 90, 40),
               horizon=0.7, light=0.12),
    CameraLook("washed out", gains=(1.0, 1.0, 1.02), brightness=0.14, contrast=0.7, gamma=0.8, saturation=0.6,
               blur=0.4, downscale=0.9, noise=0.015, jpeg_quality=90, view_probs=(0.2, 0.3, 0.5),
               wall=(214, 214, 210), floor=(196, 196, 190), texture="gradient", texture_colour=(240, 240, 236),
               horizon=0.76, light=0.05),
    CameraLook("magenta cctv", gains=(1.16, 0.84, 1.12), brightness=0.0, contrast=1.0, gamma=1.1, saturation=0.7,
               blur=0.5, downscale=0.45, noise=0.04, jpeg_quality=60, view_probs=(0.35, 0.35, 0.3),
               wall=(100, 100, 104), floor=(74, 74, 78), texture="asphalt", texture_colour=(228, 220, 120),
               horizon=0.6, light=-0.12),
    CameraLook("high contrast", gains=(1.1, 0.96, 0.9), brightness=-0.02, contrast=1.4, gamma=1.2, saturation=1.15,
               blur=0.0, downscale=1.0, noise=0.02, jpeg_quality=90, view_probs=(0.45, 0.45, 0.1),
               wall=(140, 60, 50), floor=(108, 98, 92), texture="bricks", texture_colour=(90, 40, 34),
               horizon=0.84, light=0.25),
    CameraLook("cold overcast", gains=(0.92, 1.0, 1.08), brightness=0.05, contrast=0.8, gamma=1.0, saturation=0.8,
               blur=0.7, downscale=0.65, noise=0.03, jpeg_quality=80, view_probs=(0.3, 0.3, 0.4),
               wall=(176, 184, 192), floor=(120, 126, 130), texture="windows", texture_colour=(110, 124, 140),
               horizon=0.72, light=0.06),
)


@dataclass(frozen=True)
class SyntheticPreset:
    """Sizes and difficulty of one synthetic benchmark. Ranges are inclusive (low, high)."""

    name: str
    num_train_ids: int = 100
    num_test_ids: int = 100
    num_cameras: int = 6
    cameras_per_id: tuple[int, int] = (2, 6)
    crops_per_camera: tuple[int, int] = (2, 5)  # >= 2: a query leaves a gallery crop in its camera
    query_camera_prob: float = 0.6  # each (test id, camera) gives a query crop with this probability
    num_distractors: int = 40  # pid 0 crops of people seen nowhere else, gallery only
    height: int = 128
    width: int = 64
    # chance that a crop of each split is partly hidden by an occluder
    train_occlusion: float = 0.0
    query_occlusion: float = 0.0
    gallery_occlusion: float = 0.0
    occlusion_area: tuple[float, float] = (0.2, 0.5)  # fraction of the crop an occluder covers
    # added to the generation seed: a preset with another offset draws other people (and camera jitter)
    seed_offset: int = 0

    def __post_init__(self) -> None:
        problems = []
        if self.num_train_ids < 1 or self.num_test_ids < 1:
            problems.append(f"num_train_ids and num_test_ids must be >= 1, got {self.num_train_ids}, "
                            f"{self.num_test_ids}")
        if self.num_train_ids + self.num_test_ids > 9999:
            problems.append("num_train_ids + num_test_ids must fit 4-digit pids (<= 9999)")
        if not 2 <= self.num_cameras <= len(CAMERA_LOOKS):
            problems.append(f"num_cameras must be in 2..{len(CAMERA_LOOKS)}, got {self.num_cameras}")
        low, high = self.cameras_per_id
        if not 2 <= low <= high <= self.num_cameras:
            problems.append(f"cameras_per_id must satisfy 2 <= low <= high <= num_cameras, got "
                            f"{self.cameras_per_id}")
        low, high = self.crops_per_camera
        if not 2 <= low <= high:
            problems.append(f"crops_per_camera must satisfy 2 <= low <= high, got {self.crops_per_camera}")
        if not 0.0 < self.query_camera_prob <= 1.0:
            problems.append(f"query_camera_prob must be in (0, 1], got {self.query_camera_prob}")
        if self.num_distractors < 0:
            problems.append(f"num_distractors must be >= 0, got {self.num_distractors}")
        if self.height < 32 or self.width < 16:
            problems.append(f"crops must be at least 32x16, got {self.height}x{self.width}")
        for split in SPLIT_FOLDERS:
            if not 0.0 <= self.occlusion_prob(split) <= 1.0:
                problems.append(f"{split}_occlusion must be in [0, 1], got {self.occlusion_prob(split)}")
        if not 0.0 < self.occlusion_area[0] <= self.occlusion_area[1] < 1.0:
            problems.append(f"occlusion_area must satisfy 0 < low <= high < 1, got {self.occlusion_area}")
        if problems:
            raise ValueError(f"synthetic preset {self.name!r}: " + "; ".join(problems))

    def occlusion_prob(self, split: str) -> float:
        return getattr(self, f"{split}_occlusion")


SYNTHETIC_PRESETS: dict[str, SyntheticPreset] = {
    # Trains in minutes on a laptop CPU: ~100 + 100 identities, 6 cameras, 128x64 crops.
    "synthetic": SyntheticPreset("synthetic"),
    # The same people and poses as "synthetic" (same seed), but every query and a tenth of the rest is
    # partly hidden, like Occluded-Duke.
    "synthetic_occluded": SyntheticPreset(
        "synthetic_occluded", train_occlusion=0.1, query_occlusion=1.0, gallery_occlusion=0.1
    ),
    # Labelled people who are not in "synthetic" (other draws), seen by the same six kinds of camera: the
    # stand-in for the labelled data real runs pretrain on (`classifier` method, then LWTGPF on "synthetic").
    "synthetic_source": SyntheticPreset("synthetic_source", num_train_ids=150, num_test_ids=50, seed_offset=1000),
    # For GPU runs: 500 + 500 identities, 8 cameras, 256x128 crops.
    "synthetic_large": SyntheticPreset(
        "synthetic_large", num_train_ids=500, num_test_ids=500, num_cameras=8, cameras_per_id=(2, 6),
        num_distractors=200, height=256, width=128,
    ),
}


# --- random streams: every draw is keyed, so one part of the dataset never shifts another ---------------
_STREAM_IDENTITIES, _STREAM_CAMERAS, _STREAM_PLAN, _STREAM_TRACKLET, _STREAM_CROP, _STREAM_OCCLUSION = range(1, 7)


def _rng(seed: int, stream: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream, *keys])


def _pick(rng: np.random.Generator, weights: dict[str, float]) -> str:
    names = list(weights)
    probs = np.array([weights[n] for n in names])
    return names[rng.choice(len(names), p=probs / probs.sum())]


def _pick_other(rng: np.random.Generator, palette: dict[str, RGB], not_this: str) -> str:
    names = [n for n in palette if n != not_this]
    return names[rng.integers(len(names))]


def random_identity(rng: np.random.Generator) -> Identity:
    """One person drawn from the palettes; attribute frequencies roughly follow street scenes."""
    upper = list(UPPER_COLOURS)[rng.integers(len(UPPER_COLOURS))]
    lower = list(LOWER_COLOURS)[rng.integers(len(LOWER_COLOURS))]
    return Identity(
        upper_colour=upper,
        upper_pattern=_pick(rng, UPPER_PATTERNS),
        upper_accent=_pick_other(rng, UPPER_COLOURS, upper),
        long_sleeves=bool(rng.random() < 0.55),
        lower_colour=lower,
        lower_style=_pick(rng, LOWER_STYLES),
        lower_pattern=_pick(rng, LOWER_PATTERNS),
        lower_accent=_pick_other(rng, UPPER_COLOURS, lower),
        skin=list(SKIN_TONES)[rng.integers(len(SKIN_TONES))],
        hair_colour=list(HAIR_COLOURS)[rng.integers(len(HAIR_COLOURS))],
        hair_style=_pick(rng, HAIR_STYLES),
        shoes=list(SHOE_COLOURS)[rng.integers(len(SHOE_COLOURS))],
        backpack=list(BAG_COLOURS)[rng.integers(len(BAG_COLOURS))] if rng.random() < 0.3 else None,
        shoulder_bag=list(BAG_COLOURS)[rng.integers(len(BAG_COLOURS))] if rng.random() < 0.25 else None,
        hat=list(UPPER_COLOURS)[rng.integers(len(UPPER_COLOURS))] if rng.random() < 0.15 else None,
        build=float(rng.uniform(0.85, 1.2)),
        leg_ratio=float(rng.uniform(1.1, 1.5)),
        head_scale=float(rng.uniform(0.9, 1.1)),
        stature=float(rng.uniform(0.93, 1.03)),
    )


def sample_identities(count: int, rng: np.random.Generator) -> list[Identity]:
    """`count` identities whose discrete attribute combinations are all different."""
    identities, seen = [], set()
    while len(identities) < count:
        person = random_identity(rng)
        if person.attributes() not in seen:
            seen.add(person.attributes())
            identities.append(person)
    return identities


def camera_looks(num_cameras: int, seed: int) -> list[CameraLook]:
    """The first `num_cameras` looks, with a small seed-dependent jitter and their background seeds."""
    if not 1 <= num_cameras <= len(CAMERA_LOOKS):
        raise ValueError(f"num_cameras must be in 1..{len(CAMERA_LOOKS)}, got {num_cameras}")
    looks = []
    for camid, look in enumerate(CAMERA_LOOKS[:num_cameras]):
        rng = _rng(seed, _STREAM_CAMERAS, camid)
        gains = tuple(float(g * rng.uniform(0.96, 1.04)) for g in look.gains)
        looks.append(dataclasses.replace(
            look, gains=gains, brightness=float(look.brightness + rng.uniform(-0.02, 0.02)),
            background_seed=int(rng.integers(2**31)),
        ))
    return looks


# --- one crop: pose, occluder, and the drawing ----------------------------------------------------------
@dataclass(frozen=True)
class Pose:
    """Where and how the person stands in the box."""

    view: str  # front | back | side
    facing: int  # +1 walks to the right, -1 to the left (side view)
    phase: float  # walking phase in radians: legs and arms swing with sin(phase)
    x_shift: float  # horizontal offset of the body centre, fraction of crop width
    y_shift: float  # in [0, 1]: where the spare vertical room goes (0 = person at the top)
    fill: float  # person height / crop height before the identity's stature

    def __post_init__(self) -> None:
        if self.view not in VIEWS:
            raise ValueError(f"unknown view {self.view!r}; expected one of {VIEWS}")


def random_pose(rng: np.random.Generator, view_probs: tuple[float, float, float] = (0.4, 0.3, 0.3)) -> Pose:
    return Pose(
        view=VIEWS[rng.choice(3, p=view_probs)],
        facing=int(rng.choice([-1, 1])),
        phase=float(rng.uniform(0, 2 * math.pi)),
        x_shift=float(rng.uniform(-0.07, 0.07)),
        y_shift=float(rng.uniform(0.2, 0.8)),
        fill=float(rng.uniform(0.84, 0.96)),
    )


@dataclass(frozen=True)
class Occlusion:
    """Something between the camera and the person, covering about `area` of the crop."""

    kind: str  # car | pillar | bush | person
    area: float
    position: float  # in [0, 1]: which side / how far across the occluder sits
    colour: RGB
    person: Identity | None = None  # kind == "person": who walks in front
    pose: Pose | None = None


def random_occlusion(rng: np.random.Generator, area_range: tuple[float, float] = (0.2, 0.5)) -> Occlusion:
    kind = ("car", "pillar", "bush", "person")[rng.integers(4)]
    area = float(rng.uniform(*area_range))
    colour = OCCLUDER_COLOURS[rng.integers(len(OCCLUDER_COLOURS))]
    position = float(rng.random())
    if kind != "person":
        return Occlusion(kind, area, position, colour)
    pose = dataclasses.replace(random_pose(rng), fill=float(rng.uniform(1.0, 1.15)), y_shift=0.3)
    return Occlusion(kind, area, position, colour, random_identity(rng), pose)


def render_crop(
    identity: Identity,
    camera: CameraLook,
    pose: Pose,
    rng: np.random.Generator,
    size: tuple[int, int] = (128, 64),
    occlusion: Occlusion | None = None,
) -> Image.Image:
    """One pedestrian crop as the camera records it: an RGB image of `size` = (height, width).

    `rng` decides only what varies from shot to shot in a camera (which part of the scene is behind
    the person, a little light change, sensor noise); who, how and what occludes are the arguments.
    """
    height, width = size
    canvas_h, canvas_w = height * SUPERSAMPLE, width * SUPERSAMPLE
    strip = _background_strip(camera, canvas_h, canvas_w)
    left = int(rng.integers(0, strip.width - canvas_w + 1))
    canvas = strip.crop((left, 0, left + canvas_w, canvas_h))
    if rng.random() < BYSTANDER_PROB:
        _draw_bystander(canvas, camera, rng)
    body = _BodyFrame.place(identity, pose, canvas_h, canvas_w)
    _draw_shadow(canvas, body)
    _paste_person(canvas, identity, pose, body, camera.light)
    if occlusion is not None:
        _draw_occluder(canvas, occlusion, camera.light)
    crop = canvas.resize((width, height), Image.Resampling.BOX)
    return _apply_camera(crop, camera, rng)


def _apply_camera(crop: Image.Image, look: CameraLook, rng: np.random.Generator) -> Image.Image:
    """Resolution loss, blur, colour cast, exposure and sensor noise of one camera."""
    width, height = crop.size
    if look.downscale < 1.0:
        small = (max(8, round(width * look.downscale)), max(16, round(height * look.downscale)))
        crop = crop.resize(small, Image.Resampling.BILINEAR).resize((width, height), Image.Resampling.BILINEAR)
    if look.blur > 0:
        crop = crop.filter(ImageFilter.GaussianBlur(look.blur * width / 64))
    pixels = np.asarray(crop, dtype=np.float32) / 255.0  # (H, W, 3)
    grey = pixels.mean(axis=2, keepdims=True)
    pixels = grey + (pixels - grey) * look.saturation
    pixels = pixels * np.array(look.gains, dtype=np.float32)
    exposure = look.brightness + rng.uniform(-0.04, 0.04)  # light changes a little between shots
    pixels = (pixels - 0.5) * look.contrast + 0.5 + exposure
    pixels = np.clip(pixels, 0.0, 1.0) ** look.gamma
    pixels = pixels + look.noise * rng.standard_normal(pixels.shape, dtype=np.float32)
    return Image.fromarray(np.round(np.clip(pixels, 0.0, 1.0) * 255).astype(np.uint8))


# --- the scene behind the person: one wide strip per camera, crops take a window of it -------------------
@functools.lru_cache(maxsize=32)
def _background_strip(look: CameraLook, height: int, width: int) -> Image.Image:
    """The camera's scene, 4 crops wide: wall with its texture above the floor line, floor below."""
    rng = np.random.default_rng(look.background_seed)
    strip_w = width * 4
    horizon = int(look.horizon * height)
    strip = Image.new("RGB", (strip_w, height), look.wall)
    draw = ImageDraw.Draw(strip)
    unit = height / 100  # texture sizes in percent of the crop height
    tex = look.texture_colour
    if look.texture == "bricks":
        rows = int(horizon / (6 * unit)) + 1
        for row in range(rows):
            y = row * 6 * unit
            offset = (row % 2) * 7 * unit
            x = -offset
            while x < strip_w:
                shade = _jitter(look.wall, rng, 14)
                draw.rectangle((x + unit * 0.6, y + unit * 0.6, x + 14 * unit, y + 6 * unit), fill=shade)
                x += 14 * unit
            draw.line((0, y, strip_w, y), fill=tex, width=max(1, int(unit * 0.8)))
    elif look.texture == "windows":
        x = rng.uniform(0, 10) * unit
        while x < strip_w:
            w = rng.uniform(14, 22) * unit
            for top in np.arange(6 * unit, horizon - 12 * unit, 24 * unit):
                draw.rectangle((x, top, x + w, top + 16 * unit), fill=_jitter(tex, rng, 10))
                draw.line((x + w / 2, top, x + w / 2, top + 16 * unit), fill=look.wall, width=max(1, int(unit)))
            x += w + rng.uniform(8, 14) * unit
    elif look.texture == "foliage":
        for _ in range(int(strip_w * horizon / (40 * unit * unit))):
            cx, cy, r = rng.uniform(0, strip_w), rng.uniform(0, horizon), rng.uniform(3, 8) * unit
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=_jitter(tex, rng, 30))
    elif look.texture == "columns":
        x = 0.0
        while x < strip_w:
            w = rng.uniform(8, 16) * unit
            draw.rectangle((x, 0, x + w, horizon), fill=tex)
            draw.rectangle((x + w * 0.75, 0, x + w, horizon), fill=_shade(tex, 0.75))
            x += w + rng.uniform(20, 40) * unit
    elif look.texture == "gradient":
        column = np.linspace(0, 1, horizon)[:, None, None]
        sky = np.array(tex)[None, None, :] * (1 - column) + np.array(look.wall)[None, None, :] * column
        strip.paste(Image.fromarray(np.broadcast_to(sky, (horizon, strip_w, 3)).astype(np.uint8)), (0, 0))
    draw.rectangle((0, horizon, strip_w, height), fill=look.floor)
    if look.texture == "tiles":
        for y in np.arange(horizon, height, 7 * unit):
            draw.line((0, y, strip_w, y), fill=tex, width=max(1, int(unit * 0.7)))
        for x in np.arange(0, strip_w, 12 * unit):
            draw.line((x, horizon, x, height), fill=tex, width=max(1, int(unit * 0.7)))
        draw.rectangle((0, horizon - 8 * unit, strip_w, horizon), fill=tex)  # skirting board
    elif look.texture == "asphalt":
        for x in np.arange(rng.uniform(0, 20) * unit, strip_w, 48 * unit):
            stripe = [(x, horizon), (x + 2 * unit, horizon), (x + 12 * unit, height), (x + 8 * unit, height)]
            draw.polygon(stripe, fill=tex)  # a parking-bay line, in perspective
    draw.line((0, horizon, strip_w, horizon), fill=_shade(look.floor, 0.7), width=max(1, int(unit)))
    # fixed grain, so the wall is not flat paint; the sensor noise comes later, per shot
    grain = rng.normal(0, 6, size=(height, strip_w, 1))
    pixels = np.clip(np.asarray(strip, dtype=np.float32) + grain, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels)


def _jitter(colour: RGB, rng: np.random.Generator, amount: float) -> RGB:
    """`colour` shifted by the same random amount in [-amount, amount] on every channel."""
    shift = rng.uniform(-amount, amount)
    return tuple(int(np.clip(c + shift, 0, 255)) for c in colour)  # type: ignore[return-value]


# --- the person ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _BodyFrame:
    """Key heights and widths of one drawn person, in canvas pixels."""

    cx: float
    top: float
    unit: float  # the person's height in pixels; every length below is a fraction of it
    head_h: float
    head_w: float
    shoulder_y: float
    hip_y: float
    ground: float
    shoulder_half: float
    hip_half: float
    limb: float  # arm thickness; legs are 1.35x

    @staticmethod
    def place(identity: Identity, pose: Pose, canvas_h: int, canvas_w: int) -> "_BodyFrame":
        u = canvas_h * pose.fill * identity.stature
        top = (canvas_h - u) * pose.y_shift if u < canvas_h else (canvas_h - u) * 0.5
        head_h = 0.125 * u * identity.head_scale
        shoulder_y = top + head_h + 0.022 * u
        torso = (top + 0.965 * u - shoulder_y) / (1 + identity.leg_ratio)
        side = pose.view == "side"
        return _BodyFrame(
            cx=canvas_w * (0.5 + pose.x_shift),
            top=top,
            unit=u,
            head_h=head_h,
            head_w=0.092 * u * identity.head_scale,
            shoulder_y=shoulder_y,
            hip_y=shoulder_y + torso,
            ground=top + u,
            shoulder_half=(0.068 if side else 0.118) * u * identity.build,
            hip_half=(0.062 if side else 0.092) * u * identity.build,
            limb=0.05 * u * identity.build,
        )


def _shade(colour: RGB, factor: float) -> RGB:
    return tuple(int(min(255, c * factor)) for c in colour)  # type: ignore[return-value]


def _limb(draw: ImageDraw.ImageDraw, start: tuple[float, float], end: tuple[float, float], width: float,
          fill: RGB | int) -> None:
    """A thick segment with round ends."""
    (x0, y0), (x1, y1) = start, end
    length = math.hypot(x1 - x0, y1 - y0) or 1.0
    nx, ny = -(y1 - y0) / length * width / 2, (x1 - x0) / length * width / 2
    draw.polygon([(x0 + nx, y0 + ny), (x1 + nx, y1 + ny), (x1 - nx, y1 - ny), (x0 - nx, y0 - ny)], fill=fill)
    r = width / 2
    draw.ellipse((x0 - r, y0 - r, x0 + r, y0 + r), fill=fill)
    draw.ellipse((x1 - r, y1 - r, x1 + r, y1 + r), fill=fill)


def _lerp(a: tuple[float, float], b: tuple[float, float], t: float) -> tuple[float, float]:
    return (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t)


def _paint_garment(canvas: Image.Image, mask: Image.Image, base: RGB, accent: RGB, pattern: str,
                   origin: tuple[float, float], period: float, vertical: bool) -> None:
    """Fill the garment `mask` with its fabric; the pattern is anchored at `origin` so it moves with the
    body. `vertical` turns stripes into pinstripes (trousers, skirts). Only the mask's box is computed."""
    box = mask.getbbox()
    if box is None:
        return
    if pattern in ("plain", "logo"):  # the logo is drawn on top afterwards
        canvas.paste(base + (255,) if canvas.mode == "RGBA" else base, mask=mask)
        return
    x0, y0, x1, y1 = box
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    rows = np.floor((yy - origin[1]) / period)
    cols = np.floor((xx - origin[0]) / period)
    if pattern == "stripes":
        on = (cols if vertical else rows) % 2 == 1
    elif pattern == "checks":
        on = (rows + cols) % 2 == 1
    else:
        raise ValueError(f"unknown garment pattern {pattern!r}")
    pixels = np.where(on[..., None], np.array(accent, np.uint8), np.array(base, np.uint8))
    canvas.paste(Image.fromarray(pixels.astype(np.uint8)).convert(canvas.mode), box, mask=mask.crop(box))


def _draw_shadow(canvas: Image.Image, body: _BodyFrame) -> None:
    mask = Image.new("L", canvas.size, 0)
    w, h = 0.17 * body.unit, 0.022 * body.unit
    ImageDraw.Draw(mask).ellipse((body.cx - w, body.ground - h, body.cx + w, body.ground + h), fill=90)
    canvas.paste((0, 0, 0), mask=mask)


def _person_layer(size: tuple[int, int], person: Identity, pose: Pose, body: _BodyFrame,
                  light: float) -> Image.Image:
    """The person alone on a transparent RGBA layer, lit from one side (a brightness ramp across the body)."""
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    _draw_person(layer, person, pose, body)
    box = layer.getbbox()
    if light and box is not None:
        pixels = np.asarray(layer.crop(box), dtype=np.float32)
        xx = np.arange(box[0], box[2], dtype=np.float32)
        ramp = 1.0 + light * np.clip((xx - body.cx) / (0.14 * body.unit), -1.0, 1.0)  # (box width,)
        pixels[..., :3] *= ramp[None, :, None]
        layer.paste(Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGBA"), box)
    return layer


def _paste_person(canvas: Image.Image, person: Identity, pose: Pose, body: _BodyFrame, light: float) -> None:
    layer = _person_layer(canvas.size, person, pose, body, light)
    canvas.paste(layer, mask=layer)


def _draw_bystander(canvas: Image.Image, camera: CameraLook, rng: np.random.Generator) -> None:
    """Someone further away, feet a little below the floor line, somewhere left or right."""
    w, h = canvas.size
    person = random_identity(rng)
    pose = random_pose(rng, camera.view_probs)
    fill = float(rng.uniform(0.35, 0.55))
    feet = h * (camera.horizon + float(rng.uniform(0.02, 0.1)))
    height = h * fill * person.stature
    pose = dataclasses.replace(pose, fill=fill, y_shift=min(1.0, max(0.0, (feet - height) / (h - height))),
                               x_shift=float(rng.choice([-1, 1]) * rng.uniform(0.25, 0.5)))
    body = _BodyFrame.place(person, pose, h, w)
    _draw_shadow(canvas, body)
    _paste_person(canvas, person, pose, body, camera.light)


def _limb_positions(person: Identity, pose: Pose, body: _BodyFrame) -> tuple[list, list]:
    """(legs, arms): legs as (hip, knee, foot) and arms as (shoulder, hand) canvas points, far side first.

    Side view: legs and arms swing in the picture plane and the trailing knee bends. Front and back:
    the swing shows as a foot lifted toward the camera and a foreshortened arm.
    """
    u, cx, d = body.unit, body.cx, pose.facing
    swing = math.sin(pose.phase)
    arm_len = 0.37 * u
    legs, arms = [], []
    for sign in (-1, 1):
        if pose.view == "side":
            angle = 0.3 * swing * sign
            hip = (cx, body.hip_y)
            half = 0.5 * (body.ground - 0.02 * u - body.hip_y) / max(math.cos(angle), 0.5)  # thigh = shin
            knee = (cx + d * math.sin(angle) * half, body.hip_y + math.cos(angle) * half)
            shin = angle - 0.45 * max(0.0, -angle)  # the trailing leg bends at the knee
            legs.append((hip, knee, (knee[0] + d * math.sin(shin) * half, knee[1] + math.cos(shin) * half)))
            shoulder = (cx, body.shoulder_y + 0.025 * u)
            arm_angle = -0.4 * swing * sign
            hand = (cx + d * math.sin(arm_angle) * arm_len, shoulder[1] + math.cos(arm_angle) * arm_len)
        else:
            lift = 0.035 * u * max(0.0, swing * sign)
            hip = (cx + sign * 0.045 * u * person.build, body.hip_y)
            foot = (cx + sign * 0.05 * u * person.build, body.ground - 0.02 * u - lift)
            legs.append((hip, _lerp(hip, foot, 0.5), foot))
            shoulder = (cx + sign * (body.shoulder_half - 0.022 * u), body.shoulder_y + 0.025 * u)
            hand = (shoulder[0] + sign * 0.035 * u, shoulder[1] + arm_len * (1 - 0.1 * abs(swing)))
        arms.append((shoulder, hand))
    return legs, arms


def _draw_person(layer: Image.Image, person: Identity, pose: Pose, body: _BodyFrame) -> None:
    """Draw `person` onto a transparent RGBA `layer`, back to front.

    Garments are first drawn as masks and then filled with their fabric, so stripes and checks run
    across torso and sleeves (or both trouser legs) as one piece of cloth. Limbs on the far side of
    a side view are drawn first, plain and darker.
    """
    draw = ImageDraw.Draw(layer)
    skin, hair = SKIN_TONES[person.skin], HAIR_COLOURS[person.hair_colour]
    upper, lower = UPPER_COLOURS[person.upper_colour], LOWER_COLOURS[person.lower_colour]
    upper_mask, lower_mask = Image.new("L", layer.size, 0), Image.new("L", layer.size, 0)
    u, cx = body.unit, body.cx
    legs, arms = _limb_positions(person, pose, body)
    covered_to = {"trousers": 1.0, "shorts": 0.45, "skirt": 0.0}[person.lower_style]
    sleeve_to = 0.92 if person.long_sleeves else 0.38

    def draw_leg(hip, knee, foot, shade: float) -> None:
        bare = _shade(skin if covered_to < 1 else lower, shade)
        _limb(draw, hip, knee, body.limb * 1.35, bare)
        _limb(draw, knee, foot, body.limb * 1.15, bare)
        if covered_to > 0:
            cloth_end = _lerp(hip, foot, covered_to * 0.98)
            if shade < 1:
                _limb(draw, hip, cloth_end, body.limb * 1.35, _shade(lower, shade))
            else:
                _limb(ImageDraw.Draw(lower_mask), hip, cloth_end, body.limb * 1.35, 255)
        toe = pose.facing * 0.035 * u if pose.view == "side" else 0.0
        shoe = (foot[0] - 0.03 * u + min(toe, 0), foot[1] - 0.018 * u,
                foot[0] + 0.03 * u + max(toe, 0), foot[1] + 0.02 * u)
        draw.ellipse(shoe, fill=_shade(SHOE_COLOURS[person.shoes], shade))

    def draw_arm(shoulder, hand, shade: float) -> None:
        _limb(draw, shoulder, hand, body.limb, _shade(skin, shade))
        sleeve_end = _lerp(shoulder, hand, sleeve_to)
        if shade < 1:
            _limb(draw, shoulder, sleeve_end, body.limb * 1.08, _shade(upper, shade))
        else:
            _limb(ImageDraw.Draw(upper_mask), shoulder, sleeve_end, body.limb * 1.08, 255)
        r = body.limb * 0.62
        draw.ellipse((hand[0] - r, hand[1] - r, hand[0] + r, hand[1] + r), fill=_shade(skin, shade))

    if person.hair_style == "long" and pose.view == "front":
        _draw_long_hair(draw, body, hair, pose)  # behind the shoulders
    if pose.view == "side":
        draw_arm(*arms[0], shade=0.72)
        draw_leg(*legs[0], shade=0.72)
        if person.backpack:
            _draw_backpack(draw, body, person, pose)
        draw_leg(*legs[1], shade=1.0)
    else:
        for leg in legs:
            draw_leg(*leg, shade=1.0)

    # pelvis (or skirt), so the lower garment joins the legs
    waist = body.hip_y - 0.03 * u
    if person.lower_style == "skirt":
        hem = body.hip_y + 0.45 * (body.ground - body.hip_y)
        hips, flare = body.hip_half, body.hip_half * 1.45
        skirt = [(cx - hips, waist), (cx + hips, waist), (cx + flare, hem), (cx - flare, hem)]
        ImageDraw.Draw(lower_mask).polygon(skirt, fill=255)
    else:
        pelvis = (cx - body.hip_half, waist, cx + body.hip_half, body.hip_y + 0.05 * u)
        ImageDraw.Draw(lower_mask).rectangle(pelvis, fill=255)

    # torso: rounded shoulders narrowing to the hips, leaning forward a little when walking sideways
    s, h, top, bottom = body.shoulder_half, body.hip_half, body.shoulder_y, body.hip_y + 0.01 * u
    lean = pose.facing * 0.012 * u if pose.view == "side" else 0.0
    ImageDraw.Draw(upper_mask).polygon([
        (cx - s * 0.78 + lean, top - 0.012 * u), (cx + s * 0.78 + lean, top - 0.012 * u),
        (cx + s + lean, top + 0.035 * u), (cx + h * 1.04, bottom), (cx - h * 1.04, bottom),
        (cx - s + lean, top + 0.035 * u),
    ], fill=255)
    for arm in arms[1:] if pose.view == "side" else arms:
        draw_arm(*arm, shade=1.0)

    period = 0.04 * u
    _paint_garment(layer, lower_mask, lower, UPPER_COLOURS[person.lower_accent], person.lower_pattern,
                   (cx, waist), period * 0.8, vertical=True)
    _paint_garment(layer, upper_mask, upper, UPPER_COLOURS[person.upper_accent], person.upper_pattern,
                   (cx, top), period, vertical=False)
    if person.upper_pattern == "logo" and pose.view == "front":
        r, y = 0.032 * u, top + 0.3 * (body.hip_y - top)
        draw.rectangle((cx - r, y - r, cx + r, y + r), fill=UPPER_COLOURS[person.upper_accent])

    if person.backpack and pose.view != "side":
        _draw_backpack(draw, body, person, pose)
    if person.shoulder_bag:
        _draw_shoulder_bag(draw, body, person, pose)

    neck = (cx - 0.02 * u, body.top + body.head_h * 0.8, cx + 0.02 * u, body.shoulder_y + 0.01 * u)
    draw.rectangle(neck, fill=_shade(skin, 0.92))
    head = (cx - body.head_w / 2, body.top, cx + body.head_w / 2, body.top + body.head_h)
    _draw_head(draw, head, person, pose, skin, hair)
    if person.hair_style == "long" and pose.view != "front":
        _draw_long_hair(draw, body, hair, pose)
    if person.hat:
        _draw_cap(draw, head, UPPER_COLOURS[person.hat], pose)


def _draw_head(draw: ImageDraw.ImageDraw, head: tuple, person: Identity, pose: Pose, skin: RGB, hair: RGB) -> None:
    """Head ellipse `head` = (x0, y0, x1, y1): hair, then the face showing through it (none from behind)."""
    x0, y0, x1, y1 = head
    w, hh, d, mid = x1 - x0, y1 - y0, pose.facing, (x0 + x1) / 2
    back_shift = d * w if pose.view == "side" else 0.0  # side view: hair gathers at the back
    style = person.hair_style
    if style == "bun":
        r = 0.33 * w
        bun = mid - 0.2 * back_shift
        draw.ellipse((bun - r, y0 - 0.5 * r, bun + r, y0 + 1.5 * r), fill=hair)
    if style == "ponytail" and pose.view != "front":
        tail = mid - 0.55 * back_shift
        draw.ellipse((tail - 0.16 * w, y0 + 0.45 * hh, tail + 0.16 * w, y1 + 0.35 * hh), fill=hair)
    if style == "buzz":  # a skin head under a thin cap of hair
        draw.ellipse(head, fill=skin)
        draw.chord((x0, y0, x1, y0 + hh * (1.0 if pose.view == "back" else 0.5)), 180, 360, fill=hair)
        return
    draw.ellipse((x0 - 0.04 * w, y0 - 0.04 * hh, x1 + 0.04 * w, y1), fill=hair)
    if pose.view == "front":
        draw.ellipse((x0 + 0.1 * w, y0 + 0.3 * hh, x1 - 0.1 * w, y1), fill=skin)
    elif pose.view == "side":
        shift = 0.2 * back_shift
        draw.ellipse((x0 + 0.2 * w + shift, y0 + 0.3 * hh, x1 - 0.05 * w + shift, y1), fill=skin)
        nose = mid + 0.42 * back_shift
        draw.ellipse((nose - 0.12 * w, y0 + 0.45 * hh, nose + 0.12 * w, y0 + 0.68 * hh), fill=skin)


def _draw_long_hair(draw: ImageDraw.ImageDraw, body: _BodyFrame, hair: RGB, pose: Pose) -> None:
    half = body.head_w * 0.58
    x = body.cx - (pose.facing * 0.25 * body.head_w if pose.view == "side" else 0.0)
    box = (x - half, body.top + 0.4 * body.head_h, x + half, body.shoulder_y + 0.08 * body.unit)
    draw.rounded_rectangle(box, radius=0.02 * body.unit, fill=hair)


def _draw_cap(draw: ImageDraw.ImageDraw, head: tuple, colour: RGB, pose: Pose) -> None:
    x0, y0, x1, y1 = head
    w, hh = x1 - x0, y1 - y0
    draw.chord((x0 - 0.06 * w, y0 - 0.08 * hh, x1 + 0.06 * w, y0 + 0.9 * hh), 180, 360, fill=colour)
    brim_y, brim = y0 + 0.36 * hh, _shade(colour, 0.85)
    if pose.view == "side":
        near, far = (x1, x1 + 0.45 * w) if pose.facing > 0 else (x0 - 0.45 * w, x0)
        draw.ellipse((near, brim_y - 0.06 * hh, far, brim_y + 0.08 * hh), fill=brim)
    elif pose.view == "front":
        draw.ellipse((x0 - 0.05 * w, brim_y - 0.06 * hh, x1 + 0.05 * w, brim_y + 0.1 * hh), fill=brim)


def _draw_backpack(draw: ImageDraw.ImageDraw, body: _BodyFrame, person: Identity, pose: Pose) -> None:
    """Seen from behind: the whole bag; from the side: its depth behind the back; from the front: straps."""
    colour = BAG_COLOURS[person.backpack]
    u, cx = body.unit, body.cx
    top, bottom = body.shoulder_y + 0.01 * u, body.shoulder_y + 0.62 * (body.hip_y - body.shoulder_y)
    if pose.view == "front":
        for side in (-1, 1):
            x = cx + side * body.shoulder_half * 0.55
            draw.line((x, body.shoulder_y, x + side * 0.01 * u, bottom - 0.05 * u), fill=_shade(colour, 0.8),
                      width=max(1, int(0.014 * u)))
    elif pose.view == "side":
        back = cx - pose.facing * body.shoulder_half
        x0, x1 = sorted((back, back - pose.facing * 0.07 * u))
        draw.rounded_rectangle((x0, top, x1, bottom), radius=0.02 * u, fill=colour)
    else:
        half = body.shoulder_half * 0.78
        draw.rounded_rectangle((cx - half, top, cx + half, bottom), radius=0.03 * u, fill=colour)
        draw.rounded_rectangle((cx - half * 0.7, (top + bottom) / 2, cx + half * 0.7, bottom - 0.01 * u),
                               radius=0.015 * u, fill=_shade(colour, 0.78))  # front pocket


def _draw_shoulder_bag(draw: ImageDraw.ImageDraw, body: _BodyFrame, person: Identity, pose: Pose) -> None:
    """A bag at the hip on a strap: across the chest (hanging on the person's left) or down the side."""
    colour = BAG_COLOURS[person.shoulder_bag]
    u, cx = body.unit, body.cx
    if pose.view == "side":
        bag_x, strap_from = cx + pose.facing * 0.01 * u, (cx, body.shoulder_y)
    else:
        side = 1 if pose.view == "front" else -1
        bag_x = cx + side * (body.hip_half + 0.03 * u)
        strap_from = (cx - side * body.shoulder_half * 0.7, body.shoulder_y)
    draw.line((*strap_from, bag_x, body.hip_y - 0.03 * u), fill=_shade(colour, 0.8), width=max(1, int(0.012 * u)))
    draw.rounded_rectangle((bag_x - 0.045 * u, body.hip_y - 0.04 * u, bag_x + 0.045 * u, body.hip_y + 0.055 * u),
                           radius=0.01 * u, fill=colour)


def _draw_occluder(canvas: Image.Image, occ: Occlusion, light: float = 0.0) -> None:
    """Cover about `occ.area` of the canvas: a car or a bush from the bottom, a pillar from the side,
    or a passer-by in front."""
    w, h = canvas.size
    draw = ImageDraw.Draw(canvas)
    if occ.kind == "car":  # bonnet/side of a car across the bottom
        top = h * (1 - occ.area)
        draw.rounded_rectangle((-0.2 * w, top, 1.2 * w, h + 0.1 * h), radius=0.12 * w, fill=occ.colour)
        trim = (-0.2 * w, top + 0.35 * (h - top), 1.2 * w, top + 0.42 * (h - top))
        draw.rectangle(trim, fill=_shade(occ.colour, 0.7))
        if h - top > 0.3 * h:  # tall enough to show a window
            draw.rectangle((0.1 * w, top + 0.08 * (h - top), 0.9 * w, top + 0.3 * (h - top)), fill=(58, 70, 84))
        wheel = 0.22 * w
        x = w * (0.15 + 0.7 * occ.position)
        draw.ellipse((x - wheel, h - wheel * 0.9, x + wheel, h + wheel * 1.1), fill=(20, 20, 22))
    elif occ.kind == "pillar":  # full-height, from a side
        band = occ.area * w
        x0 = (w - band) * (0.0 if occ.position < 0.5 else 1.0)
        grey = (150 + int(60 * occ.position), 150 + int(60 * occ.position), 146 + int(60 * occ.position))
        draw.rectangle((x0, 0, x0 + band, h), fill=grey)
        draw.rectangle((x0 + band * 0.7, 0, x0 + band, h), fill=_shade(grey, 0.8))
    elif occ.kind == "bush":  # a round hedge standing on the bottom edge: a half-ellipse of area `area`
        rx = w * (0.42 + 0.08 * occ.position)
        ry = min(2 * occ.area * w * h / (math.pi * rx), h)
        x = rx + (w - 2 * rx) * occ.position
        green = (46, 104 + int(50 * occ.position), 48)
        draw.ellipse((x - rx, h - ry, x + rx, h + ry), fill=green)
        for i in range(7):  # leafy rim
            a = math.pi * (i + 0.5) / 7
            bx, by, r = x + rx * 0.85 * math.cos(a), h - ry * 0.88 * math.sin(a), 0.1 * w
            draw.ellipse((bx - r, by - r, bx + r, by + r), fill=_shade(green, 1.2 if i % 2 else 0.85))
    elif occ.kind == "person":
        _draw_passer_by(canvas, occ, light)
    else:
        raise ValueError(f"unknown occluder kind {occ.kind!r}")


def _draw_passer_by(canvas: Image.Image, occ: Occlusion, light: float) -> None:
    """A closer person walking in front, slid sideways until it hides about `occ.area` of the crop."""
    w, h = canvas.size
    side = -1 if occ.position < 0.5 else 1
    best = None
    for shift in np.linspace(0.0, 0.6, 7):
        pose = dataclasses.replace(occ.pose, x_shift=side * float(shift))
        layer = _person_layer(canvas.size, occ.person, pose, _BodyFrame.place(occ.person, pose, h, w), light)
        miss = abs(float((np.asarray(layer)[..., 3] > 0).mean()) - occ.area)
        if best is None or miss < best[0]:
            best = (miss, layer)
    canvas.paste(best[1], mask=best[1])


# --- the dataset: plan who is seen where, then draw and write ------------------------------------------
@dataclass(frozen=True)
class Shot:
    """One planned crop: who, which camera, how, and where it goes."""

    split: str  # train | query | gallery
    pid: int  # 0 = distractor
    camid: int  # 0-based
    frame: int
    identity: Identity
    pose: Pose
    key: tuple[int, ...]  # random-stream key of this crop


def plan_dataset(preset: SyntheticPreset, seed: int) -> list[Shot]:
    """Every crop of the dataset, without drawing any: identities, camera tracklets, query choice, frames."""
    looks = camera_looks(preset.num_cameras, seed)
    plan_rng = _rng(seed, _STREAM_PLAN)
    num_ids = preset.num_train_ids + preset.num_test_ids
    people = sample_identities(num_ids + preset.num_distractors, _rng(seed, _STREAM_IDENTITIES))
    pids = plan_rng.permutation(np.arange(1, num_ids + 1))
    train_pids = sorted(int(p) for p in pids[: preset.num_train_ids])
    test_pids = sorted(int(p) for p in pids[preset.num_train_ids:])

    tracklets: list[list[dict[str, Any]]] = []
    for split, split_pids in (("train", train_pids), ("gallery", test_pids)):
        for pid in split_pids:
            n_cams = int(plan_rng.integers(preset.cameras_per_id[0], preset.cameras_per_id[1] + 1))
            cams = sorted(int(c) for c in plan_rng.choice(preset.num_cameras, size=n_cams, replace=False))
            pid_tracklets = [
                _tracklet(split, pid, cam, people[pid - 1], looks[cam], preset, seed) for cam in cams
            ]
            if split == "gallery":  # test ids: one query per chosen camera, the rest stays in the gallery
                chosen = [t for t in pid_tracklets if plan_rng.random() < preset.query_camera_prob]
                for tracklet in chosen or [pid_tracklets[int(plan_rng.integers(len(pid_tracklets)))]]:
                    tracklet[int(plan_rng.integers(len(tracklet)))]["split"] = "query"
            tracklets += pid_tracklets
    for index in range(preset.num_distractors):
        cam = int(plan_rng.integers(preset.num_cameras))
        pose = random_pose(_rng(seed, _STREAM_TRACKLET, 0, index), looks[cam].view_probs)
        tracklets.append([dict(split="gallery", pid=0, camid=cam, identity=people[num_ids + index], pose=pose,
                               key=(0, cam, index))])

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
    """Consecutive crops of one person in one camera: the pose advances, the box jitters, and now and
    then the person turns to another view."""
    rng = _rng(seed, _STREAM_TRACKLET, pid, cam)
    length = int(rng.integers(preset.crops_per_camera[0], preset.crops_per_camera[1] + 1))
    start = random_pose(rng, look.view_probs)
    crops = []
    for index in range(length):
        turned = random_pose(rng, look.view_probs).view if rng.random() < 0.15 else start.view
        pose = dataclasses.replace(
            start,
            view=turned,
            phase=start.phase + index * float(rng.uniform(0.7, 1.5)),
            x_shift=float(np.clip(start.x_shift + rng.normal(0, 0.025), -0.12, 0.12)),
            y_shift=float(np.clip(start.y_shift + rng.normal(0, 0.1), 0.0, 1.0)),
            fill=float(np.clip(start.fill + rng.normal(0, 0.03), 0.8, 1.0)),
        )
        crops.append(dict(split=split, pid=pid, camid=cam, identity=person, pose=pose, key=(pid, cam, index)))
    return crops


def crop_filename(pid: int, camid: int, frame: int) -> str:
    """Market-1501 style name: 4-digit pid, 1-based camera, sequence, 6-digit frame, box index."""
    return f"{pid:04d}_c{camid + 1}s{1 + frame // 1_000_000}_{frame % 1_000_000:06d}_01.jpg"


def resolve_preset(preset: str | SyntheticPreset, **overrides: Any) -> SyntheticPreset:
    """A registry preset (or a given one) with some fields replaced, e.g. `num_train_ids=12` for tests."""
    if isinstance(preset, str):
        if preset not in SYNTHETIC_PRESETS:
            available = ", ".join(sorted(SYNTHETIC_PRESETS))
            raise ValueError(f"unknown synthetic preset {preset!r}; available: {available}")
        preset = SYNTHETIC_PRESETS[preset]
    known = {f.name for f in dataclasses.fields(SyntheticPreset)} - {"name"}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown synthetic preset field(s) {unknown}; expected some of {sorted(known)}")
    return dataclasses.replace(preset, **overrides)


def generate_synthetic(
    root: str | Path, preset: str | SyntheticPreset = "synthetic", seed: int = 0, overwrite: bool = False,
    **overrides: Any,
) -> Path:
    """Draw and write the benchmark to `<root>/<preset name>/`; returns that folder.

    `overrides` replace preset fields (`num_train_ids=12, num_cameras=3`, ...). An existing non-empty
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
        if not _written_by_us(folder):
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
    looks = camera_looks(spec.num_cameras, seed)
    counts = {split: 0 for split in SPLIT_FOLDERS}
    for shot in plan_dataset(spec, seed):
        occlusion = None
        occlusion_rng = _rng(seed, _STREAM_OCCLUSION, *shot.key)
        if occlusion_rng.random() < spec.occlusion_prob(shot.split):
            occlusion = random_occlusion(occlusion_rng, spec.occlusion_area)
        image = render_crop(shot.identity, looks[shot.camid], shot.pose, _rng(seed, _STREAM_CROP, *shot.key),
                            size=(spec.height, spec.width), occlusion=occlusion)
        path = partial / SPLIT_FOLDERS[shot.split] / crop_filename(shot.pid, shot.camid, shot.frame)
        image.save(path, format="JPEG", quality=looks[shot.camid].jpeg_quality)
        counts[shot.split] += 1

    meta = {
        "generator": "lwtgpf.data.synthetic",
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
        "settings": dataclasses.asdict(spec),
    }
    (partial / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    if folder.exists():
        shutil.rmtree(folder)
    partial.rename(folder)
    return folder


def _written_by_us(folder: Path) -> bool:
    try:
        return "generator" in json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return False

"""The world behind the person: scene types shared by the cameras, framing that varies crop to crop, and
other pedestrians.

Why it matters: in a real camera network the background of a crop changes with where the person walks
(a shop front, then a bench, then a door), and the same kinds of place (streets, corridors, parks) are
filmed by many cameras. If each camera filmed one fixed scene, the scene alone would tell the camera,
features would group crops by scene before they group them by person, and the first pseudo labels of
an unsupervised method would be camera-pure clusters of several people (what version 1 of this
generator did). So here:

- a **scene type** (street, shops, park, corridor, plaza, parking, office, open square) has a few
  colour variants and draws a wide strip: a wall or far view above the floor line, a floor below;
- there is one place of each type (a colour variant and a layout); every camera films
  `backgrounds_per_camera` of them, handed out so that every place is filmed by several cameras
  (`camera_backgrounds`): the place behind a person no more tells the camera than the person;
- a crop sees a window of its background: where along the strip (the person walks past), how high the
  floor line sits (camera tilt and person distance: the horizon varies from about the middle of the
  crop to near its feet) and how wide (zoom) - the `Framing` of a tracklet, drifting a little from
  crop to crop;
- other pedestrians: someone further away behind the person (a bystander), someone at the same
  distance cut by the edge of the box (a neighbour, as in detector boxes of crowded scenes).

Sizes are in percent of the canvas height (`unit = canvas height / 100`), so a scene looks the same at
128x64 and at 256x128. The camera's colour cast, blur and noise are applied later to the whole crop
(`cameras.apply_camera`): a scene type seen by two cameras still looks different in each.
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from .people import RGB, BodyFrame, draw_shadow, paste_person, random_identity, random_pose, shaded

# Strip geometry, in canvas (crop) sizes: wide enough that a tracklet can walk along it, tall enough
# that any framing below finds a window of it.
STRIP_WIDTH = 5.0  # crop widths
STRIP_HEIGHT = 1.9  # crop heights
STRIP_HORIZON = 1.1  # the floor line's height in the strip, in crop heights from the top

# Framing of a tracklet (drawn once per person and camera) and its drift from crop to crop. Crops of a
# tracklet are 0.2-1 s apart: a pedestrian walks 0.3-1.5 m meanwhile, a good part of a surveillance
# camera's field of view, so the scene behind them changes a lot while the camera stays the same.
HORIZON_RANGE = (0.42, 0.85)  # floor line, fraction of the crop height from its top
ZOOM_RANGE = (0.85, 1.2)  # window size / crop size: > 1 shows more of the scene, smaller
WALK_DRIFT = 0.2  # std of the per-crop slide along the strip, fraction of its free length (~4 crop widths)
HORIZON_DRIFT = 0.05  # std of the per-crop change of the horizon (fraction of the crop height)
ZOOM_DRIFT = 0.04  # std of the per-crop change of the zoom


@dataclass(frozen=True)
class SceneType:
    """A kind of place: how its wall (or far view) and floor are drawn, and its colour variants
    (wall, accent, floor), e.g. red, yellow or grey bricks."""

    name: str
    wall: str  # bricks | shopfront | trees | doors | columns | cars | windows | skyline
    floor: str  # pavement | grass | tiles | slabs | asphalt | polished | concrete
    variants: tuple[tuple[RGB, RGB, RGB], ...]


SCENE_TYPES: dict[str, SceneType] = {t.name: t for t in (
    SceneType("street", "bricks", "pavement", (
        ((168, 96, 78), (206, 200, 190), (150, 146, 140)),
        ((196, 170, 110), (226, 220, 200), (140, 138, 132)),
        ((120, 116, 112), (170, 168, 164), (112, 110, 106)))),
    SceneType("shops", "shopfront", "pavement", (
        ((60, 62, 70), (196, 52, 48), (160, 156, 150)),
        ((226, 222, 210), (42, 110, 80), (132, 130, 126)),
        ((104, 72, 58), (222, 180, 60), (150, 140, 128)))),
    SceneType("park", "trees", "grass", (
        ((170, 200, 226), (48, 112, 52), (92, 146, 70)),
        ((214, 214, 200), (150, 110, 40), (128, 140, 72)),
        ((150, 176, 196), (30, 84, 44), (76, 120, 58)))),
    SceneType("corridor", "doors", "tiles", (
        ((222, 206, 170), (150, 120, 84), (176, 150, 112)),
        ((186, 204, 214), (80, 96, 120), (150, 156, 160)),
        ((236, 236, 230), (140, 60, 50), (120, 120, 126)))),
    SceneType("plaza", "columns", "slabs", (
        ((214, 208, 196), (150, 144, 134), (186, 178, 164)),
        ((64, 66, 80), (110, 112, 128), (86, 86, 92)),
        ((200, 150, 120), (236, 220, 200), (170, 160, 150)))),
    SceneType("parking", "cars", "asphalt", (
        ((140, 140, 138), (228, 220, 120), (74, 74, 78)),
        ((170, 160, 146), (236, 236, 232), (92, 92, 96)),
        ((100, 104, 112), (226, 226, 226), (58, 60, 64)))),
    SceneType("office", "windows", "polished", (
        ((120, 140, 160), (60, 84, 110), (90, 96, 104)),
        ((176, 184, 192), (110, 124, 140), (150, 146, 140)),
        ((90, 110, 100), (40, 60, 56), (130, 124, 116)))),
    SceneType("open", "skyline", "concrete", (
        ((200, 220, 240), (120, 130, 150), (170, 168, 160)),
        ((240, 200, 160), (110, 96, 110), (150, 140, 130)),
        ((180, 186, 196), (96, 100, 112), (128, 128, 128)))),
)}


@dataclass(frozen=True)
class Background:
    """One place a camera films: a scene type, one of its colour variants, and a layout seed."""

    scene: str
    variant: int
    seed: int

    @property
    def colours(self) -> tuple[RGB, RGB, RGB]:
        return SCENE_TYPES[self.scene].variants[self.variant]


@dataclass(frozen=True)
class Framing:
    """Which window of which background a crop shows."""

    background: int  # index into the camera's backgrounds
    along: float  # in [0, 1]: the window's position along the strip
    horizon: float  # floor line as a fraction of the crop height from its top
    zoom: float  # window size / crop size


def camera_backgrounds(num_cameras: int, per_camera: int, rng: np.random.Generator) -> list[tuple[Background, ...]]:
    """The places each camera films: one place per scene type (a random colour variant and layout),
    `per_camera` of them per camera, dealt round-robin from a shuffled list so that every place is
    filmed by about `num_cameras * per_camera / 8` cameras (3 at the default 6 x 4) and no camera owns one.

    Sharing places, not only scene types, is the point: a place seen by one camera only would tell
    the camera as surely as a fixed scene does, and the first pseudo labels would group the people who
    walked past it."""
    names = list(SCENE_TYPES)
    if not 1 <= per_camera <= len(names):
        raise ValueError(f"backgrounds per camera must be in 1..{len(names)}, got {per_camera}")
    places = [Background(name, int(rng.integers(len(SCENE_TYPES[name].variants))), int(rng.integers(2**31)))
              for name in names]
    order = [places[i] for i in rng.permutation(len(places))]
    return [tuple(order[(cam * per_camera + j) % len(order)] for j in range(per_camera)) for cam in range(num_cameras)]


def random_framing(rng: np.random.Generator, num_backgrounds: int) -> Framing:
    """The framing a tracklet starts with: one of the camera's backgrounds, anywhere along it."""
    return Framing(
        background=int(rng.integers(num_backgrounds)),
        along=float(rng.random()),
        horizon=float(rng.uniform(*HORIZON_RANGE)),
        zoom=float(rng.uniform(*ZOOM_RANGE)),
    )


def drift_framing(framing: Framing, rng: np.random.Generator) -> Framing:
    """The next crop of a tracklet: the person walked on, the box moved a little."""
    return dataclasses.replace(
        framing,
        along=_reflect(framing.along + rng.normal(0, WALK_DRIFT), 0.0, 1.0),
        horizon=_reflect(framing.horizon + rng.normal(0, HORIZON_DRIFT), *HORIZON_RANGE),
        zoom=_reflect(framing.zoom + rng.normal(0, ZOOM_DRIFT), *ZOOM_RANGE),
    )


def _reflect(value: float, low: float, high: float) -> float:
    """`value` folded back into [low, high] at its ends (a random walk that does not stick to a wall)."""
    span = high - low
    folded = (float(value) - low) % (2 * span)
    return low + (2 * span - folded if folded > span else folded)


def scene_canvas(background: Background, framing: Framing, height: int, width: int) -> Image.Image:
    """The RGB canvas (height x width) behind the person: the framed window of the background strip."""
    strip = background_strip(background, height, width)
    win_h, win_w = framing.zoom * height, framing.zoom * width
    top = STRIP_HORIZON * height - framing.horizon * win_h
    top = min(max(top, 0.0), strip.height - win_h)
    left = framing.along * (strip.width - win_w)
    return strip.resize((width, height), Image.Resampling.BILINEAR, box=(left, top, left + win_w, top + win_h))


@functools.lru_cache(maxsize=64)
def background_strip(background: Background, height: int, width: int) -> Image.Image:
    """The whole background at canvas scale: `STRIP_WIDTH` crops wide, `STRIP_HEIGHT` crops tall."""
    rng = np.random.default_rng(background.seed)
    kind = SCENE_TYPES[background.scene]
    wall, accent, floor = background.colours
    strip_w, strip_h = int(STRIP_WIDTH * width), int(STRIP_HEIGHT * height)
    horizon = int(STRIP_HORIZON * height)
    unit = height / 100
    strip = Image.new("RGB", (strip_w, strip_h), wall)
    draw = ImageDraw.Draw(strip)
    _WALLS[kind.wall](draw, strip, rng, strip_w, horizon, unit, wall, accent)
    draw.rectangle((0, horizon, strip_w, strip_h), fill=floor)
    _FLOORS[kind.floor](draw, strip, rng, strip_w, strip_h, horizon, unit, floor, accent)
    draw.line((0, horizon, strip_w, horizon), fill=shaded(floor, 0.7), width=max(1, int(unit)))
    # fixed grain, so walls are not flat paint; the sensor noise comes later, per shot
    grain = rng.normal(0, 6, size=(strip_h, strip_w, 1))
    pixels = np.clip(np.asarray(strip, dtype=np.float32) + grain, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels)


def _jitter(colour: RGB, rng: np.random.Generator, amount: float) -> RGB:
    """`colour` shifted by the same random amount in [-amount, amount] on every channel."""
    shift = rng.uniform(-amount, amount)
    return tuple(int(np.clip(c + shift, 0, 255)) for c in colour)  # type: ignore[return-value]


# --- walls: everything above the floor line ---------------------------------------------------------------
def _bricks(draw, strip, rng, w, horizon, unit, wall, accent) -> None:
    for row in range(int(horizon / (6 * unit)) + 1):
        y = row * 6 * unit
        x = -(row % 2) * 7 * unit
        while x < w:
            draw.rectangle((x + unit * 0.6, y + unit * 0.6, x + 14 * unit, y + 6 * unit), fill=_jitter(wall, rng, 14))
            x += 14 * unit
        draw.line((0, y, w, y), fill=accent, width=max(1, int(unit * 0.8)))
    for _ in range(int(w / (60 * unit))):  # a drainpipe or a sign now and then
        x = rng.uniform(0, w)
        draw.rectangle((x, 0, x + 2 * unit, horizon), fill=shaded(wall, 0.6))


def _shopfront(draw, strip, rng, w, horizon, unit, wall, accent) -> None:
    x = rng.uniform(0, 8) * unit
    fascia = horizon - 70 * unit
    while x < w:
        shop_w = rng.uniform(40, 70) * unit
        sign = _jitter(accent, rng, 40)
        draw.rectangle((x, fascia - 12 * unit, x + shop_w, fascia), fill=sign)  # shop sign
        for i in range(0, int(shop_w / (6 * unit)), 2):  # awning stripes
            draw.rectangle((x + i * 6 * unit, fascia, x + (i + 1) * 6 * unit, fascia + 5 * unit), fill=shaded(sign, 1.3))
        glass = _jitter((52, 66, 82), rng, 20)
        draw.rectangle((x + 2 * unit, fascia + 8 * unit, x + shop_w - 2 * unit, horizon - 4 * unit), fill=glass)
        draw.polygon([(x + 10 * unit, fascia + 8 * unit), (x + 18 * unit, fascia + 8 * unit),
                      (x + 6 * unit, horizon - 4 * unit), (x + 2 * unit, horizon - 4 * unit)],
                     fill=shaded(glass, 1.5))  # a reflection
        door = x + shop_w * rng.uniform(0.55, 0.75)
        draw.rectangle((door, fascia + 14 * unit, door + 12 * unit, horizon), fill=shaded(wall, 0.5))
        x += shop_w + rng.uniform(4, 10) * unit


def _trees(draw, strip, rng, w, horizon, unit, wall, accent) -> None:
    x = rng.uniform(0, 20) * unit
    while x < w:  # trunks, then a crown of leaf blobs
        trunk_top = horizon - rng.uniform(50, 90) * unit
        draw.rectangle((x, trunk_top, x + 3 * unit, horizon), fill=(86, 62, 44))
        for _ in range(30):
            cx, cy = x + rng.normal(0, 12) * unit, trunk_top + rng.normal(0, 12) * unit
            r = rng.uniform(4, 9) * unit
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=_jitter(accent, rng, 30))
        x += rng.uniform(25, 50) * unit
    for x in np.arange(0, w, 30 * unit):  # a hedge along the path
        r = rng.uniform(6, 10) * unit
        draw.ellipse((x - r, horizon - 1.4 * r, x + 2 * r, horizon + 0.3 * r), fill=_jitter(shaded(accent, 0.8), rng, 20))


def _doors(draw, strip, rng, w, horizon, unit, wall, accent) -> None:
    x = rng.uniform(0, 20) * unit
    while x < w:
        door_w, door_h = rng.uniform(16, 22) * unit, rng.uniform(40, 48) * unit
        draw.rectangle((x, horizon - door_h, x + door_w, horizon), fill=_jitter(accent, rng, 20))
        draw.rectangle((x + door_w * 0.8, horizon - door_h * 0.5, x + door_w * 0.88, horizon - door_h * 0.46),
                       fill=(200, 190, 150))  # handle
        if rng.random() < 0.5:  # a notice board
            bx = x + door_w + rng.uniform(6, 14) * unit
            draw.rectangle((bx, horizon - 38 * unit, bx + 14 * unit, horizon - 26 * unit), fill=_jitter((220, 210, 180), rng, 30))
        x += door_w + rng.uniform(30, 50) * unit
    draw.rectangle((0, horizon - 5 * unit, w, horizon), fill=shaded(wall, 0.7))  # skirting
    draw.rectangle((0, 0, w, horizon - 95 * unit), fill=shaded(wall, 1.1))  # ceiling


def _columns(draw, strip, rng, w, horizon, unit, wall, accent) -> None:
    x = rng.uniform(0, 10) * unit
    while x < w:
        col_w = rng.uniform(8, 16) * unit
        draw.rectangle((x, 0, x + col_w, horizon), fill=accent)
        draw.rectangle((x + col_w * 0.75, 0, x + col_w, horizon), fill=shaded(accent, 0.75))
        x += col_w + rng.uniform(20, 40) * unit


def _cars(draw, strip, rng, w, horizon, unit, wall, accent) -> None:
    draw.rectangle((0, horizon - 40 * unit, w, horizon), fill=shaded(wall, 0.85))  # a low wall behind the bays
    x = rng.uniform(0, 10) * unit
    while x < w:  # parked cars side on, far away
        car_w, car_h = rng.uniform(26, 34) * unit, rng.uniform(10, 13) * unit
        colour = _jitter(((196, 30, 36), (230, 230, 232), (30, 30, 36), (60, 90, 160), (150, 150, 156))[rng.integers(5)], rng, 15)
        base = horizon + 2 * unit
        draw.rounded_rectangle((x, base - car_h, x + car_w, base), radius=2 * unit, fill=colour)
        draw.rounded_rectangle((x + 0.2 * car_w, base - 1.7 * car_h, x + 0.75 * car_w, base - car_h + unit),
                               radius=2 * unit, fill=shaded(colour, 0.8))
        for wx in (x + 0.2 * car_w, x + 0.8 * car_w):
            draw.ellipse((wx - 3 * unit, base - 3 * unit, wx + 3 * unit, base + 3 * unit), fill=(24, 24, 26))
        x += car_w + rng.uniform(4, 20) * unit


def _windows(draw, strip, rng, w, horizon, unit, wall, accent) -> None:
    x = rng.uniform(0, 10) * unit
    while x < w:
        win_w = rng.uniform(14, 22) * unit
        for top in np.arange(horizon - 110 * unit, horizon - 12 * unit, 24 * unit):
            draw.rectangle((x, top, x + win_w, top + 16 * unit), fill=_jitter(accent, rng, 10))
            draw.line((x + win_w / 2, top, x + win_w / 2, top + 16 * unit), fill=wall, width=max(1, int(unit)))
        x += win_w + rng.uniform(8, 14) * unit


def _skyline(draw, strip, rng, w, horizon, unit, wall, accent) -> None:
    column = np.linspace(0, 1, horizon)[:, None, None]
    sky = np.array(wall)[None, None, :] * (1 - 0.4 * column) + np.array((236, 236, 236))[None, None, :] * 0.4 * column
    strip.paste(Image.fromarray(np.broadcast_to(sky, (horizon, w, 3)).astype(np.uint8)), (0, 0))
    x = 0.0
    while x < w:  # far buildings
        bw, bh = rng.uniform(10, 30) * unit, rng.uniform(15, 60) * unit
        draw.rectangle((x, horizon - bh, x + bw, horizon), fill=_jitter(accent, rng, 18))
        x += bw + rng.uniform(0, 6) * unit


# --- floors: everything below it ----------------------------------------------------------------------------
def _pavement(draw, strip, rng, w, h, horizon, unit, floor, accent) -> None:
    y, step = float(horizon), 3 * unit
    while y < h:  # slab joints, further apart closer to the camera
        draw.line((0, y, w, y), fill=shaded(floor, 0.82), width=max(1, int(unit * 0.5)))
        y += step
        step *= 1.35
    draw.rectangle((0, horizon, w, horizon + 2 * unit), fill=shaded(floor, 1.12))  # kerb


def _grass(draw, strip, rng, w, h, horizon, unit, floor, accent) -> None:
    for _ in range(int(w * (h - horizon) / (30 * unit * unit))):
        x, y = rng.uniform(0, w), rng.uniform(horizon, h)
        draw.ellipse((x - 2 * unit, y - unit, x + 2 * unit, y + unit), fill=_jitter(floor, rng, 18))
    top = horizon + (h - horizon) * rng.uniform(0.2, 0.4)
    draw.rectangle((0, top, w, top + (h - horizon) * 0.45), fill=(176, 160, 130))  # gravel path


def _tiles(draw, strip, rng, w, h, horizon, unit, floor, accent) -> None:
    for y in np.arange(horizon, h, 7 * unit):
        draw.line((0, y, w, y), fill=shaded(floor, 0.8), width=max(1, int(unit * 0.7)))
    for x in np.arange(0, w, 12 * unit):
        draw.line((x, horizon, x, h), fill=shaded(floor, 0.8), width=max(1, int(unit * 0.7)))


def _slabs(draw, strip, rng, w, h, horizon, unit, floor, accent) -> None:
    for y in np.arange(horizon, h, 16 * unit):
        for x in np.arange(-rng.uniform(0, 20) * unit, w, 20 * unit):
            draw.rectangle((x + unit, y + unit, x + 20 * unit, y + 16 * unit), fill=_jitter(floor, rng, 10))


def _asphalt(draw, strip, rng, w, h, horizon, unit, floor, accent) -> None:
    for x in np.arange(rng.uniform(0, 20) * unit, w, 48 * unit):
        stripe = [(x, horizon), (x + 2 * unit, horizon), (x + 22 * unit, h), (x + 16 * unit, h)]
        draw.polygon(stripe, fill=accent)  # a parking-bay line, in perspective


def _polished(draw, strip, rng, w, h, horizon, unit, floor, accent) -> None:
    for x in np.arange(rng.uniform(0, 30) * unit, w, 36 * unit):  # reflections of the windows above
        draw.rectangle((x, horizon + 2 * unit, x + 16 * unit, h), fill=shaded(floor, 1.15))


def _concrete(draw, strip, rng, w, h, horizon, unit, floor, accent) -> None:
    for _ in range(int(w / (40 * unit))):  # cracks and stains
        x, y = rng.uniform(0, w), rng.uniform(horizon, h)
        draw.ellipse((x, y, x + rng.uniform(6, 20) * unit, y + rng.uniform(2, 5) * unit), fill=_jitter(floor, rng, 22))


_WALLS = {"bricks": _bricks, "shopfront": _shopfront, "trees": _trees, "doors": _doors, "columns": _columns,
          "cars": _cars, "windows": _windows, "skyline": _skyline}
_FLOORS = {"pavement": _pavement, "grass": _grass, "tiles": _tiles, "slabs": _slabs, "asphalt": _asphalt,
           "polished": _polished, "concrete": _concrete}


# --- other pedestrians ----------------------------------------------------------------------------------------
def draw_bystander(canvas: Image.Image, horizon: float, view_probs: tuple[float, float, float], light: float,
                   rng: np.random.Generator) -> None:
    """Someone further away behind the person: 35-55% of the crop height, feet a little below the floor
    line (`horizon`, fraction of the height), somewhere left or right."""
    w, h = canvas.size
    person = random_identity(rng)
    pose = random_pose(rng, view_probs)
    fill = float(rng.uniform(0.35, 0.55))
    feet = h * (horizon + float(rng.uniform(0.02, 0.1)))
    height = h * fill * person.stature
    pose = dataclasses.replace(pose, fill=fill, y_shift=min(1.0, max(0.0, (feet - height) / (h - height))),
                               x_shift=float(rng.choice([-1, 1]) * rng.uniform(0.25, 0.5)))
    body = BodyFrame.place(person, pose, h, w)
    draw_shadow(canvas, body)
    paste_person(canvas, person, pose, body, light)


def draw_neighbour(canvas: Image.Image, view_probs: tuple[float, float, float], light: float,
                   rng: np.random.Generator) -> None:
    """Someone at about the person's distance, just behind them and cut by the left or right edge of the
    box: a detector box in a crowd shows a slice of the next pedestrian."""
    w, h = canvas.size
    person = random_identity(rng)
    pose = random_pose(rng, view_probs)
    side = 1 if rng.random() < 0.5 else -1
    pose = dataclasses.replace(pose, fill=float(rng.uniform(0.8, 0.95)), y_shift=float(rng.uniform(0.0, 0.6)),
                               x_shift=side * float(rng.uniform(0.55, 0.7)))
    body = BodyFrame.place(person, pose, h, w)
    paste_person(canvas, person, pose, body, light)

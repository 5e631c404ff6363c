"""Occluders: something between the camera and the person (a car, a pillar, a bush, a passer-by).

The `synthetic_occluded` preset hides part of most query crops, like Occluded-Duke. Each crop's
occluder is drawn from its own random stream, so `synthetic` and `synthetic_occluded` with one seed
hold the same people, poses and scenes and differ only by the occluders.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from .people import RGB, BodyFrame, Identity, Pose, person_layer, random_identity, random_pose, shaded

OCCLUDER_COLOURS: tuple[RGB, ...] = (
    (196, 30, 36), (230, 230, 232), (30, 30, 36), (60, 90, 160), (150, 150, 156), (210, 180, 60),
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
    """One occluder of a random kind covering a fraction of the crop drawn from `area_range`."""
    kind = ("car", "pillar", "bush", "person")[rng.integers(4)]
    area = float(rng.uniform(*area_range))
    colour = OCCLUDER_COLOURS[rng.integers(len(OCCLUDER_COLOURS))]
    position = float(rng.random())
    if kind != "person":
        return Occlusion(kind, area, position, colour)
    pose = dataclasses.replace(random_pose(rng), fill=float(rng.uniform(1.0, 1.15)), y_shift=0.3)
    return Occlusion(kind, area, position, colour, random_identity(rng), pose)


def draw_occluder(canvas: Image.Image, occ: Occlusion, light: float = 0.0) -> None:
    """Cover about `occ.area` of the canvas: a car or a bush from the bottom, a pillar from the side,
    or a passer-by in front."""
    w, h = canvas.size
    draw = ImageDraw.Draw(canvas)
    if occ.kind == "car":  # bonnet/side of a car across the bottom
        top = h * (1 - occ.area)
        draw.rounded_rectangle((-0.2 * w, top, 1.2 * w, h + 0.1 * h), radius=0.12 * w, fill=occ.colour)
        trim = (-0.2 * w, top + 0.35 * (h - top), 1.2 * w, top + 0.42 * (h - top))
        draw.rectangle(trim, fill=shaded(occ.colour, 0.7))
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
        draw.rectangle((x0 + band * 0.7, 0, x0 + band, h), fill=shaded(grey, 0.8))
    elif occ.kind == "bush":  # a round hedge standing on the bottom edge: a half-ellipse of area `area`
        rx = w * (0.42 + 0.08 * occ.position)
        ry = min(2 * occ.area * w * h / (math.pi * rx), h)
        x = rx + (w - 2 * rx) * occ.position
        green = (46, 104 + int(50 * occ.position), 48)
        draw.ellipse((x - rx, h - ry, x + rx, h + ry), fill=green)
        for i in range(7):  # leafy rim
            a = math.pi * (i + 0.5) / 7
            bx, by, r = x + rx * 0.85 * math.cos(a), h - ry * 0.88 * math.sin(a), 0.1 * w
            draw.ellipse((bx - r, by - r, bx + r, by + r), fill=shaded(green, 1.2 if i % 2 else 0.85))
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
        layer = person_layer(canvas.size, occ.person, pose, BodyFrame.place(occ.person, pose, h, w), light)
        miss = abs(float((np.asarray(layer)[..., 3] > 0).mean()) - occ.area)
        if best is None or miss < best[0]:
            best = (miss, layer)
    canvas.paste(best[1], mask=best[1])



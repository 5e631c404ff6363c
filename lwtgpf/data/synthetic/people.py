"""The people of the synthetic benchmark: who they are (attribute combinations), how they stand, how they are drawn.

An identity is a combination of discrete attributes drawn from small palettes (upper garment colour,
pattern and sleeves; lower garment colour, style and pattern; shoes; backpack; shoulder bag; cap; hair;
skin) plus body proportions. Any single attribute is shared by many people, so only the combination
tells two of them apart, and the combination is spread over body parts: the top of the crop shows
head, hair and cap, the middle the upper garment and bags, the bottom the lower garment and shoes.
That is what makes the part features of LWTGPF (2 + 3 horizontal stripes) informative on this
benchmark: two people with the same jacket differ in their trousers or shoes, and a backpack is seen
only from behind (a chest logo only from the front), as in real crops.

People are drawn with PIL at the supersampled canvas size onto a transparent layer, back to front,
garments first as masks and then filled with their fabric (so stripes and checks run across torso and
sleeves as one cloth). Body sizes are fractions of the person's height in pixels (`BodyFrame.unit`):
at the default framing a person covers most of the crop height and about half its width, as in the
boxes of a pedestrian detector.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

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
UPPER_PATTERNS = {"plain": 0.45, "stripes": 0.2, "checks": 0.15, "logo": 0.2}
LOWER_PATTERNS = {"plain": 0.75, "stripes": 0.12, "checks": 0.13}
LOWER_STYLES = {"trousers": 0.65, "shorts": 0.2, "skirt": 0.15}
HAIR_STYLES = {"short": 0.4, "long": 0.25, "buzz": 0.15, "ponytail": 0.1, "bun": 0.1}
VIEWS = ("front", "back", "side")

# Body widths as fractions of the person's height (before the identity's `build`, 0.9-1.25). With a
# person 0.9 of a 2:1 crop's height, front-view shoulders span about 0.5 of the crop width, arms
# included a little more: the share of a detector box a pedestrian fills (Market-1501, DukeMTMC).
SHOULDER_HALF = 0.12
HIP_HALF = 0.095
SIDE_SHOULDER_HALF = 0.085  # a side view is narrower, but a body in profile is not a stick
SIDE_HIP_HALF = 0.075
LIMB = 0.058  # arm thickness
LEG_SPREAD = 0.055  # hip joint and foot distance from the body's centre line (front / back views)


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
        build=float(rng.uniform(0.9, 1.25)),
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
        fill=float(rng.uniform(0.86, 0.97)),
    )


@dataclass(frozen=True)
class BodyFrame:
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
    limb: float  # arm thickness; thighs are 1.35x, shins 1.15x

    @staticmethod
    def place(identity: Identity, pose: Pose, canvas_h: int, canvas_w: int) -> "BodyFrame":
        u = canvas_h * pose.fill * identity.stature
        top = (canvas_h - u) * pose.y_shift if u < canvas_h else (canvas_h - u) * 0.5
        head_h = 0.125 * u * identity.head_scale
        shoulder_y = top + head_h + 0.022 * u
        torso = (top + 0.965 * u - shoulder_y) / (1 + identity.leg_ratio)
        side = pose.view == "side"
        return BodyFrame(
            cx=canvas_w * (0.5 + pose.x_shift),
            top=top,
            unit=u,
            head_h=head_h,
            head_w=0.092 * u * identity.head_scale,
            shoulder_y=shoulder_y,
            hip_y=shoulder_y + torso,
            ground=top + u,
            shoulder_half=(SIDE_SHOULDER_HALF if side else SHOULDER_HALF) * u * identity.build,
            hip_half=(SIDE_HIP_HALF if side else HIP_HALF) * u * identity.build,
            limb=LIMB * u * identity.build,
        )


def shaded(colour: RGB, factor: float) -> RGB:
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
        canvas.paste(base + (255,) if canvas.mode == "RGBA" else base, box, mask=mask.crop(box))
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


def draw_shadow(canvas: Image.Image, body: BodyFrame) -> None:
    """A soft dark ellipse on the ground under the feet (drawn in its own small box)."""
    w, h = 0.17 * body.unit, 0.022 * body.unit
    x0, y0 = math.floor(body.cx - w), math.floor(body.ground - h)
    x1, y1 = math.ceil(body.cx + w) + 1, math.ceil(body.ground + h) + 1
    if x1 <= 0 or y1 <= 0 or x0 >= canvas.width or y0 >= canvas.height:
        return
    mask = Image.new("L", (x1 - x0, y1 - y0), 0)
    ImageDraw.Draw(mask).ellipse((body.cx - w - x0, body.ground - h - y0, body.cx + w - x0, body.ground + h - y0),
                                 fill=90)
    canvas.paste((0, 0, 0), (x0, y0, x1, y1), mask=mask)


def person_layer(size: tuple[int, int], person: Identity, pose: Pose, body: BodyFrame,
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


def paste_person(canvas: Image.Image, person: Identity, pose: Pose, body: BodyFrame, light: float) -> None:
    layer = person_layer(canvas.size, person, pose, body, light)
    box = layer.getbbox()
    if box is not None:
        part = layer.crop(box)
        canvas.paste(part, box, mask=part)


def _limb_positions(person: Identity, pose: Pose, body: BodyFrame) -> tuple[list, list]:
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
            hip = (cx + sign * LEG_SPREAD * u * person.build, body.hip_y)
            foot = (cx + sign * (LEG_SPREAD + 0.006) * u * person.build, body.ground - 0.02 * u - lift)
            legs.append((hip, _lerp(hip, foot, 0.5), foot))
            shoulder = (cx + sign * (body.shoulder_half - 0.022 * u), body.shoulder_y + 0.025 * u)
            hand = (shoulder[0] + sign * 0.025 * u, shoulder[1] + arm_len * (1 - 0.1 * abs(swing)))
        arms.append((shoulder, hand))
    return legs, arms


def _draw_person(layer: Image.Image, person: Identity, pose: Pose, body: BodyFrame) -> None:
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
        bare = shaded(skin if covered_to < 1 else lower, shade)
        _limb(draw, hip, knee, body.limb * 1.35, bare)
        _limb(draw, knee, foot, body.limb * 1.15, bare)
        if covered_to > 0:
            cloth_end = _lerp(hip, foot, covered_to * 0.98)
            if shade < 1:
                _limb(draw, hip, cloth_end, body.limb * 1.35, shaded(lower, shade))
            else:
                _limb(ImageDraw.Draw(lower_mask), hip, cloth_end, body.limb * 1.35, 255)
        toe = pose.facing * 0.035 * u if pose.view == "side" else 0.0
        shoe = (foot[0] - 0.036 * u + min(toe, 0), foot[1] - 0.024 * u,
                foot[0] + 0.036 * u + max(toe, 0), foot[1] + 0.022 * u)
        draw.ellipse(shoe, fill=shaded(SHOE_COLOURS[person.shoes], shade))

    def draw_arm(shoulder, hand, shade: float) -> None:
        _limb(draw, shoulder, hand, body.limb, shaded(skin, shade))
        sleeve_end = _lerp(shoulder, hand, sleeve_to)
        if shade < 1:
            _limb(draw, shoulder, sleeve_end, body.limb * 1.08, shaded(upper, shade))
        else:
            _limb(ImageDraw.Draw(upper_mask), shoulder, sleeve_end, body.limb * 1.08, 255)
        r = body.limb * 0.62
        draw.ellipse((hand[0] - r, hand[1] - r, hand[0] + r, hand[1] + r), fill=shaded(skin, shade))

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
    draw.rectangle(neck, fill=shaded(skin, 0.92))
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


def _draw_long_hair(draw: ImageDraw.ImageDraw, body: BodyFrame, hair: RGB, pose: Pose) -> None:
    half = body.head_w * 0.58
    x = body.cx - (pose.facing * 0.25 * body.head_w if pose.view == "side" else 0.0)
    box = (x - half, body.top + 0.4 * body.head_h, x + half, body.shoulder_y + 0.08 * body.unit)
    draw.rounded_rectangle(box, radius=0.02 * body.unit, fill=hair)


def _draw_cap(draw: ImageDraw.ImageDraw, head: tuple, colour: RGB, pose: Pose) -> None:
    x0, y0, x1, y1 = head
    w, hh = x1 - x0, y1 - y0
    draw.chord((x0 - 0.06 * w, y0 - 0.08 * hh, x1 + 0.06 * w, y0 + 0.9 * hh), 180, 360, fill=colour)
    brim_y, brim = y0 + 0.36 * hh, shaded(colour, 0.85)
    if pose.view == "side":
        near, far = (x1, x1 + 0.45 * w) if pose.facing > 0 else (x0 - 0.45 * w, x0)
        draw.ellipse((near, brim_y - 0.06 * hh, far, brim_y + 0.08 * hh), fill=brim)
    elif pose.view == "front":
        draw.ellipse((x0 - 0.05 * w, brim_y - 0.06 * hh, x1 + 0.05 * w, brim_y + 0.1 * hh), fill=brim)


def _draw_backpack(draw: ImageDraw.ImageDraw, body: BodyFrame, person: Identity, pose: Pose) -> None:
    """Seen from behind: the whole bag; from the side: its depth behind the back; from the front: straps."""
    colour = BAG_COLOURS[person.backpack]
    u, cx = body.unit, body.cx
    top, bottom = body.shoulder_y + 0.01 * u, body.shoulder_y + 0.62 * (body.hip_y - body.shoulder_y)
    if pose.view == "front":
        for side in (-1, 1):
            x = cx + side * body.shoulder_half * 0.55
            draw.line((x, body.shoulder_y, x + side * 0.01 * u, bottom - 0.05 * u), fill=shaded(colour, 0.8),
                      width=max(1, int(0.014 * u)))
    elif pose.view == "side":
        back = cx - pose.facing * body.shoulder_half
        x0, x1 = sorted((back, back - pose.facing * 0.07 * u))
        draw.rounded_rectangle((x0, top, x1, bottom), radius=0.02 * u, fill=colour)
    else:
        half = body.shoulder_half * 0.78
        draw.rounded_rectangle((cx - half, top, cx + half, bottom), radius=0.03 * u, fill=colour)
        draw.rounded_rectangle((cx - half * 0.7, (top + bottom) / 2, cx + half * 0.7, bottom - 0.01 * u),
                               radius=0.015 * u, fill=shaded(colour, 0.78))  # front pocket


def _draw_shoulder_bag(draw: ImageDraw.ImageDraw, body: BodyFrame, person: Identity, pose: Pose) -> None:
    """A bag at the hip on a strap: across the chest (hanging on the person's left) or down the side."""
    colour = BAG_COLOURS[person.shoulder_bag]
    u, cx = body.unit, body.cx
    if pose.view == "side":
        bag_x, strap_from = cx + pose.facing * 0.01 * u, (cx, body.shoulder_y)
    else:
        side = 1 if pose.view == "front" else -1
        bag_x = cx + side * (body.hip_half + 0.03 * u)
        strap_from = (cx - side * body.shoulder_half * 0.7, body.shoulder_y)
    draw.line((*strap_from, bag_x, body.hip_y - 0.03 * u), fill=shaded(colour, 0.8), width=max(1, int(0.012 * u)))
    draw.rounded_rectangle((bag_x - 0.045 * u, body.hip_y - 0.04 * u, bag_x + 0.045 * u, body.hip_y + 0.055 * u),
                           radius=0.01 * u, fill=colour)


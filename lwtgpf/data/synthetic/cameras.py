"""The cameras of the synthetic benchmark: how each one records the world it films.

A camera is a consistent appearance shift applied to every crop it takes: colour cast, exposure,
contrast, gamma, saturation, optical blur, resolution loss, sensor noise, JPEG quality and side light,
plus its own mix of front / back / side views (where people walk relative to it) and the places it
films (`backgrounds`, from `scenes.camera_backgrounds`). Generic features group crops by camera before
they group them by person; camera-aware proxies (O2CAP, LWTGPF) exist to fix exactly that.

The nine looks below are hand-designed so that any two cameras differ clearly; a preset uses the first
`num_cameras` of them, jittered a little per seed, and scales their distance from a neutral camera by
its `camera_shift` (1 = as designed, 0 = every camera neutral), the knob the calibration report
(`bench/calibrate_synthetic.py`) measures.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from . import streams
from .scenes import Background

NEUTRAL_JPEG_QUALITY = 95  # what `camera_shift = 0` encodes with


@dataclass(frozen=True)
class CameraLook:
    """How one camera renders the world: a consistent shift applied to every crop it sees."""

    name: str
    gains: tuple[float, float, float]  # per-channel colour cast (multiplies R, G, B)
    brightness: float  # added after contrast, in [0, 1] intensity units
    contrast: float  # around mid-grey; 1 = unchanged
    gamma: float  # > 1 darkens mid-tones
    saturation: float  # 1 = unchanged, 0 = grey
    blur: float  # Gaussian radius in pixels of a 64-pixel-wide crop (scaled with the crop width)
    downscale: float  # resolution loss: the crop is down- and up-sampled by this factor (1 = none)
    noise: float  # std of sensor noise, [0, 1] intensity units
    jpeg_quality: int  # 1-95, PIL scale
    view_probs: tuple[float, float, float]  # probability of front / back / side views
    light: float = 0.0  # side light on people: > 0 brightens their image-right side, < 0 the left
    backgrounds: tuple[Background, ...] = ()  # the places it films; set by `camera_looks`

    def __post_init__(self) -> None:
        if abs(sum(self.view_probs) - 1.0) > 1e-6:
            raise ValueError(f"camera look {self.name!r}: view_probs {self.view_probs} must sum to 1")

    def scaled(self, strength: float) -> "CameraLook":
        """This look with its distance from a neutral camera multiplied by `strength` (views unchanged)."""
        def toward(value: float, neutral: float) -> float:
            return neutral + strength * (value - neutral)

        return dataclasses.replace(
            self, gains=tuple(toward(g, 1.0) for g in self.gains), brightness=toward(self.brightness, 0.0),
            contrast=toward(self.contrast, 1.0), gamma=toward(self.gamma, 1.0),
            saturation=toward(self.saturation, 1.0), blur=toward(self.blur, 0.0),
            downscale=min(1.0, toward(self.downscale, 1.0)), noise=toward(self.noise, 0.0),
            jpeg_quality=int(round(toward(self.jpeg_quality, NEUTRAL_JPEG_QUALITY))), light=toward(self.light, 0.0),
        )


CAMERA_LOOKS: tuple[CameraLook, ...] = (
    CameraLook("daylight", gains=(1.04, 1.0, 0.95), brightness=0.04, contrast=1.1, gamma=1.0, saturation=1.05,
               blur=0.0, downscale=1.0, noise=0.012, jpeg_quality=92, view_probs=(0.5, 0.3, 0.2), light=0.18),
    CameraLook("blue shade", gains=(0.8, 0.92, 1.22), brightness=-0.03, contrast=0.9, gamma=1.05, saturation=0.85,
               blur=0.5, downscale=0.8, noise=0.02, jpeg_quality=85, view_probs=(0.2, 0.6, 0.2), light=-0.1),
    CameraLook("warm indoor", gains=(1.25, 1.0, 0.72), brightness=0.0, contrast=0.95, gamma=0.9, saturation=1.0,
               blur=0.3, downscale=0.9, noise=0.03, jpeg_quality=88, view_probs=(0.3, 0.2, 0.5), light=0.08),
    CameraLook("dim night", gains=(0.95, 0.95, 1.1), brightness=-0.12, contrast=0.85, gamma=1.35, saturation=0.7,
               blur=0.6, downscale=0.55, noise=0.05, jpeg_quality=75, view_probs=(0.4, 0.4, 0.2), light=-0.2),
    CameraLook("green fluorescent", gains=(0.88, 1.16, 0.86), brightness=0.02, contrast=1.2, gamma=1.0,
               saturation=1.0, blur=0.8, downscale=0.75, noise=0.025, jpeg_quality=85, view_probs=(0.6, 0.1, 0.3),
               light=0.12),
    CameraLook("washed out", gains=(1.0, 1.0, 1.02), brightness=0.14, contrast=0.7, gamma=0.8, saturation=0.6,
               blur=0.4, downscale=0.9, noise=0.015, jpeg_quality=90, view_probs=(0.2, 0.3, 0.5), light=0.05),
    CameraLook("magenta cctv", gains=(1.16, 0.84, 1.12), brightness=0.0, contrast=1.0, gamma=1.1, saturation=0.7,
               blur=0.5, downscale=0.45, noise=0.04, jpeg_quality=60, view_probs=(0.35, 0.35, 0.3), light=-0.12),
    CameraLook("high contrast", gains=(1.1, 0.96, 0.9), brightness=-0.02, contrast=1.4, gamma=1.2, saturation=1.15,
               blur=0.0, downscale=1.0, noise=0.02, jpeg_quality=90, view_probs=(0.45, 0.45, 0.1), light=0.25),
    CameraLook("cold overcast", gains=(0.92, 1.0, 1.08), brightness=0.05, contrast=0.8, gamma=1.0, saturation=0.8,
               blur=0.7, downscale=0.65, noise=0.03, jpeg_quality=80, view_probs=(0.3, 0.3, 0.4), light=0.06),
)


def camera_looks(num_cameras: int, seed: int, backgrounds: list[tuple[Background, ...]] | None = None,
                 strength: float = 1.0) -> list[CameraLook]:
    """The first `num_cameras` looks, scaled by `strength`, with a small seed-dependent jitter of the
    colour cast and exposure, and each camera's backgrounds when given."""
    if not 1 <= num_cameras <= len(CAMERA_LOOKS):
        raise ValueError(f"num_cameras must be in 1..{len(CAMERA_LOOKS)}, got {num_cameras}")
    looks = []
    for camid, look in enumerate(CAMERA_LOOKS[:num_cameras]):
        rng = streams.rng(seed, streams.CAMERAS, camid)
        look = look.scaled(strength)
        gains = tuple(float(g * rng.uniform(0.96, 1.04)) for g in look.gains)
        looks.append(dataclasses.replace(
            look, gains=gains, brightness=float(look.brightness + rng.uniform(-0.02, 0.02)),
            backgrounds=backgrounds[camid] if backgrounds is not None else (),
        ))
    return looks


def apply_camera(crop: Image.Image, look: CameraLook, rng: np.random.Generator) -> Image.Image:
    """Resolution loss, blur, colour cast, exposure (with a little shot-to-shot change) and sensor noise."""
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

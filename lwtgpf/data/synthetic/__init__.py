"""The built-in synthetic re-ID benchmark: procedurally drawn pedestrians seen by cameras that disagree.

Nothing is downloaded and nothing is learned: every crop is drawn with PIL and numpy from a seed, and
written as JPEG in the Market-1501 layout (`bounding_box_train/`, `query/`, `bounding_box_test/`, file
names like `0002_c1s1_000451_01.jpg`) plus a small `meta.json`, so the standard loader reads it:

    folder = generate_synthetic("benchmarks", preset="synthetic", seed=0)   # -> benchmarks/synthetic
    ds = build_dataset("synthetic", root="benchmarks")

It exists to show the mechanics of unsupervised re-ID honestly (SPEC section 12): camera shifts strong
enough that camera-agnostic clustering splits identities, identity cues (garments, parts, accessories)
that a pretrained network can find, and no constant per-camera scene for features to latch onto.

- `people`: an identity is a combination of attributes from small palettes, spread over body parts
  (head and cap, upper garment and bags, lower garment and shoes), so only the combination - often a
  single part - tells two people apart; people fill most of the crop's height and about half its width.
- `scenes`: eight scene types shared by the cameras; each camera films several backgrounds, and each
  tracklet a different window of one (position, horizon, zoom); bystanders behind the person and
  neighbours cut by the box edge.
- `cameras`: a camera is a consistent appearance shift (colour cast, exposure, blur, resolution loss,
  noise, JPEG quality, side light) and its own mix of front / back / side views.
- `occluders`: cars, pillars, bushes or passers-by hiding 20-50% of a crop (the occluded preset).
- `presets`: sizes and difficulty of each named benchmark; `writer`: the plan, the drawing of one
  crop, the files and meta.json (with the generator version the loader checks).

Determinism: every random draw comes from a numpy Generator seeded by (seed, stream, keys)
(`streams`), never from global state, and JPEG encoding is deterministic, so the same seed writes
byte-identical files. Each crop's occluder has its own stream, so `synthetic` and `synthetic_occluded`
with one seed hold the same people in the same poses and scenes and differ only by the occluders.
"""
from .cameras import CAMERA_LOOKS, CameraLook, apply_camera, camera_looks
from .occluders import Occlusion, random_occlusion
from .people import VIEWS, Identity, Pose, random_identity, random_pose, sample_identities
from .presets import SYNTHETIC_PRESETS, SyntheticPreset, resolve_preset
from .scenes import SCENE_TYPES, Background, Framing, SceneType, camera_backgrounds, random_framing
from .writer import (
    GENERATOR_NAME,
    GENERATOR_VERSION,
    Shot,
    build_cameras,
    crop_filename,
    ensure_synthetic,
    generate_synthetic,
    plan_dataset,
    render_crop,
)

__all__ = [
    "CAMERA_LOOKS",
    "GENERATOR_NAME",
    "GENERATOR_VERSION",
    "SCENE_TYPES",
    "SYNTHETIC_PRESETS",
    "VIEWS",
    "Background",
    "CameraLook",
    "Framing",
    "Identity",
    "Occlusion",
    "Pose",
    "SceneType",
    "Shot",
    "SyntheticPreset",
    "apply_camera",
    "build_cameras",
    "camera_backgrounds",
    "camera_looks",
    "crop_filename",
    "ensure_synthetic",
    "generate_synthetic",
    "plan_dataset",
    "random_framing",
    "random_identity",
    "random_occlusion",
    "random_pose",
    "render_crop",
    "resolve_preset",
    "sample_identities",
]

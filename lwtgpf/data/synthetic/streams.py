"""Keyed random streams: every random draw of the generator comes from one of these, never from global state.

A draw is keyed by (seed, stream, keys...), so changing one part of the dataset (another occluder, one
more identity) never shifts the draws of another part, and the same seed writes byte-identical files.
"""
from __future__ import annotations

import numpy as np

# One number per kind of draw. Never renumber: a stream's number is part of every file it decides.
IDENTITIES = 1  # the people of a dataset
CAMERAS = 2  # each camera's jitter around its hand-designed look
PLAN = 3  # who is seen by which camera, queries, frame numbers
TRACKLET = 4  # one person's walk through one camera: poses, scene, framing
CROP = 5  # one crop: noise, exposure, bystanders, neighbours
OCCLUSION = 6  # one crop's occluder (its own stream: the occluded preset changes nothing else)
SCENES = 7  # which scene types each camera films, and each background's layout


def rng(seed: int, stream: int, *keys: int) -> np.random.Generator:
    """A numpy Generator seeded by the seed, the stream number and the keys (non-negative ints)."""
    return np.random.default_rng([seed, stream, *keys])

"""The synthetic benchmark: deterministic, in the Market layout the loader reads, a valid re-ID protocol,
occluded when asked, and with a camera shift that generic features cannot see through."""
from __future__ import annotations

import json
import re
from collections import defaultdict

import numpy as np
import pytest
from PIL import Image

from lwtgpf.data import build_dataset
from lwtgpf.data.synthetic import (
    SYNTHETIC_PRESETS,
    Pose,
    camera_looks,
    generate_synthetic,
    random_pose,
    render_crop,
    sample_identities,
)

# small enough to generate in about half a second, big enough for every protocol rule to show up
TINY = dict(num_train_ids=10, num_test_ids=10, num_cameras=4, cameras_per_id=(2, 4), crops_per_camera=(2, 3),
            num_distractors=4)
MARKET_NAME = re.compile(r"(\d{4})_c(\d)s(\d)_(\d{6})_(\d{2})\.jpg")
SPLITS = ("bounding_box_train", "query", "bounding_box_test")


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    generate_synthetic(root, "synthetic", seed=0, **TINY)
    return root


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_writes_identical_bytes_and_another_seed_does_not(tiny_root, tmp_path):
    again = generate_synthetic(tmp_path / "again", "synthetic", seed=0, **TINY)
    other = generate_synthetic(tmp_path / "other", "synthetic", seed=1, **TINY)
    first = _files(tiny_root / "synthetic")
    assert _files(again) == first
    other_images = {data for name, data in _files(other).items() if name.endswith(".jpg")}
    first_images = {data for name, data in first.items() if name.endswith(".jpg")}
    assert other_images and not other_images & first_images, "another seed must draw other crops"


def test_source_preset_draws_other_people_at_the_same_seed(tiny_root, tmp_path):
    source = generate_synthetic(tmp_path, "synthetic_source", seed=0, **TINY)
    source_images = {data for name, data in _files(source).items() if name.endswith(".jpg")}
    first_images = {data for name, data in _files(tiny_root / "synthetic").items() if name.endswith(".jpg")}
    assert source_images and not source_images & first_images
    assert len(build_dataset("synthetic_source", tmp_path).train) > 0


def test_market_layout_meta_and_loader(tiny_root):
    folder = tiny_root / "synthetic"
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["num_cameras"] == 4 and meta["preset"] == "synthetic" and meta["seed"] == 0
    assert (meta["height"], meta["width"]) == (128, 64)
    for split in SPLITS:
        names = [p.name for p in (folder / split).iterdir()]
        assert names and all(MARKET_NAME.fullmatch(n) for n in names), names[:3]
        assert all(1 <= int(MARKET_NAME.fullmatch(n).group(2)) <= 4 for n in names)
    with Image.open(next((folder / "query").iterdir())) as image:
        assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (64, 128))

    ds = build_dataset("synthetic", root=tiny_root)
    assert ds.num_cameras == 4
    assert {s: len(ds.split(s)) for s in ("train", "query", "gallery")} == meta["num_images"]
    train_ids = {r.pid for r in ds.train}
    test_ids = {r.pid for r in ds.query + ds.gallery} - {0}
    assert len(train_ids) == 10 and len(test_ids) == 10 and not train_ids & test_ids
    assert 0 not in train_ids and 0 not in {r.pid for r in ds.query}
    assert sum(r.pid == 0 for r in ds.gallery) == 4
    cameras = defaultdict(set)
    for r in ds.train + ds.query + ds.gallery:
        cameras[r.pid].add(r.camid)
    assert all(len(cameras[pid]) >= 2 for pid in train_ids | test_ids)


def test_every_query_has_a_gallery_match_in_another_camera(tiny_root):
    ds = build_dataset("synthetic", root=tiny_root)
    gallery = {(r.pid, r.camid) for r in ds.gallery}
    assert {r.pid for r in ds.query} == {r.pid for r in ds.gallery} - {0}
    for query in ds.query:
        assert any(pid == query.pid and cam != query.camid for pid, cam in gallery), query
    per_camera = defaultdict(int)
    for query in ds.query:
        per_camera[(query.pid, query.camid)] += 1
    assert max(per_camera.values()) == 1  # one query per (identity, camera), like Market


def test_occluded_preset_hides_part_of_queries_only(tiny_root):
    """Same seed: the occluded preset holds the same crops, so the pixels it changed are the occluders."""
    occluded = generate_synthetic(tiny_root, "synthetic_occluded", seed=0, **TINY)
    clean = tiny_root / "synthetic"

    def changed_fraction(split):
        fractions = []
        for path in sorted((clean / split).iterdir()):
            a = np.asarray(Image.open(path), dtype=np.int16)
            b = np.asarray(Image.open(occluded / split / path.name), dtype=np.int16)
            fractions.append(float((np.abs(a - b).max(axis=2) > 10).mean()))
        return np.array(fractions)

    query = changed_fraction("query")
    assert np.median(query) > 0.15 and np.mean(query > 0.08) >= 0.9, np.sort(query)
    assert query.max() < 0.65  # an occluder hides part of the person, not the whole crop
    train = changed_fraction("bounding_box_train")
    assert np.mean(train == 0) > 0.7  # only about a tenth of the training crops are occluded


def test_camera_shift_beats_identity_for_generic_features(tiny_root):
    """Mean colours of four horizontal bands: a person seen by two cameras is further from itself than
    from other people in one camera (what camera-aware proxies exist to fix), while inside one camera
    the identity is still there (a person is closer to itself than to others)."""
    ds = build_dataset("synthetic", root=tiny_root)
    records = [r for r in ds.train + ds.query + ds.gallery if r.pid > 0]
    features = []
    for record in records:
        pixels = np.asarray(Image.open(record.path), dtype=np.float32) / 255.0
        features.append(np.concatenate([band.mean(axis=(0, 1)) for band in np.array_split(pixels, 4, axis=0)]))
    features = np.stack(features)
    dist = np.linalg.norm(features[:, None] - features[None], axis=2)
    pid = np.array([r.pid for r in records])
    cam = np.array([r.camid for r in records])
    same_id, same_cam = pid[:, None] == pid[None], cam[:, None] == cam[None]
    not_self = ~np.eye(len(records), dtype=bool)
    same_id_other_cam = dist[same_id & ~same_cam].mean()
    other_id_same_cam = dist[~same_id & same_cam].mean()
    same_id_same_cam = dist[same_id & same_cam & not_self].mean()
    assert same_id_other_cam > 1.5 * other_id_same_cam
    assert same_id_same_cam < other_id_same_cam
    nearest = np.where(not_self, dist, np.inf).argmin(axis=1)
    assert np.mean(cam[nearest] == cam) > 0.9  # nearest neighbours cluster by camera


def test_refuses_to_overwrite_unless_asked(tmp_path):
    small = dict(TINY, num_train_ids=2, num_test_ids=2, num_distractors=0)
    folder = generate_synthetic(tmp_path, "synthetic", seed=0, **small)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        generate_synthetic(tmp_path, "synthetic", seed=1, **small)
    assert generate_synthetic(tmp_path, "synthetic", seed=1, overwrite=True, **small) == folder
    assert json.loads((folder / "meta.json").read_text())["seed"] == 1
    assert not (tmp_path / ".synthetic.partial").exists()

    foreign = tmp_path / "elsewhere" / "synthetic"
    foreign.mkdir(parents=True)
    (foreign / "holiday.jpg").write_bytes(b"not ours")
    with pytest.raises(FileExistsError, match="did not write"):
        generate_synthetic(tmp_path / "elsewhere", "synthetic", overwrite=True, **small)
    assert (foreign / "holiday.jpg").exists()


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="unknown synthetic preset 'nope'"):
        generate_synthetic("unused", "nope")
    with pytest.raises(ValueError, match="num_people"):
        generate_synthetic("unused", "synthetic", num_people=3)
    with pytest.raises(ValueError, match="crops_per_camera"):
        generate_synthetic("unused", "synthetic", crops_per_camera=(1, 3))
    with pytest.raises(ValueError, match="view"):
        Pose("upside-down", 1, 0.0, 0.0, 0.5, 0.9)


def test_render_crop_size_and_presets():
    assert set(SYNTHETIC_PRESETS) == {"synthetic", "synthetic_occluded", "synthetic_large", "synthetic_source"}
    large = SYNTHETIC_PRESETS["synthetic_large"]
    assert large.num_train_ids > SYNTHETIC_PRESETS["synthetic"].num_train_ids and large.num_cameras == 8
    person = sample_identities(1, np.random.default_rng(0))[0]
    look = camera_looks(1, seed=0)[0]
    rng = np.random.default_rng(0)
    crop = render_crop(person, look, random_pose(rng), rng, size=(large.height, large.width))
    assert crop.size == (large.width, large.height) and crop.mode == "RGB"
    # a person is drawn: the crop's centre column differs from its background edge columns
    pixels = np.asarray(crop, dtype=np.float32)
    assert np.abs(pixels[:, large.width // 2] - pixels[:, 2]).mean() > 10


def test_overview_figure(tiny_root, tmp_path):
    from lwtgpf.viz.dataset_figures import save_synthetic_overview, synthetic_overview_figure

    fig = synthetic_overview_figure(tiny_root / "synthetic")
    images = [ax for ax in fig.get_axes() if ax.get_images()]
    assert len(images) >= 4 + 4  # one identity in >= 2 cameras x 2 rows, and identities in camera 1
    out = save_synthetic_overview(tiny_root / "synthetic", tmp_path / "figs" / "overview.png")
    with Image.open(out) as png:
        assert png.format == "PNG" and png.size[0] > 300

"""The synthetic benchmark: deterministic, versioned, in the Market layout the loader reads, a valid re-ID
protocol, occluded when asked, with scenes that vary inside a camera and are shared between cameras,
people who fill the box, and a camera shift that generic features still see."""
from __future__ import annotations

import json
import re
from collections import defaultdict

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

from lwtgpf.data import DatasetError, build_dataset
from lwtgpf.data.synthetic import (
    GENERATOR_VERSION,
    SCENE_TYPES,
    SYNTHETIC_PRESETS,
    Pose,
    build_cameras,
    camera_looks,
    ensure_synthetic,
    generate_synthetic,
    plan_dataset,
    random_pose,
    render_crop,
    resolve_preset,
    sample_identities,
)
from lwtgpf.data.synthetic.people import BodyFrame, person_layer

# small enough to generate in about a second, big enough for every protocol rule to show up
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


def test_same_seed_writes_identical_bytes_and_another_seed_does_not(tiny_root, tmp_path, monkeypatch):
    monkeypatch.setattr("lwtgpf.data.synthetic.writer.MIN_SHOTS_PER_WORKER", 1)
    again = generate_synthetic(tmp_path / "again", "synthetic", seed=0, workers=2, **TINY)  # in two processes
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
    assert meta["generator_version"] == GENERATOR_VERSION
    assert (meta["height"], meta["width"]) == (64, 32)
    assert len(meta["backgrounds"]) == 4 and all(len(b) == 4 for b in meta["backgrounds"])
    for split in SPLITS:
        names = [p.name for p in (folder / split).iterdir()]
        assert names and all(MARKET_NAME.fullmatch(n) for n in names), names[:3]
        assert all(1 <= int(MARKET_NAME.fullmatch(n).group(2)) <= 4 for n in names)
    with Image.open(next((folder / "query").iterdir())) as image:
        assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (32, 64))
        # stored without chroma subsampling: the colours identities are told apart by keep full resolution
        assert JpegImagePlugin.get_sampling(image) == 0

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


def test_older_generator_output_is_refused_with_the_command_that_regenerates_it(tmp_path):
    small = dict(TINY, num_train_ids=2, num_test_ids=2, num_distractors=0)
    folder = generate_synthetic(tmp_path, "synthetic", seed=0, **small)
    meta = json.loads((folder / "meta.json").read_text())
    (folder / "meta.json").write_text(json.dumps(dict(meta, generator_version=1)))
    with pytest.raises(DatasetError) as err:
        build_dataset("synthetic", root=tmp_path)
    message = str(err.value)
    assert "\n" not in message and "generator version 1" in message, message
    assert f"lwtgpf synth --preset synthetic --overwrite --root {tmp_path.absolute()}" in message, message
    # `ensure_synthetic` (what `lwtgpf demo` and the benches call) regenerates such a folder, keeps a current one
    assert ensure_synthetic(tmp_path, "synthetic", **small).startswith("regenerated")
    assert json.loads((folder / "meta.json").read_text())["generator_version"] == GENERATOR_VERSION
    assert ensure_synthetic(tmp_path, "synthetic", **small) == "kept"
    # a hand-made folder in the same layout (no "generator" key) is read as it is
    (folder / "meta.json").write_text(json.dumps({"num_cameras": 4}))
    assert build_dataset("synthetic", root=tmp_path).num_cameras == 4


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


def test_scenes_vary_inside_a_camera_and_are_shared_between_cameras():
    preset = resolve_preset("synthetic")
    cameras = build_cameras(preset, seed=0)
    scene_cameras = defaultdict(set)
    for camid, look in enumerate(cameras):
        places = look.backgrounds
        assert len(places) == preset.backgrounds_per_camera == len({p.scene for p in places}) >= 3
        for place in places:
            scene_cameras[place].add(camid)
    assert {p.scene for p in scene_cameras} == set(SCENE_TYPES)  # 6 cameras x 4 places: all 8 places ...
    assert all(len(cams) >= 3 for cams in scene_cameras.values())  # ... each filmed by several cameras

    shots = [s for s in plan_dataset(preset, seed=0) if s.pid > 0]
    for camid in range(preset.num_cameras):
        framings = [s.framing for s in shots if s.camid == camid]
        assert len({f.background for f in framings}) == preset.backgrounds_per_camera
        horizons = np.array([f.horizon for f in framings])
        assert horizons.max() - horizons.min() > 0.3  # from about mid-crop down to near the feet


def test_people_fill_most_of_the_height_and_about_half_the_width():
    """As in a detector's box: front and back views, arms included, span about half the crop's width at
    the chest, and the person most of its height."""
    people = sample_identities(40, np.random.default_rng(0))
    rng = np.random.default_rng(1)
    heights, widths = [], []
    for person in people:
        pose = random_pose(rng, (0.5, 0.5, 0.0))
        body = BodyFrame.place(person, pose, 256, 128)
        alpha = np.asarray(person_layer((128, 256), person, pose, body, light=0.0))[..., 3] > 0
        rows = np.nonzero(alpha.any(axis=1))[0]
        heights.append((rows[-1] - rows[0] + 1) / 256)
        widths.append(alpha[int(body.shoulder_y + 0.3 * (body.hip_y - body.shoulder_y))].mean())
    assert np.median(heights) > 0.85, np.median(heights)
    assert 0.45 < np.median(widths) < 0.62, np.median(widths)


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


def test_generic_features_see_the_camera_and_the_person(tiny_root):
    """Mean colours of four horizontal bands, a generic feature: a crop's nearest neighbours come from
    its own camera far more often than chance (the camera shift camera-aware proxies exist to fix), and
    inside one camera a person is still closer to itself than to other people."""
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
    assert dist[same_id & same_cam & not_self].mean() < dist[~same_id & same_cam].mean()
    nearest = np.where(not_self, dist, np.inf).argsort(axis=1)[:, :5]
    chance = (np.bincount(cam)[cam] - 1).mean() / (len(cam) - 1)
    assert np.mean(cam[nearest] == cam[:, None]) > 2 * chance


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
    with pytest.raises(ValueError, match="backgrounds_per_camera"):
        generate_synthetic("unused", "synthetic", backgrounds_per_camera=9)
    with pytest.raises(ValueError, match="camera_shift"):
        generate_synthetic("unused", "synthetic", camera_shift=-0.5)
    with pytest.raises(ValueError, match="view"):
        Pose("upside-down", 1, 0.0, 0.0, 0.5, 0.9)


def test_camera_shift_scales_every_look_toward_a_neutral_camera():
    designed, neutral, half = camera_looks(6, 0), camera_looks(6, 0, strength=0.0), camera_looks(6, 0, strength=0.5)
    for d, n, h in zip(designed, neutral, half):
        assert n.contrast == n.saturation == n.downscale == 1.0 and n.blur == n.noise == 0.0
        assert h.contrast == pytest.approx((d.contrast + 1) / 2) and h.view_probs == d.view_probs


def test_render_crop_size_and_presets():
    assert set(SYNTHETIC_PRESETS) == {"synthetic", "synthetic_occluded", "synthetic_large", "synthetic_source"}
    large = SYNTHETIC_PRESETS["synthetic_large"]
    assert large.num_train_ids > SYNTHETIC_PRESETS["synthetic"].num_train_ids and large.num_cameras == 8
    person = sample_identities(1, np.random.default_rng(0))[0]
    look = build_cameras(resolve_preset("synthetic"), seed=0)[0]
    rng = np.random.default_rng(0)
    crop = render_crop(person, look, random_pose(rng), rng, size=(large.height, large.width))
    assert crop.size == (large.width, large.height) and crop.mode == "RGB"
    # a person is drawn: the crop's centre column differs from its edge columns
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

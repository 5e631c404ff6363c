"""Dataset registry and loaders on tiny folders with the real layouts and file names of each benchmark."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lwtgpf.data import (
    DATASETS,
    DatasetError,
    ImageDataset,
    Record,
    available_datasets,
    build_dataset,
    contiguous_labels,
    register_dataset,
)


def write_image(path: Path, color: tuple[int, int, int] = (120, 60, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 16), color).save(path)


def write_split(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        write_image(folder / name)


def write_strays(folder: Path) -> None:
    (folder / "readme.txt").write_text("not an image")
    (folder / "Thumbs.db").write_bytes(b"\x00\x01")


# --- Market-1501 --------------------------------------------------------------------------------------

MARKET_TRAIN = ["0002_c1s1_000451_03.jpg", "0002_c3s1_000551_01.jpg", "0007_c2s1_000101_01.jpg"]
MARKET_QUERY = ["0002_c5s1_000801_00.jpg", "0007_c6s2_000201_00.jpg"]
MARKET_GALLERY = [
    "0000_c1s1_000151_01.jpg",  # distractor: kept
    "-1_c1s1_000401_03.jpg",  # junk: dropped
    "0002_c4s1_000301_02.jpg",
    "0007_c2s1_000501_01.jpg",
]


def make_market(root: Path, folder: str = "Market-1501-v15.09.15") -> Path:
    base = root / folder
    write_split(base / "bounding_box_train", MARKET_TRAIN)
    write_split(base / "query", MARKET_QUERY)
    write_split(base / "bounding_box_test", MARKET_GALLERY)
    for split in ("bounding_box_train", "query", "bounding_box_test"):
        write_strays(base / split)
    return base


@pytest.mark.parametrize("folder", ["Market-1501-v15.09.15", "Market-1501"])
def test_market1501_records(tmp_path, folder):
    # parent folders that look like a camera or a whole crop name must not confuse the parser
    root = tmp_path / "x_c1" / "9999_c5s1_000001_01"
    base = make_market(root, folder)
    ds = build_dataset("market1501", root=root)

    assert ds.name == "market1501" and ds.num_cameras == 6 and Path(ds.root) == base
    assert [(Path(r.path).name, r.pid, r.camid) for r in ds.train] == [
        ("0002_c1s1_000451_03.jpg", 2, 0),
        ("0002_c3s1_000551_01.jpg", 2, 2),
        ("0007_c2s1_000101_01.jpg", 7, 1),
    ]
    assert [(r.pid, r.camid) for r in ds.query] == [(2, 4), (7, 5)]
    # junk -1 dropped, distractor 0 kept, strays ignored
    assert sorted((r.pid, r.camid) for r in ds.gallery) == [(0, 0), (2, 3), (7, 1)]
    assert all(Path(r.path).is_file() for r in ds.train + ds.query + ds.gallery)


def test_statistics_table_counts(tmp_path):
    make_market(tmp_path)
    table = build_dataset("market1501", root=tmp_path).statistics()
    rows = {line.split("|")[0].strip(): [int(x) for x in line.split("|")[1:]] for line in table.splitlines()
            if line.strip().startswith(("train", "query", "gallery"))}
    assert rows == {"train": [2, 3, 3], "query": [2, 2, 2], "gallery": [3, 3, 3]}


# --- Duke, Occluded-Duke, CUHK03-NP, synthetic: the same parser with other names / cameras --------------

DUKE = (["0001_c2_f0046182.jpg", "0001_c8_f0050123.jpg", "0005_c1_f0000001.jpg"],
        ["0001_c6_f0060000.jpg"], ["0001_c3_f0070000.jpg", "0009_c7_f0080000.jpg"])
CUHK = (["0001_c1_1.png", "0001_c2_6.png", "0003_c1_2.png"], ["0001_c2_7.png"], ["0001_c1_3.png", "0004_c2_9.png"])


@pytest.mark.parametrize(
    "name, folder, names, expected_cams, num_cameras",
    [
        ("dukemtmc", "DukeMTMC-reID", DUKE, [1, 7, 0], 8),
        ("occduke", "Occluded_Duke", DUKE, [1, 7, 0], 8),
        ("cuhk03", "cuhk03-np/labeled", CUHK, [0, 1, 0], 2),
        ("cuhk03_detected", "cuhk03-np/detected", CUHK, [0, 1, 0], 2),
    ],
)
def test_market_style_datasets(tmp_path, name, folder, names, expected_cams, num_cameras):
    base = tmp_path / folder
    for split, split_names in zip(("bounding_box_train", "query", "bounding_box_test"), names):
        write_split(base / split, split_names)
        write_strays(base / split)
    ds = build_dataset(name, root=tmp_path)
    assert ds.num_cameras == num_cameras
    assert [r.camid for r in ds.train] == expected_cams
    assert [r.pid for r in ds.train] == [int(n.split("_")[0]) for n in names[0]]
    assert (len(ds.query), len(ds.gallery)) == (1, 2)


def test_cuhk03_ignores_jpg_and_reads_png(tmp_path):
    base = tmp_path / "cuhk03-np/labeled"
    for split in ("bounding_box_train", "query", "bounding_box_test"):
        write_split(base / split, ["0001_c1_1.png", "0002_c2_1.jpg"])
    ds = build_dataset("cuhk03", root=tmp_path)
    assert [Path(r.path).name for r in ds.train] == ["0001_c1_1.png"]


def make_synthetic(root: Path, name: str = "synthetic", num_cameras: int | None = 3) -> Path:
    base = root / name
    write_split(base / "bounding_box_train", ["0001_c1s1_000001_00.jpg", "0001_c3s1_000002_00.jpg"])
    write_split(base / "query", ["0001_c2s1_000003_00.jpg"])
    write_split(base / "bounding_box_test", ["0001_c1s1_000004_00.jpg", "0002_c3s1_000005_00.jpg"])
    if num_cameras is not None:
        (base / "meta.json").write_text(json.dumps({"num_cameras": num_cameras, "preset": name}))
    return base


@pytest.mark.parametrize("name", ["synthetic", "synthetic_occluded", "synthetic_large", "synthetic_source"])
def test_synthetic_reads_cameras_from_meta(tmp_path, name):
    make_synthetic(tmp_path, name)
    ds = build_dataset(name, root=tmp_path)
    assert ds.num_cameras == 3
    assert [r.camid for r in ds.train] == [0, 2]
    assert ds.extras["meta"]["preset"] == name


def test_synthetic_camera_beyond_meta_is_an_error(tmp_path):
    base = make_synthetic(tmp_path, num_cameras=2)  # files use camera 3
    with pytest.raises(DatasetError, match="camera 3 is outside") as err:
        build_dataset("synthetic", root=tmp_path)
    assert "0001_c3s1_000002_00.jpg" in str(err.value) and str(base) in str(err.value)


def test_synthetic_without_meta_says_how_to_generate(tmp_path):
    base = make_synthetic(tmp_path, num_cameras=None)
    with pytest.raises(DatasetError) as err:
        build_dataset("synthetic", root=tmp_path)
    assert str(base / "meta.json") in str(err.value)
    assert "lwtgpf synth --preset synthetic" in str(err.value)


def test_missing_synthetic_folder_says_how_to_generate(tmp_path):
    with pytest.raises(DatasetError, match="lwtgpf synth --preset synthetic_large"):
        build_dataset("synthetic_large", root=tmp_path)


# --- MSMT17 -----------------------------------------------------------------------------------------


def make_msmt(root: Path) -> Path:
    base = root / "MSMT17_V1"
    lists = {
        ("train", "list_train.txt"): ["0000/0000_000_01_0303morning_0015_0.jpg 0",
                                      "0000/0000_001_15_0303noon_0020_1.jpg 0",
                                      "0001/0001_000_03_0303morning_0030_0.jpg 1"],
        ("train", "list_val.txt"): ["0002/0002_000_07_0303afternoon_0040_0.jpg 2"],
        ("test", "list_query.txt"): ["0000/0000_000_02_0303morning_0008_0.jpg 0"],
        ("test", "list_gallery.txt"): ["0000/0000_001_05_0303noon_0009_0.jpg 0",
                                       "0001/0001_000_15_0303noon_0010_0.jpg 1"],
    }
    for (image_dir, list_name), lines in lists.items():
        for line in lines:
            write_image(base / image_dir / line.split()[0])
        (base / list_name).write_text("\n".join(lines) + "\n")
    return base


def test_msmt17_records(tmp_path):
    base = make_msmt(tmp_path)
    ds = build_dataset("msmt17", root=tmp_path)
    assert ds.num_cameras == 15
    # train = list_train + list_val, cameras 0-based from the basename's third field
    assert [(r.pid, r.camid) for r in ds.train] == [(0, 0), (0, 14), (1, 2), (2, 6)]
    assert ds.train[3].path == str(base / "train/0002/0002_000_07_0303afternoon_0040_0.jpg")
    assert [(r.pid, r.camid) for r in ds.query] == [(0, 1)]
    assert [(r.pid, r.camid) for r in ds.gallery] == [(0, 4), (1, 14)]
    assert all(Path(r.path).is_file() for r in ds.train + ds.query + ds.gallery)


@pytest.mark.parametrize(
    "line, expected",
    [
        ("0000/0000_000_01_0303morning_0015_0.jpg", "expected '<relative/path.jpg> <pid>'"),
        ("0000/0000_000_01_0303morning_0015_0.jpg zero", "expected '<relative/path.jpg> <pid>'"),
        ("0000/badname.jpg 0", "cannot parse file name 'badname.jpg'"),
        ("0000/0000_000_16_0303morning_0015_0.jpg 0", "camera 16 is outside"),
    ],
)
def test_msmt17_malformed_list_line_names_file_and_line(tmp_path, line, expected):
    base = make_msmt(tmp_path)
    list_path = base / "list_query.txt"
    list_path.write_text(list_path.read_text() + "\n" + line + "\n")  # line 3 (line 2 is blank)
    with pytest.raises(DatasetError, match=expected) as err:
        build_dataset("msmt17", root=tmp_path)
    assert f"{list_path}:3" in str(err.value)


def test_msmt17_missing_list_and_folder(tmp_path):
    base = make_msmt(tmp_path)
    (base / "list_val.txt").unlink()
    with pytest.raises(DatasetError, match="missing list file .*list_val.txt"):
        build_dataset("msmt17", root=tmp_path)
    (base / "list_val.txt").write_text("\n")
    with pytest.raises(DatasetError, match="lists no crops") as err:
        build_dataset("msmt17", root=tmp_path)
    assert str(base / "list_val.txt") in str(err.value)
    (base / "test").rename(base / "testing")
    with pytest.raises(DatasetError, match="missing split folder") as err:
        build_dataset("msmt17", root=tmp_path)
    assert str(base / "test") in str(err.value)


# --- errors on Market-style folders -----------------------------------------------------------------


def test_missing_root_shows_layout_and_source(tmp_path):
    with pytest.raises(DatasetError) as err:
        build_dataset("dukemtmc", root=tmp_path)
    message = str(err.value)
    assert str(tmp_path / "DukeMTMC-reID") in message
    assert "bounding_box_train/" in message and "query/" in message and "bounding_box_test/" in message
    assert "DukeMTMC-reID release" in message and "benchmarks/README.md" in message
    assert "\n" not in message  # one line


def test_missing_split_folder(tmp_path):
    base = make_market(tmp_path)
    for path in (base / "query").iterdir():
        path.unlink()
    (base / "query").rmdir()
    with pytest.raises(DatasetError, match="missing split folder") as err:
        build_dataset("market1501", root=tmp_path)
    assert str(base / "query") in str(err.value)


def test_split_with_only_junk_or_strays_is_empty(tmp_path):
    base = make_market(tmp_path)
    gallery = base / "bounding_box_test"
    for name in MARKET_GALLERY:
        if not name.startswith("-1"):
            (gallery / name).unlink()
    with pytest.raises(DatasetError, match="no \\*.jpg crops .*all junk") as err:
        build_dataset("market1501", root=tmp_path)
    assert str(gallery) in str(err.value)
    (gallery / MARKET_GALLERY[1]).unlink()  # only readme.txt and Thumbs.db left
    with pytest.raises(DatasetError, match="holds no \\*.jpg crops$"):
        build_dataset("market1501", root=tmp_path)


def test_unparsable_file_name_is_named(tmp_path):
    base = make_market(tmp_path)
    write_image(base / "query" / "0002_c1_frame7.jpg")  # Duke-like name inside Market
    with pytest.raises(DatasetError, match="cannot parse file name '0002_c1_frame7.jpg'") as err:
        build_dataset("market1501", root=tmp_path)
    assert str(base / "query" / "0002_c1_frame7.jpg") in str(err.value)
    assert "_c(\\d+)s" in str(err.value)  # the expected pattern is shown


def test_camera_outside_range(tmp_path):
    base = make_market(tmp_path)
    write_image(base / "bounding_box_train" / "0002_c7s1_000451_03.jpg")
    with pytest.raises(DatasetError, match="camera 7 is outside this dataset's range 1..6") as err:
        build_dataset("market1501", root=tmp_path)
    assert str(base / "bounding_box_train" / "0002_c7s1_000451_03.jpg") in str(err.value)


def test_unknown_dataset_lists_known_names():
    with pytest.raises(DatasetError, match="unknown dataset 'market'") as err:
        build_dataset("market")
    for name in ("market1501", "dukemtmc", "occduke", "cuhk03", "cuhk03_detected", "msmt17", "synthetic"):
        assert name in str(err.value)
    assert set(available_datasets()) == set(DATASETS)


def test_register_twice_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        register_dataset("market1501")(type("Another", (), {}))


# --- loading images ----------------------------------------------------------------------------------


def test_image_dataset_returns_tensor_pid_cam_index(tmp_path):
    make_market(tmp_path)
    ds = build_dataset("market1501", root=tmp_path)
    image, pid, camid, index = ImageDataset(ds.train)[2]
    assert image.shape == (3, 16, 8) and image.dtype == torch.float32
    assert torch.allclose(image[:, 0, 0], torch.tensor([120, 60, 30]) / 255.0, atol=0.03)
    assert (pid, camid, index) == (7, 1, 2)


@pytest.mark.parametrize("content", [b"not a jpeg at all", None])
def test_unreadable_image_names_the_file(tmp_path, content):
    path = tmp_path / "0001_c1s1_000001_00.jpg"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DatasetError, match="cannot read image") as err:
        ImageDataset([Record(str(path), 1, 0)])[0]
    assert str(path) in str(err.value)


def test_truncated_image_names_the_file(tmp_path):
    path = tmp_path / "0001_c1s1_000001_00.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 32, 3), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DatasetError, match=str(path)):
        ImageDataset([Record(str(path), 1, 0)])[0]


def test_contiguous_labels():
    records = [Record(f"{i}.jpg", pid, 0) for i, pid in enumerate([7, 2, 7, 40, 2])]
    labels, pids = contiguous_labels(records)
    assert labels.tolist() == [1, 0, 1, 2, 0]
    assert pids.tolist() == [2, 7, 40]
    assert [pids[label] for label in labels] == [r.pid for r in records]

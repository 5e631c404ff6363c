"""The dataset registry: one short class per benchmark, each listing `Record`s per split.

    ds = build_dataset("market1501", root="benchmarks")   # -> ReidDataset
    print(ds.statistics())

Most benchmarks use the Market-1501 layout (`bounding_box_train/`, `query/`, `bounding_box_test/`, one
image per crop, pid and camera in the file name). They differ only in folder name, file name pattern,
extension and camera range, so they are `MarketStyleDataset` subclasses that set those four class
attributes and share one parsing routine (`parse_market_style_split`). MSMT17 reads list files instead.

Rules every loader follows (SPEC section 8): parse the file's basename, never the full path; junk crops
(pid -1) are dropped; Market distractors (pid 0) are kept; cameras become 0-based; files with another
extension (readme.txt, ...) are ignored. Hidden and system files that copies from other machines
leave behind (dot-files, macOS AppleDouble `._*` and `.DS_Store`, `Thumbs.db`, `desktop.ini`,
`__MACOSX/`) are skipped and counted (`ReidDataset.skipped`, shown by `statistics()`). Anything else
that does not fit raises `DatasetError` naming the path and what was expected.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Callable, ClassVar

from lwtgpf.data.records import DatasetError, Record, ReidDataset

SPLIT_FOLDERS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}
JUNK_PID = -1

# Patterns are matched against the file STEM (basename without extension); group 1 = pid, group 2 = camera.
MARKET_PATTERN = re.compile(r"(-?\d+)_c(\d+)s\d+_\d+_\d+")  # 0002_c1s1_000451_03
DUKE_PATTERN = re.compile(r"(-?\d+)_c(\d+)_f\d+")  # 0001_c2_f0046182
CUHK03_PATTERN = re.compile(r"(-?\d+)_c(\d+)_\d+")  # 0001_c1_1
MSMT_PATTERN = re.compile(r"(\d+)_\d+_(\d+)_\w+")  # 0000_000_01_0303morning_0015_0 (pid, index, cam, ...)

DATASETS: dict[str, type[DatasetLoader]] = {}


def register_dataset(name: str) -> Callable[[type[DatasetLoader]], type[DatasetLoader]]:
    """Class decorator: make a loader available to `build_dataset(name)` (and `data.dataset=name`)."""

    def add(cls: type[DatasetLoader]) -> type[DatasetLoader]:
        if name in DATASETS:
            raise ValueError(f"dataset {name!r} is already registered ({DATASETS[name].__name__})")
        cls.name = name
        DATASETS[name] = cls
        return cls

    return add


def available_datasets() -> list[str]:
    return sorted(DATASETS)


def build_dataset(name: str, root: str | Path = "benchmarks") -> ReidDataset:
    """Load benchmark `name` from `<root>/<its folder>/`; raises DatasetError when it is missing or malformed."""
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; available: {', '.join(available_datasets())}")
    return DATASETS[name](root).load()


SYSTEM_FILES = {"thumbs.db", "desktop.ini", "__macosx"}  # lower-case names; plus every name starting with "."


def is_system_file(path: Path) -> bool:
    """A hidden or system file another machine left in the folder (never a crop of the dataset)."""
    return path.name.startswith(".") or path.name.lower() in SYSTEM_FILES


def parse_market_style_split(
    split_dir: Path, pattern: re.Pattern[str], extension: str, num_cameras: int,
    skipped: dict[str, int] | None = None,
) -> list[Record]:
    """All crops of one Market-layout split folder (not recursive), sorted by file name.

    `pattern` is full-matched against each basename stem, group 1 = pid, group 2 = 1-based camera in
    [1, num_cameras]. Junk (pid -1) is dropped, camera ids become 0-based. Hidden and system files are
    skipped and counted in `skipped[split folder name]`.
    """
    if not split_dir.is_dir():
        raise DatasetError(f"missing split folder {split_dir}")
    entries = list(split_dir.iterdir())
    system = [p for p in entries if is_system_file(p)]
    if skipped is not None:
        skipped[split_dir.name] = len(system)
    images = sorted(p for p in entries if p.suffix.lower() == extension and not is_system_file(p) and p.is_file())
    records = []
    for path in images:
        pid, camera = _parse_name(path, pattern, num_cameras)
        if pid != JUNK_PID:
            records.append(Record(str(path), pid, camera))
    if not records:
        found = f" (its {len(images)} {extension} files are all junk, pid -1)" if images else ""
        raise DatasetError(f"split folder {split_dir} holds no *{extension} crops{found}")
    return records


def _parse_name(path: Path, pattern: re.Pattern[str], num_cameras: int) -> tuple[int, int]:
    """(pid, 0-based camera) from the basename of `path`."""
    match = pattern.fullmatch(path.stem)
    if match is None:
        raise DatasetError(
            f"cannot parse file name {path.name!r} ({path}); "
            f"expected names matching {pattern.pattern}{path.suffix}"
        )
    pid, camera = int(match.group(1)), int(match.group(2))
    if not 1 <= camera <= num_cameras:
        raise DatasetError(f"{path}: camera {camera} is outside this dataset's range 1..{num_cameras}")
    return pid, camera - 1


class DatasetLoader:
    """Base of every registry entry: where the benchmark lives and how to list its three splits.

    Subclasses set `folder_names` (accepted names of the dataset folder under the root, the first is
    the canonical one) and `source` (where to obtain the data), and implement `layout_tree` (the
    expected tree, shown when the folder is missing) and `load_splits`.
    """

    name: ClassVar[str] = ""
    folder_names: ClassVar[tuple[str, ...]] = ()
    source: ClassVar[str] = ""

    def __init__(self, root: str | Path = "benchmarks") -> None:
        self.root = Path(root).expanduser().absolute()

    def load(self) -> ReidDataset:
        folder = self.find_folder()
        self.skipped: dict[str, int] = {}
        train, query, gallery, num_cameras, extras = self.load_splits(folder)
        return ReidDataset(self.name, str(folder), num_cameras, train, query, gallery, extras,
                           skipped={k: v for k, v in self.skipped.items() if v})

    def load_splits(self, folder: Path) -> tuple[list[Record], list[Record], list[Record], int, dict]:
        """(train, query, gallery, num_cameras, extras) read from the dataset folder."""
        raise NotImplementedError

    def layout_tree(self) -> str:
        raise NotImplementedError

    def find_folder(self) -> Path:
        for folder_name in self.folder_names:
            if (self.root / folder_name).is_dir():
                return self.root / folder_name
        expected = " or ".join(str(self.root / n) for n in self.folder_names)
        raise DatasetError(
            f"dataset {self.name!r} not found: expected the folder {expected} "
            f"({self.layout_hint()}; from {self.source}; benchmarks/README.md shows every layout)"
        )

    def layout_hint(self) -> str:
        """The layout in one line (the full tree is `layout_tree`)."""
        return "holding " + ", ".join(line.strip().split(" ")[0] for line in self.layout_tree().splitlines()[1:])


class MarketStyleDataset(DatasetLoader):
    """bounding_box_train / query / bounding_box_test folders, pid and camera in each file name."""

    pattern: ClassVar[re.Pattern[str]] = MARKET_PATTERN
    example_name: ClassVar[str] = "0002_c1s1_000451_03.jpg"
    extension: ClassVar[str] = ".jpg"
    num_cameras: ClassVar[int] = 0

    def load_splits(self, folder: Path) -> tuple[list[Record], list[Record], list[Record], int, dict]:
        num_cameras = self.cameras_in(folder)
        train, query, gallery = (
            parse_market_style_split(folder / SPLIT_FOLDERS[split], self.pattern, self.extension, num_cameras,
                                     self.skipped)
            for split in ("train", "query", "gallery")
        )
        return train, query, gallery, num_cameras, {}

    def cameras_in(self, folder: Path) -> int:
        return self.num_cameras

    def layout_tree(self) -> str:
        lines = [f"  {self.folder_names[0]}/"]
        lines += [f"    {sub + '/':<22}{self.example_name} ..." for sub in SPLIT_FOLDERS.values()]
        return "\n".join(lines)


@register_dataset("market1501")
class Market1501(MarketStyleDataset):
    folder_names = ("Market-1501-v15.09.15", "Market-1501")
    source = "the Market-1501 project page (Zheng et al., ICCV 2015), archive Market-1501-v15.09.15.zip"
    num_cameras = 6


@register_dataset("dukemtmc")
class DukeMTMCReID(MarketStyleDataset):
    folder_names = ("DukeMTMC-reID",)
    source = "the DukeMTMC-reID release (Zheng et al., ICCV 2017); the original DukeMTMC site is withdrawn"
    pattern = DUKE_PATTERN
    example_name = "0001_c2_f0046182.jpg"
    num_cameras = 8


@register_dataset("occduke")
class OccludedDuke(DukeMTMCReID):
    folder_names = ("Occluded_Duke",)
    source = "the Occluded-Duke split of the PGFA repository (Miao et al., ICCV 2019), built from DukeMTMC-reID"


class CUHK03NP(MarketStyleDataset):
    """CUHK03 under the new 767/700 protocol; `labeled` (hand-drawn boxes) or `detected` (DPM boxes)."""

    source = "CUHK03-NP, the 767/700 protocol of Zhong et al. (CVPR 2017, person-re-ranking repository)"
    pattern = CUHK03_PATTERN
    example_name = "0001_c1_1.png"
    extension = ".png"
    num_cameras = 2


@register_dataset("cuhk03")
class CUHK03Labeled(CUHK03NP):
    folder_names = ("cuhk03-np/labeled",)


@register_dataset("cuhk03_detected")
class CUHK03Detected(CUHK03NP):
    folder_names = ("cuhk03-np/detected",)


class SyntheticDataset(MarketStyleDataset):
    """What `lwtgpf synth --preset NAME` writes to <root>/NAME/: Market layout and file names, plus a
    meta.json whose "num_cameras" gives the camera range (and which is kept as `extras["meta"]`)."""

    def __init__(self, root: str | Path = "benchmarks") -> None:
        super().__init__(root)
        self.source = f"generate it with `lwtgpf synth --preset {self.name}`"

    def layout_tree(self) -> str:
        return super().layout_tree() + '\n    meta.json             {"num_cameras": ...}'

    def load_splits(self, folder: Path) -> tuple[list[Record], list[Record], list[Record], int, dict]:
        train, query, gallery, num_cameras, _ = super().load_splits(folder)
        return train, query, gallery, num_cameras, {"meta": self.read_meta(folder)}

    def cameras_in(self, folder: Path) -> int:
        num_cameras = self.read_meta(folder).get("num_cameras")
        if not isinstance(num_cameras, int) or isinstance(num_cameras, bool) or num_cameras < 1:
            raise DatasetError(
                f"{folder / 'meta.json'}: expected a positive integer 'num_cameras', got {num_cameras!r}"
            )
        return num_cameras

    def read_meta(self, folder: Path) -> dict:
        path = folder / "meta.json"
        if not path.is_file():
            raise DatasetError(f"{path} is missing; generate the dataset with `lwtgpf synth --preset {self.name}`")
        try:
            meta = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise DatasetError(
                f"{path} is not valid JSON ({exc}); regenerate it with `lwtgpf synth --preset {self.name}`"
            ) from None
        if not isinstance(meta, dict):
            raise DatasetError(f"{path}: expected a JSON object, got {type(meta).__name__}")
        self.check_generator_version(folder, meta)
        return meta

    def check_generator_version(self, folder: Path, meta: dict) -> None:
        """A folder our generator wrote must come from its current version: crops of another version are
        another benchmark (other scenes, other people), and results on them would not compare. A
        meta.json without a "generator" key is a hand-made folder in the same layout: read as it is."""
        if "generator" not in meta:
            return
        from lwtgpf.data.synthetic import GENERATOR_VERSION  # here: the generator imports this module

        found = meta.get("generator_version")
        if found != GENERATOR_VERSION:
            raise DatasetError(
                f"{folder} was written by synthetic generator version {found}, this lwtgpf reads version "
                f"{GENERATOR_VERSION}: regenerate it with `lwtgpf synth --preset {self.name} --overwrite"
                f"{'' if self.root.name == 'benchmarks' else f' --root {self.root}'}`"
            )


@register_dataset("synthetic")
class Synthetic(SyntheticDataset):
    folder_names = ("synthetic",)


@register_dataset("synthetic_occluded")
class SyntheticOccluded(SyntheticDataset):
    folder_names = ("synthetic_occluded",)


@register_dataset("synthetic_large")
class SyntheticLarge(SyntheticDataset):
    folder_names = ("synthetic_large",)


@register_dataset("synthetic_source")
class SyntheticSource(SyntheticDataset):
    folder_names = ("synthetic_source",)


@register_dataset("msmt17")
class MSMT17(DatasetLoader):
    """MSMT17 V1: images under train/ and test/ in per-pid folders, splits given by list files.

    Train = list_train + list_val (all 32,621 training crops, the protocol of the unsupervised papers;
    torchreid's supervised default uses list_train only). Each list line is `<pid>/<file>.jpg <pid>`;
    the camera is the third field of the basename (1..15).
    """

    folder_names = ("MSMT17_V1",)
    source = "the MSMT17 project page (Wei et al., CVPR 2018; licence agreement required), MSMT17_V1"
    num_cameras = 15

    def layout_tree(self) -> str:
        return (
            "  MSMT17_V1/\n"
            "    train/0000/0000_000_01_0303morning_0015_0.jpg ...\n"
            "    test/0000/0000_000_01_0303morning_0008_0.jpg ...\n"
            "    list_train.txt  list_val.txt  list_query.txt  list_gallery.txt"
        )

    def load_splits(self, folder: Path) -> tuple[list[Record], list[Record], list[Record], int, dict]:
        for sub in ("train", "test"):
            if not (folder / sub).is_dir():
                raise DatasetError(f"missing split folder {folder / sub}")
        train = self.read_list(folder / "list_train.txt", folder / "train")
        train += self.read_list(folder / "list_val.txt", folder / "train")
        query = self.read_list(folder / "list_query.txt", folder / "test")
        gallery = self.read_list(folder / "list_gallery.txt", folder / "test")
        return train, query, gallery, self.num_cameras, {}

    def read_list(self, list_path: Path, image_dir: Path) -> list[Record]:
        if not list_path.is_file():
            raise DatasetError(f"missing list file {list_path}")
        records = []
        for line_number, line in enumerate(list_path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            fields = line.split()
            if len(fields) != 2 or not fields[1].isdigit():
                raise DatasetError(
                    f"{list_path}:{line_number}: expected '<relative/path.jpg> <pid>', got {line.strip()!r}"
                )
            path = image_dir / fields[0]
            try:
                _, camera = _parse_name(path, MSMT_PATTERN, self.num_cameras)
            except DatasetError as exc:
                raise DatasetError(f"{list_path}:{line_number}: {exc}") from None
            records.append(Record(str(path), int(fields[1]), camera))
        if not records:
            raise DatasetError(f"list file {list_path} lists no crops")
        return records

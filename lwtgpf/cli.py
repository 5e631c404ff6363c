"""`lwtgpf ...`: thin command-line verbs over the library. Every verb takes the same config system:
`--config NAME_OR_YAML` plus repeated `--set section.key=value`."""
from __future__ import annotations

import argparse
import sys


def _add_config_args(parser: argparse.ArgumentParser, default: str = "synthetic") -> None:
    parser.add_argument("--config", default=default, help="preset name (lwtgpf/configs/) or YAML file")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.epochs=10 (repeatable)",
    )


def _load(args: argparse.Namespace):
    from lwtgpf.config import load_config

    return load_config(args.config, args.overrides)


def cmd_synth(args: argparse.Namespace) -> None:
    from lwtgpf.data.synthetic import generate_synthetic

    folder = generate_synthetic(args.root, preset=args.preset, seed=args.seed, overwrite=args.overwrite)
    print(f"wrote {folder}")
    if args.figure:
        from lwtgpf.viz.dataset_figures import save_synthetic_overview

        save_synthetic_overview(folder, args.figure)
        print(f"wrote {args.figure}")


def cmd_stats(args: argparse.Namespace) -> None:
    from lwtgpf.data import build_dataset

    print(build_dataset(args.dataset, args.root).statistics())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lwtgpf", description=__doc__)
    verbs = parser.add_subparsers(dest="verb", required=True)

    p = verbs.add_parser("synth", help="generate a synthetic re-ID benchmark in the Market-1501 layout")
    p.add_argument("--preset", default="synthetic", help="synthetic | synthetic_occluded | synthetic_large")
    p.add_argument("--root", default="benchmarks", help="datasets folder; writes ROOT/PRESET/")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    p.add_argument("--figure", default="", help="also save an overview PNG here")
    p.set_defaults(func=cmd_synth)

    p = verbs.add_parser("stats", help="print a dataset's statistics table (ids, images, cameras)")
    p.add_argument("dataset")
    p.add_argument("--root", default="benchmarks")
    p.set_defaults(func=cmd_stats)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, OSError) as err:  # config, dataset and checkpoint errors carry their own context
        print(f"lwtgpf {args.verb}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

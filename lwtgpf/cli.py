"""`lwtgpf ...`: thin command-line verbs over the library. Every verb takes the same config system:
`--config NAME_OR_YAML` plus repeated `--set section.key=value`.

Exit codes: 0 done; 2 a user mistake or an environment fault, printed as one line naming the file or
key (`--debug` shows the traceback); 130 interrupted. Any other failure is a bug and shows its traceback.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _add_config_args(parser: argparse.ArgumentParser, default: str | None = "synthetic") -> None:
    parser.add_argument("--config", default=default,
                        help="preset name (lwtgpf/configs/) or YAML file" + (f" (default: {default})" if default else ""))
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.epochs=10 (repeatable)",
    )


def cmd_synth(args: argparse.Namespace) -> None:
    from lwtgpf.data.synthetic import generate_synthetic

    folder = generate_synthetic(args.root, preset=args.preset, seed=args.seed, overwrite=args.overwrite)
    print(f"wrote {folder}")
    if args.figure:
        from lwtgpf.viz.dataset_figures import save_synthetic_overview

        print(f"wrote {save_synthetic_overview(folder, args.figure)}")


def cmd_stats(args: argparse.Namespace) -> None:
    from lwtgpf.data import build_dataset

    print(build_dataset(args.dataset, args.root).statistics())


def cmd_train(args: argparse.Namespace) -> None:
    """A new run in --out, or (--resume) the run in --out continued with its own config.

    On --resume, what --config and --set ask for must agree with the run's config, but for a moved
    dataset and how data is read (`--set data.root=...`, see RESUME_SETTABLE); a difference, a
    different --config included, is refused by name.
    """
    from lwtgpf.config import load_config, requested_settings
    from lwtgpf.run_folder import RunFolder

    if args.resume:
        cfg = RunFolder(args.out).resumed_config(requested_settings(args.config, args.overrides))
    else:
        cfg = load_config(args.config or "synthetic", args.overrides)
    from lwtgpf.engine.trainer import Trainer  # torch: only once the config is known to be valid

    metrics = Trainer(cfg, run_dir=args.out, resume=args.resume).fit()
    print(json.dumps(metrics))


def cmd_evaluate(args: argparse.Namespace) -> None:
    from lwtgpf.engine.evaluate import evaluate_model
    from lwtgpf.evaluation import format_results

    cfg, dataset, model = _config_dataset_model(args)
    results = evaluate_model(model, dataset, cfg, _device_of(model), return_topk=args.topk if args.ranked_csv else 0)
    print(format_results(results))
    if args.ranked_csv:
        _write_ranked_lists(args.ranked_csv, dataset, results["topk"])
        print(f"wrote {args.ranked_csv}")


def cmd_extract(args: argparse.Namespace) -> None:
    from lwtgpf.data import build_test_transform
    from lwtgpf.engine.extract import extract_features, save_feature_file

    out = _output_file(args.out, ".pt", "--out")
    cfg, dataset, model = _config_dataset_model(args)
    records = dataset.split(args.split)
    feats = extract_features(
        model, records, build_test_transform(cfg.data), kind=args.kind, batch_size=cfg.eval.batch_size,
        workers=cfg.data.workers, device=_device_of(model),
    )
    save_feature_file(out, feats, records, dataset.num_cameras)
    print(f"wrote {out}: {tuple(feats.shape)} features of {args.split}")


def cmd_cluster(args: argparse.Namespace) -> None:
    from lwtgpf.cluster import pseudo_label
    from lwtgpf.config import load_config
    from lwtgpf.engine.extract import load_feature_file
    from lwtgpf.methods import METHODS

    cfg = load_config(args.config, args.overrides)
    out = _output_file(args.out, ".csv", "--out") if args.out else None
    saved = load_feature_file(args.features)
    feats = saved["features"]
    feats = feats[:, 0] if feats.dim() == 3 else feats  # clustering uses the global feature
    result = pseudo_label(
        feats, saved["camids"].numpy(), cfg.cluster, int(saved["num_cameras"]), true_pids=saved["pids"].numpy(),
        camera_aware=METHODS[cfg.method].camera_aware,
    )
    print(json.dumps(result.log_row(), indent=1, default=float))
    if out:
        import pandas as pd

        from lwtgpf.fileio import write_text_atomic

        write_text_atomic(out, pd.DataFrame({
            "path": saved["paths"], "pid": saved["pids"].numpy(), "camid": saved["camids"].numpy(),
            "label": result.labels, "proxy": result.proxies.proxy_of_sample,
        }).to_csv(index=False))
        print(f"wrote {out}")


def cmd_demo(args: argparse.Namespace) -> None:
    """Supervised pretraining on labelled synthetic people, then LWTGPF on the unlabelled synthetic benchmark.

    The two stages of every real run, at laptop size: real runs start from ImageNet / LUPerson / SOLIDER
    weights; here `synthetic_source` (other people, same kinds of camera) provides that starting point.
    """
    from lwtgpf.config import load_config
    from lwtgpf.data.synthetic import generate_synthetic
    from lwtgpf.engine.trainer import Trainer

    source = load_config("synthetic_source", args.pretrain_overrides)
    from_scratch = load_config("synthetic", args.overrides)  # a bad --set fails before minutes of pretraining
    for cfg in (source, from_scratch):
        if not (Path(cfg.data.root) / cfg.data.dataset / "meta.json").exists():
            print(f"generating the {cfg.data.dataset} benchmark in {cfg.data.root}/ ...")
            generate_synthetic(cfg.data.root, preset=cfg.data.dataset, seed=0)
    out = _fresh_folder(Path(args.out))

    print(f"1/2 supervised pretraining ({source.method}) on {source.data.dataset} -> {out / 'pretrain'}")
    Trainer(source, run_dir=out / "pretrain").fit()
    weights = out / "pretrain" / "checkpoints" / "last.pt"
    random_init = Trainer(from_scratch).evaluate()
    target = load_config("synthetic", [f"model.pretrained={weights}", *args.overrides])
    print(f"2/2 unsupervised {target.method} on {target.data.dataset} (labels never read) -> {out / 'lwtgpf'}")
    trainer = Trainer(target, run_dir=out / "lwtgpf")
    pretrained = trainer.evaluate()
    metrics = trainer.fit()
    print(f"random initialisation:           mAP {100 * random_init['mAP']:5.1f}%  R1 {100 * random_init['R1']:5.1f}%")
    print(f"pretrained on synthetic_source:  mAP {100 * pretrained['mAP']:5.1f}%  R1 {100 * pretrained['R1']:5.1f}%")
    print(f"+ {target.method} ({metrics['epochs']} epochs, unsupervised): mAP {metrics['mAP']:5.1f}%  R1 {metrics['R1']:5.1f}%")
    print(f"run folder: {out} (pretrain/ and lwtgpf/: config.yaml, log.csv, metrics.json, checkpoints/)")


def cmd_notebook(args: argparse.Namespace) -> None:
    """Check the parameters against the notebook's parameters cell, then run it headless with papermill."""
    from lwtgpf.notebooks import find_notebook, notebook_parameters, parse_cli_parameters, run_notebook

    path = find_notebook(args.name)
    if args.list:
        print("\n".join(p.describe() for p in notebook_parameters(path).values()))
        return
    values = parse_cli_parameters(path, args.parameters)
    out = Path(args.out) if args.out else _fresh_folder(Path("runs") / path.stem)
    print(f"wrote {run_notebook(path, values, out)} (figures and outputs in {out})")


def _config_dataset_model(args: argparse.Namespace):
    """(config, dataset, model in eval mode on its device) for evaluate / extract.

    With --checkpoint (a run folder or a checkpoint file) the config is the run's own, or --config's
    when given (e.g. another dataset: direct transfer); either way the checkpoint's model and input
    settings are used (a note says which differ) and the run's `model.pretrained` file is not read.
    Without it: the config's model, with its `model.pretrained` weights if any.
    """
    from lwtgpf.config import load_config, override
    from lwtgpf.data import build_dataset
    from lwtgpf.engine.trainer import pick_device
    from lwtgpf.models import build_model
    from lwtgpf.run_folder import RunFolder, checkpoint_config, config_for_checkpoint, load_checkpoint_model

    if not args.checkpoint:
        cfg = load_config(args.config or "synthetic", args.overrides)
        dataset = build_dataset(cfg.data.dataset, cfg.data.root)
        device = pick_device(cfg.train.device)
        return cfg, dataset, build_model(cfg, dataset.num_cameras).to(device).eval()
    path = Path(args.checkpoint)
    checkpoint = RunFolder.of(path).checkpoint if path.is_dir() else path
    trained = checkpoint_config(checkpoint) if checkpoint.is_file() else None
    if trained is None:
        raise FileNotFoundError(2, "no such checkpoint file or run folder", str(path))
    cfg = load_config(args.config, args.overrides) if args.config else override(trained, args.overrides)
    cfg, notes = config_for_checkpoint(cfg, trained)
    for note in notes:
        print(f"note: {note}")
    dataset = build_dataset(cfg.data.dataset, cfg.data.root)
    model = load_checkpoint_model(checkpoint, cfg, dataset.num_cameras, pick_device(cfg.train.device))
    return cfg, dataset, model


def _output_file(path: str, suffix: str, option: str) -> Path:
    """Check an output file before any work: the right suffix, not a folder, its folder exists."""
    out = Path(path).expanduser()
    if out.is_dir():
        raise FileExistsError(21, f"{option} must be a {suffix} file, not a folder", str(out))
    if out.suffix != suffix:
        from lwtgpf.errors import UserError

        raise UserError(f"{option} {out}: expected a {suffix} file name")
    if not out.parent.is_dir():
        raise FileNotFoundError(2, f"the folder of {option} does not exist", str(out.parent))
    return out


def _device_of(model):
    return next(model.parameters()).device


def _write_ranked_lists(path: str, dataset, topk) -> None:
    """One row per (query, rank): the gallery crop's pid, camera and path, and whether it matches."""
    import pandas as pd

    rows = []
    for qi, query in enumerate(dataset.query):
        for rank, gi in enumerate(topk[qi], start=1):
            if gi < 0:
                break
            g = dataset.gallery[gi]
            rows.append((query.path, query.pid, query.camid, rank, g.path, g.pid, g.camid, g.pid == query.pid))
    columns = ["query_path", "query_pid", "query_camid", "rank", "gallery_path", "gallery_pid", "gallery_camid", "match"]
    pd.DataFrame(rows, columns=columns).to_csv(path, index=False)


def _fresh_folder(path: Path) -> Path:
    """`path`, or `path-2`, `path-3`, ... when a previous demo run is there: runs never overwrite runs."""
    candidate, n = path, 1
    while candidate.exists() and any(candidate.iterdir()):
        n += 1
        candidate = path.with_name(f"{path.name}-{n}")
    return candidate


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lwtgpf", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    verbs = parser.add_subparsers(dest="verb", required=True)

    p = verbs.add_parser("synth", help="generate a synthetic re-ID benchmark in the Market-1501 layout")
    p.add_argument("--preset", default="synthetic", help="synthetic | synthetic_occluded | synthetic_large")
    p.add_argument("--root", default="benchmarks", help="datasets folder; writes ROOT/PRESET/")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    p.add_argument("--figure", default="", help="also save an overview PNG here")
    p.set_defaults(func=cmd_synth)

    p = verbs.add_parser("demo", help="pretrain on labelled synthetic people, then LWTGPF on the synthetic benchmark")
    p.add_argument("--out", default="runs/demo", help="run folder (a suffix is added if it exists)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override of the LWTGPF stage (preset synthetic)")
    p.add_argument("--pretrain-set", dest="pretrain_overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override of the pretraining stage (preset synthetic_source)")
    p.set_defaults(func=cmd_demo)

    p = verbs.add_parser("train", help="train a method; writes a run folder")
    _add_config_args(p, default=None)
    p.add_argument("--out", required=True, help="run folder (must be new, unless --resume)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint, with its own config (--set data.root=... "
                        "points to a moved dataset)")
    p.set_defaults(func=cmd_train)

    p = verbs.add_parser("evaluate", help="mAP, R1/5/10, mINP of a checkpoint on a dataset")
    _add_config_args(p, default=None)
    p.add_argument("--checkpoint", default="",
                   help="a run folder or its checkpoint file; its own config unless --config is given "
                        "(empty: the config's untrained or pretrained model)")
    p.add_argument("--ranked-csv", default="", help="write each query's top-k gallery here")
    p.add_argument("--topk", type=int, default=10)
    p.set_defaults(func=cmd_evaluate)

    p = verbs.add_parser("extract", help="save features, pids, cameras and paths of one split")
    _add_config_args(p, default=None)
    p.add_argument("--checkpoint", default="", help="a run folder or its checkpoint file (as for evaluate)")
    p.add_argument("--split", default="train", choices=["train", "query", "gallery"])
    p.add_argument("--kind", default="all", choices=["all", "test"], help="all neck outputs, or the test feature")
    p.add_argument("--out", required=True, help="a .pt file")
    p.set_defaults(func=cmd_extract)

    p = verbs.add_parser("cluster", help="pseudo labels + label quality from extracted features")
    _add_config_args(p)
    p.add_argument("--features", required=True, help="a file written by `lwtgpf extract`")
    p.add_argument("--out", default="", help="write per-crop labels and proxies as CSV")
    p.set_defaults(func=cmd_cluster)

    p = verbs.add_parser("notebook", help="run a workbench notebook headless (papermill) into a run folder")
    p.add_argument("name", help="a notebook in notebooks/ (quickstart, stepwise_training, ...) or an .ipynb path")
    p.add_argument("-p", dest="parameters", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="set a parameter of the notebook's parameters cell (repeatable), checked before it runs")
    p.add_argument("--out", default="", help="run folder (default: runs/NAME, with a suffix if it exists)")
    p.add_argument("--list", action="store_true", help="print the notebook's parameters and exit")
    p.set_defaults(func=cmd_notebook)

    p = verbs.add_parser("stats", help="print a dataset's statistics table (ids, images, cameras)")
    p.add_argument("dataset")
    p.add_argument("--root", default="benchmarks")
    p.set_defaults(func=cmd_stats)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one verb. Exit codes: 0 done, 2 a user mistake or an environment fault (one line on stderr,
    no traceback; --debug shows it), 130 interrupted; anything else is a bug and shows its traceback."""
    args = build_parser().parse_args(argv)
    from lwtgpf.errors import EXIT_INTERRUPTED, EXIT_USER_ERROR, UserError, user_message

    try:
        args.func(args)
    except (UserError, OSError) as err:
        if args.debug:
            raise
        print(f"lwtgpf {args.verb}: error: {user_message(err)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"lwtgpf {args.verb}: interrupted (a run resumes from its last checkpoint with --resume)", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


if __name__ == "__main__":
    sys.exit(main())

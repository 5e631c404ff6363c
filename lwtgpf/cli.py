"""`lwtgpf ...`: thin command-line verbs over the library. Every verb takes the same config system:
`--config NAME_OR_YAML` plus repeated `--set section.key=value`.

Exit codes: 0 done; 2 a user mistake or an environment fault, printed as one line naming the file or
key (`--debug` shows the traceback); 130 interrupted. Any other failure is a bug and shows its traceback.
"""
from __future__ import annotations

import argparse
import json
import os
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

    folder = generate_synthetic(args.root, preset=args.preset, seed=args.seed, overwrite=args.overwrite,
                                workers=args.workers)
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
    from lwtgpf.data.synthetic import ensure_synthetic
    from lwtgpf.engine.trainer import Trainer

    source = load_config("synthetic_source", args.pretrain_overrides)
    from_scratch = load_config("synthetic", args.overrides)  # a bad --set fails before minutes of pretraining
    for cfg in (source, from_scratch):  # generated when missing or written by an older generator
        done = ensure_synthetic(cfg.data.root, preset=cfg.data.dataset, seed=0, workers=os.cpu_count() or 1)
        if done != "kept":
            print(f"{cfg.data.dataset} benchmark in {cfg.data.root}/: {done}")
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


def cmd_info(args: argparse.Namespace) -> None:
    """What produced a run (or what a sweep holds); with two runs, their differences key by key."""
    from lwtgpf.experiments.info import describe, format_differences

    if len(args.runs) > 2:
        from lwtgpf.errors import UserError

        raise UserError("lwtgpf info takes one folder (what produced it) or two (their differences)")
    print(describe(args.runs[0]) if len(args.runs) == 1 else format_differences(*args.runs, show_all=args.all))


def cmd_sweep(args: argparse.Namespace) -> None:
    """Start, extend or resume a sweep in --out; run its jobs here, through submitit, or print their commands."""
    from lwtgpf.experiments import launch
    from lwtgpf.experiments.manifest import SweepFolder
    from lwtgpf.experiments.spec import SweepError, SweepSpec

    sweep = SweepFolder(args.out)
    if args.job:  # one job of an existing sweep: what --print-commands lines run
        entry = launch.run_job(SweepFolder.of(sweep.path).path, args.job, threads=args.threads)
        print(launch.describe(args.job, entry, sweep))
        if entry["status"] != "done":
            raise SweepError(f"job {args.job} {entry['status']}: {entry['error']} (log: {sweep.log_file(args.job)})")
        return
    if args.status:
        sweep = SweepFolder.of(sweep.path)
        print("\n".join(sweep.status_lines(sweep.reconcile())))
        return
    request = None
    if args.config or args.notebook or args.grid or args.variant or args.seeds or args.overrides or args.parameters:
        if args.config and args.notebook:
            raise SweepError("give --config (train runs) or --notebook (notebook runs), not both")
        request = SweepSpec.create(
            "notebook" if args.notebook else "train", args.notebook or args.config,
            base=[*args.overrides, *(f"{name}={value}" for name, value in args.parameters)], grid=args.grid,
            variants=[(v[0], v[1:]) for v in args.variant], seeds=args.seeds)
        request.validate()  # every combination checked before the sweep folder is touched
    spec, added = sweep.open(request)
    spec.validate()
    ids = launch.select_jobs(sweep, rerun_failed=args.rerun_failed)
    counts = ", ".join(f"{n} {status}" for status, n in sweep.counts().items())
    print(f"sweep {sweep.path}: {len(spec.jobs())} jobs ({counts}); {len(added)} new; {len(ids)} to run now")
    if args.print_commands:
        lines = launch.job_commands(sweep, ids, threads=args.threads)
        print("\n".join(lines))
        print(f"(also in {sweep.commands})", file=sys.stderr)
        return
    if args.executor == "local":
        try:
            launch.run_local(sweep, ids, jobs=args.jobs or 1, threads=args.threads,
                             gpus=[g for g in args.gpus.split(",") if g])
        except KeyboardInterrupt:
            print(f"lwtgpf sweep: stopped; `lwtgpf sweep --out {args.out}` resumes the interrupted and pending jobs",
                  file=sys.stderr)
            raise
    else:
        parameters = {"slurm_array_parallelism": args.jobs} if args.executor == "slurm" and args.jobs else {}
        for name, value in (("timeout_min", args.timeout_min), ("slurm_partition", args.partition),
                            ("gpus_per_node", args.gpus_per_job), ("mem_gb", args.mem_gb)):
            if value:
                parameters[name] = value
        parameters.update(_key_values(args.submitit_set, "--submitit-set"))
        launch.submit(sweep, ids, cluster="slurm" if args.executor == "slurm" else "local", threads=args.threads,
                      parameters=parameters, wait=not args.no_wait)
        if args.no_wait:
            return
    manifest = sweep.reconcile()
    failed = [job for job, entry in manifest["jobs"].items() if entry["status"] in ("failed", "interrupted")]
    print(f"sweep {sweep.path}: " + ", ".join(f"{n} {status}" for status, n in sweep.counts(manifest).items()))
    if failed:
        raise SweepError(f"{len(failed)} job(s) did not finish ({', '.join(failed[:3])}{', ...' if len(failed) > 3 else ''}); "
                         f"their errors: `lwtgpf sweep --out {args.out} --status`; after a fix, "
                         f"`lwtgpf sweep --out {args.out} --rerun-failed` reruns them")


def cmd_compare(args: argparse.Namespace) -> None:
    """Final metrics grouped by the swept keys (mean +- std over seeds), curves; CSV / PNG with --out."""
    from lwtgpf.experiments.compare import compare
    from lwtgpf.experiments.manifest import SweepFolder

    result = compare(args.sources, by=args.by or None, metrics=args.metrics or None)
    print(result.markdown())
    if args.runs:
        shown = [c for c in ["group", "seed", "status", *result.metrics, "path"] if c in result.runs]
        print(result.runs[shown].to_string(index=False))
    out = args.out
    if not out and len(args.sources) == 1 and SweepFolder.is_sweep(args.sources[0]):
        out = str(SweepFolder(args.sources[0]).comparison)
    if out:
        for path in result.write(out, metric=args.metric):
            print(f"wrote {path}")


def _key_values(items: list[str], option: str) -> dict:
    """`KEY=VALUE` texts -> {key: YAML-parsed value}."""
    import yaml

    from lwtgpf.errors import UserError

    parsed = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise UserError(f"{option} {item!r} is not of the form KEY=VALUE")
        parsed[key] = yaml.safe_load(text)
    return parsed


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
    p.add_argument("--preset", default="synthetic",
                   help="synthetic | synthetic_occluded | synthetic_source | synthetic_large")
    p.add_argument("--root", default="benchmarks", help="datasets folder; writes ROOT/PRESET/")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="processes that draw crops (same files whatever the number; default: all CPUs)")
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

    p = verbs.add_parser("info", help="what produced a run (code, packages, machine, seed, data, times); "
                                      "two runs: their differences key by key")
    p.add_argument("runs", nargs="+", metavar="RUN", help="a run folder, a notebook run folder or a sweep folder; or two runs")
    p.add_argument("--all", action="store_true", help="also list bookkeeping keys (times, command line) that differ")
    p.set_defaults(func=cmd_info)

    p = verbs.add_parser("sweep", help="one run per combination of a grid x seeds, N at a time or through a scheduler",
                         description="Runs `lwtgpf train` (--config) or `lwtgpf notebook` (--notebook) once per "
                                     "combination into OUT/runs/<job>/, with a manifest (OUT/manifest.json). "
                                     "Run it again to resume: done jobs are skipped.")
    p.add_argument("--out", required=True, help="the sweep folder (new, or an existing sweep to resume or extend)")
    p.add_argument("--config", default=None, help="preset or YAML file: each job is `lwtgpf train`")
    p.add_argument("--notebook", default=None, help="a notebook in notebooks/ or an .ipynb: each job is `lwtgpf notebook`")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="a setting of every job (config key; for notebooks also a parameter name)")
    p.add_argument("-p", dest="parameters", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="a notebook parameter of every job")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                   help="an axis of the grid (repeatable; the grid is the product), e.g. --grid cluster.eps=0.4,0.5")
    p.add_argument("--variant", action="append", nargs="+", default=[], metavar="NAME_THEN_KEY=VALUE",
                   help="a named set of settings, one axis with the other variants: --variant leff method=lwtgpf "
                        "'model.leff_stages=[true,true,true,true]'")
    p.add_argument("--seeds", nargs="+", default=[], type=int, help="train.seed of each combination, e.g. --seeds 1 2 3")
    p.add_argument("--jobs", type=int, default=None,
                   help="jobs at once: here (default 1), or the Slurm array's parallelism (default: no limit)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads per job (default: cores // --jobs)")
    p.add_argument("--gpus", default="", help="GPU ids handed to the --jobs slots in turn, e.g. 0,1")
    p.add_argument("--rerun-failed", action="store_true", help="also rerun failed jobs (done jobs never rerun)")
    p.add_argument("--print-commands", action="store_true",
                   help="print one shell line per job to run (GNU parallel, a Slurm job array) instead of running")
    p.add_argument("--status", action="store_true", help="print every job's status and error, and exit")
    p.add_argument("--job", default="", help="run this one job of the sweep (what --print-commands lines do)")
    p.add_argument("--executor", choices=["local", "slurm", "submitit-local"], default="local",
                   help="local: --jobs subprocesses here; slurm: a submitit job array; submitit-local: submitit's "
                        "local executor (needs pip install 'lwtgpf[slurm]')")
    p.add_argument("--timeout-min", type=int, default=None, help="scheduler time limit per job (minutes)")
    p.add_argument("--partition", default=None, help="Slurm partition")
    p.add_argument("--gpus-per-job", type=int, default=None, help="GPUs per scheduler job")
    p.add_argument("--mem-gb", type=float, default=None, help="memory per scheduler job (GB)")
    p.add_argument("--submitit-set", action="append", default=[], metavar="KEY=VALUE",
                   help="any other submitit parameter, e.g. slurm_account=myproject")
    p.add_argument("--no-wait", action="store_true", help="return once the scheduler has the jobs")
    p.set_defaults(func=cmd_sweep)

    p = verbs.add_parser("compare", help="final metrics grouped by the swept keys (mean +- std over seeds) and "
                                         "per-epoch curves of runs and sweeps")
    p.add_argument("sources", nargs="+", metavar="RUN_OR_SWEEP", help="sweep folders, run folders or folders of runs")
    p.add_argument("--by", action="append", default=[], metavar="KEY",
                   help="group by this key instead (a sweep axis or any config key; repeatable)")
    p.add_argument("--metrics", nargs="+", default=[], help="the table's metrics (default: mAP R1 mINP nmi pairwise_f "
                                                            "num_clusters camera_split_rate minutes)")
    p.add_argument("--metric", default="mAP", help="the metric of the final_<metric>.png bar chart")
    p.add_argument("--out", default="", help="write comparison.csv / .md, runs.csv, curves.csv and PNGs here "
                                             "(default for one sweep: SWEEP/comparison)")
    p.add_argument("--runs", action="store_true", help="also print one line per run")
    p.set_defaults(func=cmd_compare)

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

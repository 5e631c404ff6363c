"""Comparing runs: final metrics grouped by what was swept, mean +- std over seeds, per-epoch curves.

    result = compare(["runs/eps-sweep"])           # sweep folders, run folders, or folders of runs
    result.table                                   # one row per group: keys, n (seeds), mean / std per metric
    result.runs                                    # one row per run: keys, seed, status, final metrics
    result.curves                                  # one row per (run, epoch): the log.json curves
    print(result.markdown())                       # the table as Markdown (what the README shows)
    result.write("runs/eps-sweep/comparison")      # CSV, Markdown and PNG files for headless runs

What is read: run folders only, through `lwtgpf.run_folder.RunFolder` (config.yaml, metrics.json,
log.json, provenance.json), and a sweep's manifest only to know which run is which combination (and
which jobs failed or never ran). Final metrics: metrics.json (percent; the last epoch, never the best);
a run without it that logged an evaluation at its last configured epoch (a notebook that steps the
trainer) counts with that row's numbers; any other run is listed with its status and left out of the
means. Label quality (NMI, pairwise precision / recall / F, clusters, camera-split rate) is the last
epoch's row of log.json; `minutes` is provenance.json's start-to-end wall time.

Grouping keys: a sweep's axes (variant, grid keys) without the seed; for run folders given loose, the
config keys whose values differ between them (but `train.seed` and `data.root`); `source` (the folder
given, when several sweeps or folders of runs are compared); a notebook sweep whose jobs hold several training runs adds
`run` (the run's folder inside the job, e.g. `train`, `pretrain`). `by=[...]` groups by any of these or
by any config key instead.

Seed spread rule (`inside_spread`): two groups' means of a metric differ *inside the seed spread* when
their mean +- std intervals overlap, |mean_a - mean_b| <= std_a + std_b, std being the sample standard
deviation over seeds (ddof 1). The table marks, per ranked metric, the best group ("best"), the groups
whose difference from it is inside the spread ("inside spread": not distinguishable from the best with
these seeds), those outside it ("outside spread"), and, where a group has fewer than two finished seeds,
"spread unknown": a difference with one seed is never shown as real. Higher is better for every
ranked metric but the camera-split rate; cluster counts and minutes are not ranked.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from lwtgpf.errors import UserError
from lwtgpf.experiments.manifest import SweepFolder
from lwtgpf.experiments.spec import SEED_AXIS
from lwtgpf.run_folder import CONFIG, RunFolder

FINAL_METRICS = ("mAP", "R1", "R5", "R10", "mINP")  # metrics.json, percent
LABEL_METRICS = ("nmi", "pairwise_precision", "pairwise_recall", "pairwise_f", "num_clusters", "camera_split_rate")
TABLE_METRICS = ("mAP", "R1", "mINP", "nmi", "pairwise_f", "num_clusters", "camera_split_rate", "minutes")
CURVE_METRICS = ("mAP", "nmi", "pairwise_precision", "pairwise_recall", "num_clusters", "camera_split_rate")
LOWER_IS_BETTER = frozenset({"camera_split_rate"})
NOT_RANKED = frozenset({"num_clusters", "minutes", "epochs", "num_proxies", "outlier_fraction"})
IGNORED_KEYS = frozenset({"train.seed", "data.root"})  # never a grouping key of loose runs
DONE = "done"


class CompareError(UserError):
    """A folder to compare that does not exist or holds no run, or a grouping key / metric that no run has."""


@dataclass
class _Run:
    path: Path
    values: dict[str, Any]
    source: str
    status: str = DONE
    job: str = ""
    part: str = ""


@dataclass
class Comparison:
    """What `compare` returns (see the module docstring). keys: the grouping columns; metrics: the
    table's metric columns (each with `<m>_std` and, when ranked, `<m>_vs_best` in `table`)."""
    runs: pd.DataFrame
    table: pd.DataFrame
    curves: pd.DataFrame
    keys: list[str]
    metrics: list[str]
    sources: list[str] = field(default_factory=list)

    def markdown(self, digits: int = 1) -> str:
        """The table as Markdown: `mean ± std` per metric, the best group in bold, `≈` after a mean inside
        the seed spread of the best, `?` where the spread is unknown (one seed); a legend line follows."""
        return markdown_table(self.table, self.keys, self.metrics, digits)

    def write(self, folder: str | Path, metric: str = "mAP", dpi: int = 120) -> list[Path]:
        """comparison.csv (the table), comparison.md, runs.csv, curves.csv, curves.png and
        final_<metric>.png (per-group bars with every seed) into `folder`; returns the paths."""
        from lwtgpf.fileio import write_text_atomic
        from lwtgpf.viz.compare_figures import curves_figure, final_metric_figure, save_figure

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        written = [write_text_atomic(folder / "comparison.csv", self.table.to_csv(index=False)),
                   write_text_atomic(folder / "comparison.md", self.markdown() + "\n"),
                   write_text_atomic(folder / "runs.csv", self.runs.to_csv(index=False)),
                   write_text_atomic(folder / "curves.csv", self.curves.to_csv(index=False))]
        written.append(save_figure(curves_figure(self.curves, "group", CURVE_METRICS), folder / "curves.png", dpi=dpi))
        if metric in self.runs and self.runs[metric].notna().any():
            figure = final_metric_figure(self.runs[self.runs["status"] == DONE], "group", metric)
            written.append(save_figure(figure, folder / f"final_{metric}.png", dpi=dpi))
        return written


def compare(sources: Sequence[str | Path], by: Sequence[str] | None = None,
            metrics: Sequence[str] | None = None) -> Comparison:
    """Read the runs of `sources` (sweep folders, run folders, folders holding either) and compare them.

    by: grouping keys (default: see the module docstring); metrics: the table's metrics (default
    TABLE_METRICS: those that no run has are dropped). Raises CompareError for a missing folder, a
    folder without runs, or a `by` / `metrics` name no run has.
    """
    if not sources:
        raise CompareError("give at least one run or sweep folder to compare")
    found: list[_Run] = []
    sweep_axes: list[str] = []
    for source in sources:
        runs, axes = _find(Path(source))
        found += runs
        sweep_axes += [a for a in axes if a not in sweep_axes]
    runs = _runs_table(found)
    keys = _default_keys(runs, found, sweep_axes, several_sources=len(sources) > 1) if by is None else list(by)
    for key in keys:
        if key not in runs:
            runs[key] = [_config_value(run.path, key) for run in found]
    runs.insert(0, "group", _group_labels(runs, keys))
    if metrics is None:
        metrics = [m for m in TABLE_METRICS if m in runs and runs[m].notna().any()]
    else:
        missing = [m for m in metrics if m not in runs]
        if missing:
            known = [c for c in runs if c in FINAL_METRICS + LABEL_METRICS or c in ("minutes", "epochs")]
            raise CompareError(f"no run has metric(s) {', '.join(missing)}; known: {', '.join(known)}")
    table = summary_table(runs, keys, list(metrics))
    curves = _curves_table(found, runs, keys)
    return Comparison(runs=runs, table=table, curves=curves, keys=keys, metrics=list(metrics),
                      sources=[str(Path(s).absolute()) for s in sources])


def summary_table(runs: pd.DataFrame, keys: Sequence[str], metrics: Sequence[str]) -> pd.DataFrame:
    """One row per group of `runs` (finished runs only): the keys, `group` (their label), `n` (finished
    seeds), `seeds`, `not_done` (runs of the group without final metrics), and per metric `<m>` (mean),
    `<m>_std` (sample std over seeds, NaN with one) and, for ranked metrics, `<m>_vs_best` (the spread
    rule of the module docstring). Groups keep the order of their first run."""
    rows = []
    for label, group in runs.groupby("group", sort=False, dropna=False):
        done = group[group["status"] == DONE]
        row: dict[str, Any] = {key: group[key].iloc[0] for key in keys}
        row.update(group=label, n=len(done), seeds=" ".join(str(s) for s in sorted(done["seed"].dropna().astype(int))),
                   not_done=len(group) - len(done))
        for metric in metrics:
            values = pd.to_numeric(done[metric], errors="coerce").dropna() if metric in done else pd.Series(dtype=float)
            row[metric] = float(values.mean()) if len(values) else math.nan
            row[f"{metric}_std"] = float(values.std(ddof=1)) if len(values) > 1 else math.nan
        rows.append(row)
    table = pd.DataFrame(rows)
    for metric in metrics:
        if metric not in NOT_RANKED:
            table[f"{metric}_vs_best"] = spread_marks(table, metric)
    return table


def inside_spread(mean_a: float, std_a: float, mean_b: float, std_b: float) -> bool | None:
    """True when |mean_a - mean_b| <= std_a + std_b (the two mean +- std intervals overlap), False when
    not, None when a std is unknown (NaN: fewer than two seeds) or a mean is missing."""
    if any(math.isnan(v) for v in (mean_a, std_a, mean_b, std_b)):
        return None
    return abs(mean_a - mean_b) <= std_a + std_b


def spread_marks(table: pd.DataFrame, metric: str) -> list[str]:
    """Per row of a summary table: "best", "inside spread", "outside spread" or "spread unknown" (a std
    is NaN), relative to the group with the best mean of `metric` (lowest for LOWER_IS_BETTER);
    "" when the row has no mean."""
    means = table[metric].astype(float)
    if means.notna().sum() == 0:
        return [""] * len(table)
    best = means.idxmin() if metric in LOWER_IS_BETTER else means.idxmax()
    marks = []
    for i in table.index:
        if math.isnan(means[i]):
            marks.append("")
        elif i == best or means[i] == means[best]:
            marks.append("best")
        else:
            inside = inside_spread(means[i], table.at[i, f"{metric}_std"], means[best], table.at[best, f"{metric}_std"])
            marks.append({True: "inside spread", False: "outside spread", None: "spread unknown"}[inside])
    return marks


def spread_matrix(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    """group x group: the difference of means of `metric` (row minus column), with "≈" appended where it is
    inside the seed spread and "?" where the spread is unknown."""
    labels = list(table["group"])
    cells = []
    for i in table.index:
        row = []
        for j in table.index:
            diff = table.at[i, metric] - table.at[j, metric]
            inside = inside_spread(table.at[i, metric], table.at[i, f"{metric}_std"],
                                   table.at[j, metric], table.at[j, f"{metric}_std"])
            row.append(f"{diff:+.2f}" + {True: " ≈", False: "", None: " ?"}[inside])
        cells.append(row)
    return pd.DataFrame(cells, index=labels, columns=labels)


def markdown_table(table: pd.DataFrame, keys: Sequence[str], metrics: Sequence[str], digits: int = 1) -> str:
    """A summary table as Markdown (see `Comparison.markdown`)."""
    keys = list(keys) or ["group"]
    header = [*keys, "seeds", *[_METRIC_LABELS.get(m, m) for m in metrics]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in table.iterrows():
        cells = [_plain(row[k]) for k in keys] + [str(row["n"]) + ("" if not row["not_done"] else f" (+{row['not_done']} not done)")]
        for metric in metrics:
            mean, std = row[metric], row.get(f"{metric}_std", math.nan)
            places = 3 if metric in ("nmi", "pairwise_f", "pairwise_precision", "pairwise_recall", "camera_split_rate") else (
                0 if metric == "num_clusters" else digits)
            if math.isnan(mean):
                cells.append("-")
                continue
            text = f"{mean:.{places}f}" + (f" ± {std:.{places}f}" if not math.isnan(std) else "")
            mark = row.get(f"{metric}_vs_best", "")
            text = {"best": f"**{text}**", "inside spread": f"{text} ≈", "spread unknown": f"{text} ?"}.get(mark, text)
            cells.append(text)
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("mean ± std over seeds (sample std); **bold**: the best group; ≈: inside the seed spread of the best "
                 "(|Δ| ≤ std + std_best); ?: spread unknown (one seed)")
    return "\n".join(lines)


_METRIC_LABELS = {"nmi": "NMI", "pairwise_f": "pairwise F", "pairwise_precision": "pairwise precision",
                  "pairwise_recall": "pairwise recall", "num_clusters": "clusters",
                  "camera_split_rate": "camera-split rate"}


# ---------------------------------------------------------------------------------------------------
# Finding and reading runs


def _find(source: Path) -> tuple[list[_Run], list[str]]:
    """The runs under one source and the sweep axes found there."""
    if not source.exists():
        raise CompareError(f"{source} does not exist")
    if SweepFolder.is_sweep(source):
        return _sweep_runs(SweepFolder(source), source.name)
    if (source / CONFIG).is_file():  # a run given on its own: grouped by its config, not by its name
        return [_Run(source.absolute(), {}, "")], []
    runs: list[_Run] = []
    axes: list[str] = []
    sweeps = sorted({p.parent for p in source.glob("**/manifest.json") if SweepFolder.is_sweep(p.parent)})
    for sweep in sweeps:
        found, sweep_axes = _sweep_runs(SweepFolder(sweep), str(sweep.relative_to(source)))
        runs += found
        axes += [a for a in sweep_axes if a not in axes]
    for config in sorted(source.glob(f"**/{CONFIG}")):
        if not any(s == config.parent or s in config.parents for s in sweeps):
            runs.append(_Run(config.parent.absolute(), {}, source.name))
    if not runs:
        raise CompareError(f"{source} holds no run folder (config.yaml) and no sweep (manifest.json)")
    return runs, axes


def _sweep_runs(sweep: SweepFolder, source: str) -> tuple[list[_Run], list[str]]:
    spec = sweep.read_spec()
    manifest = sweep.read_manifest()
    runs: list[_Run] = []
    for job_id, entry in manifest["jobs"].items():
        folder = sweep.path / entry["folder"]
        values = {k: v for k, v in entry["values"].items() if k != SEED_AXIS}
        nested = [folder] if spec.kind == "train" else sorted(p.parent for p in folder.glob(f"**/{CONFIG}"))
        if spec.kind == "train" and not (folder / CONFIG).is_file():
            nested = []
        if not nested:
            runs.append(_Run(folder, values, source, status=entry["status"] if entry["status"] != DONE else "no run",
                             job=job_id))
        for path in nested:
            part = "" if path == folder else str(path.relative_to(folder))
            runs.append(_Run(path, values, source, status=entry["status"], job=job_id, part=part))
    return runs, [a for a in spec.axes if a != SEED_AXIS]


def _runs_table(found: list[_Run]) -> pd.DataFrame:
    rows = []
    for run in found:
        row: dict[str, Any] = {**run.values, "source": run.source, "job": run.job, "run": run.part,
                               "path": str(run.path), "status": run.status, "seed": math.nan}
        if (run.path / CONFIG).is_file():
            row.update(_read_run(RunFolder(run.path), run.status))
        rows.append(row)
    return pd.DataFrame(rows)


def _read_run(run: RunFolder, manifest_status: str) -> dict[str, Any]:
    """seed, status, final metrics, last-epoch label quality and minutes of one run folder."""
    cfg = run.read_config()
    history = run.read_history()
    metrics = run.read_metrics()
    last = history[-1] if history else {}
    if not metrics and last.get("epoch") == cfg.train.epochs and "mAP" in last:
        metrics = {key: 100.0 * last[key] for key in FINAL_METRICS if key in last}
        metrics["epochs"] = last["epoch"]
    status = DONE if metrics else ("incomplete" if manifest_status in (DONE, "") else manifest_status)
    row: dict[str, Any] = {"seed": cfg.train.seed, "status": status, "epochs": metrics.get("epochs", len(history))}
    row.update({key: metrics.get(key, math.nan) for key in FINAL_METRICS})
    row.update({key: last.get(key, math.nan) for key in LABEL_METRICS})
    row["minutes"] = _minutes(run.read_provenance())
    return row


def _minutes(provenance: dict[str, Any]) -> float:
    try:
        start, end = (time.mktime(time.strptime(provenance[k], "%Y-%m-%d %H:%M:%S")) for k in ("started", "ended"))
    except (KeyError, TypeError, ValueError):
        return math.nan
    return round((end - start) / 60.0, 2)


def _config_value(path: Path, key: str) -> Any:
    if not (path / CONFIG).is_file():
        return None
    flat = RunFolder(path).read_config().flat()
    if key not in flat:
        raise CompareError(f"--by {key}: not a sweep axis, a column or a config key (config keys: e.g. "
                           f"{', '.join(list(flat)[:5])}, ...)")
    return _plain(flat[key])


def _default_keys(runs: pd.DataFrame, found: list[_Run], sweep_axes: list[str], several_sources: bool) -> list[str]:
    keys = list(sweep_axes)
    loose = [run for run in found if not run.job and (run.path / CONFIG).is_file()]
    if len(loose) > 1:
        flats = [RunFolder(run.path).read_config().flat() for run in loose]
        differing = [k for k in flats[0] if k not in IGNORED_KEYS and len({_plain(f[k]) for f in flats}) > 1]
        for key in differing:
            runs[key] = None
            for run, flat in zip(loose, flats):
                runs.loc[runs["path"] == str(run.path), key] = _plain(flat[key])
        keys += [k for k in differing if k not in keys]
    if "run" in runs and runs["run"].nunique() > 1:
        keys.append("run")
    if several_sources and runs.loc[runs["source"] != "", "source"].nunique() > 1:
        keys.insert(0, "source")
    return keys


def _group_labels(runs: pd.DataFrame, keys: Sequence[str]) -> list[str]:
    if not keys:
        return ["all"] * len(runs)
    labels = []
    for _, row in runs[list(keys)].iterrows():
        parts = [f"{k}={_plain(v)}" for k, v in row.items() if v is not None and not (isinstance(v, float) and math.isnan(v))]
        labels.append(", ".join(parts) or "-")
    return labels


def _curves_table(found: list[_Run], runs: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    rows = []
    for run, (_, info) in zip(found, runs.iterrows()):
        if not (run.path / CONFIG).is_file():
            continue
        for epoch_row in RunFolder(run.path).read_history():
            row = {"group": info["group"], **{k: info[k] for k in keys}, "seed": info["seed"], "path": str(run.path),
                   "epoch": epoch_row.get("epoch")}
            for metric in CURVE_METRICS:
                value = epoch_row.get(metric, math.nan)
                row[metric] = 100.0 * value if metric in FINAL_METRICS and value is not None else value
            rows.append(row)
    columns = ["group", *keys, "seed", "path", "epoch", *CURVE_METRICS]
    return pd.DataFrame(rows, columns=list(dict.fromkeys(columns)))


def _plain(value: Any) -> Any:
    """Lists as compact JSON text (hashable, printable); numpy scalars as Python numbers."""
    if isinstance(value, (list, tuple)):
        return json.dumps(list(value), separators=(",", ":"))
    if isinstance(value, np.generic):
        return value.item()
    return value


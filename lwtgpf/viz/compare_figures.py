"""Figures of a run comparison (`lwtgpf.experiments.compare`): pure matplotlib, no pyplot, no torch.

    curves_figure(curves, group, metrics)     per-epoch curves, one line per group (mean over seeds),
                                              a band from the lowest to the highest seed
    final_metric_figure(runs, group, metric)  one bar per group (mean), std error bar, every seed a dot
    save_figure(fig, path)                    a PNG file
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from lwtgpf.viz.workbench_figures import save_figure  # noqa: F401  (re-exported: one PNG writer)

COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
           "#7f7f7f"]
TITLES = {"mAP": "mAP (%)", "nmi": "NMI of the pseudo labels", "pairwise_precision": "pairwise precision",
          "pairwise_recall": "pairwise recall", "num_clusters": "clusters",
          "camera_split_rate": "camera-split rate (lower is better)",
          "pairwise_f": "pairwise F", "R1": "R1 (%)", "mINP": "mINP (%)", "minutes": "minutes"}


def curves_figure(curves: pd.DataFrame, group: str = "group", metrics: Sequence[str] = ("mAP",),
                  width: float = 13.0) -> Figure:
    """One panel per metric (x: epoch). curves: one row per (run, epoch) with columns `group`, `seed`,
    `epoch` and the metrics (NaN where a run did not log it, e.g. mAP between evaluations). Each group is
    a line through its mean over seeds with a band from the min to the max seed; a metric no run has
    gets an empty panel that says so."""
    columns = 3 if len(metrics) > 2 else len(metrics) or 1
    rows = math.ceil(len(metrics) / columns) or 1
    fig = Figure(figsize=(width, 3.2 * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    groups = list(dict.fromkeys(curves[group])) if len(curves) else []
    for ax, metric in zip(axes, metrics):
        ax.set_title(TITLES.get(metric, metric), fontsize=10)
        ax.set_xlabel("epoch")
        data = curves[curves[metric].notna()] if metric in curves else curves.iloc[0:0]
        if data.empty:
            ax.text(0.5, 0.5, f"no run logged {metric}", ha="center", va="center", transform=ax.transAxes, color="grey")
            continue
        for i, label in enumerate(groups):
            per_epoch = data[data[group] == label].groupby("epoch")[metric].agg(["mean", "min", "max", "count"])
            if per_epoch.empty:
                continue
            colour = COLOURS[i % len(COLOURS)]
            x = per_epoch.index.to_numpy(dtype=float)
            ax.plot(x, per_epoch["mean"], marker="o" if len(x) < 12 else None, ms=3, color=colour, label=label)
            if (per_epoch["count"] > 1).any():
                ax.fill_between(x, per_epoch["min"], per_epoch["max"], color=colour, alpha=0.18, linewidth=0)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    for ax in axes[len(metrics):]:
        ax.set_visible(False)
    if groups:
        fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=min(len(groups), 3),
                   fontsize=8, frameon=False)
    fig.suptitle("per-epoch curves: line = mean over seeds, band = lowest to highest seed", fontsize=10)
    return fig


def final_metric_figure(runs: pd.DataFrame, group: str = "group", metric: str = "mAP") -> Figure:
    """One horizontal bar per group: the mean of `metric` over its runs (rows of `runs`), an error bar of
    one sample std (with two seeds or more) and a dot per seed, so the spread is visible next to the
    difference."""
    groups = list(dict.fromkeys(runs[group])) if len(runs) else []
    fig = Figure(figsize=(8, 0.55 * max(len(groups), 1) + 1.4), layout="constrained")
    ax = fig.subplots()
    for i, label in enumerate(groups):
        values = pd.to_numeric(runs.loc[runs[group] == label, metric], errors="coerce").dropna().to_numpy()
        if not len(values):
            continue
        colour = COLOURS[i % len(COLOURS)]
        std = values.std(ddof=1) if len(values) > 1 else 0.0
        ax.barh(i, values.mean(), xerr=std if len(values) > 1 else None, color=colour, alpha=0.55, capsize=4)
        jitter = np.linspace(-0.18, 0.18, len(values)) if len(values) > 1 else np.zeros(1)
        ax.scatter(values, i + jitter, color=colour, edgecolor="black", linewidth=0.5, s=22, zorder=3)
        ax.text(max(values.max(), values.mean() + std), i, f"  {values.mean():.2f}" + (f" ± {std:.2f}" if len(values) > 1 else "")
                + f"  (n={len(values)})", va="center", fontsize=8)
    ax.set_yticks(range(len(groups)), [str(g) for g in groups], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(TITLES.get(metric, metric))
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(f"final {metric}: bar = mean, error bar = std over seeds, dots = seeds", fontsize=10)
    return fig

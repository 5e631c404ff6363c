"""Static figures of clusters through time (`lwtgpf.workbench.history`): what the workbench's lineage,
trajectory and camera-pair views draw, and what headless runs save as PNG.

    lineage_figure(lineage, ...)            event counts + an alluvial flow of the largest events
    trajectory_figure(steps, ...)           where one identity's (or one cluster's) crops were, per epoch
    camera_pairs_figure(pairs, series, ...) per camera pair: recall / wrong pairs, and both over epochs

Each function draws into `fig` (cleared first) or a new Figure, and returns it; pure matplotlib (no
pyplot, no torch). Artists a mouse can pick carry a gid: "a:<cluster>" / "b:<cluster>" for the lineage
nodes, "epoch:<epoch>" for trajectory bars and camera-pair curve points.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import PathPatch, Rectangle
from matplotlib.path import Path as MplPath
from matplotlib.ticker import MaxNLocator

from lwtgpf.viz.workbench_figures import target_figure

EVENT_COLOURS = {"kept": "#4c72b0", "split": "#dd8452", "merged": "#55a868", "dissolved": "#8c8c8c",
                 "appeared": "#8172b3"}
OUTLIERS = -1
HIGHLIGHT = "#d62728"


# ---------------------------------------------------------------------------------------------------
# Lineage


def lineage_nodes(lineage, max_clusters: int = 10, highlight_a: Sequence[int] = ()) -> tuple[list[int], list[int]]:
    """The clusters of epoch a and b an alluvial can show readably: the largest split / merged /
    dissolved clusters of epoch a (and `highlight_a`), the other sources of what they merged into, and
    everything they flow to; -1 (outliers) where crops come from or go to it."""
    chosen: list[int] = [c for c in highlight_a if c in lineage.event_a]
    events = [c for kind in ("split", "merged", "dissolved") for c in lineage.events(kind, "a")]
    events.sort(key=lambda c: (-lineage.size_a[c], c))
    for cluster in events + lineage.events("kept", "a"):
        if len(chosen) >= max_clusters:
            break
        if cluster not in chosen:
            chosen.append(cluster)
    flows = lineage.flows[np.isin(lineage.flows[:, 0], chosen)]
    targets = [int(b) for b in dict.fromkeys(flows[:, 1].tolist())]
    partners = lineage.flows[np.isin(lineage.flows[:, 1], [b for b in targets if b >= 0]) & (lineage.flows[:, 0] >= 0)]
    for a in partners[:, 0].tolist():
        if a not in chosen and len(chosen) < 2 * max_clusters and lineage.event_a.get(a) == "merged":
            chosen.append(int(a))
    flows = lineage.flows[np.isin(lineage.flows[:, 0], chosen)]
    targets = sorted(set(flows[:, 1].tolist()), key=lambda b: (b < 0, -int(flows[flows[:, 1] == b, 2].sum()), b))
    position = {b: i for i, b in enumerate(targets)}
    main_target = {a: position[int(flows[flows[:, 0] == a][0, 1])] for a in chosen}  # flows: largest first
    chosen.sort(key=lambda a: (a < 0, main_target[a], -lineage.size_a[a] if a >= 0 else 0, a))  # few crossings
    return chosen, [int(b) for b in targets]


def lineage_figure(lineage, title: str = "", max_clusters: int = 10, highlight_a: Sequence[int] = (),
                   highlight_b: Sequence[int] = (), fig: Figure | None = None) -> Figure:
    """Left: how many clusters of each epoch were kept / split / merged / dissolved / appeared.
    Right: the crops of the largest events flowing from their clusters at epoch a to epoch b, bands
    coloured by what happened to the cluster they leave, widths in crops; highlighted clusters framed red."""
    fig = target_figure(fig, (11, 5.2))
    counts_ax, flow_ax = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 2.6]})
    names = ["kept", "split", "merged", "dissolved", "appeared"]
    at_a = [lineage.counts_a.get(n, 0) for n in names]
    at_b = [lineage.counts_b.get(n, 0) for n in names]
    y = np.arange(len(names))
    counts_ax.barh(y - 0.2, at_a, 0.4, color=[EVENT_COLOURS[n] for n in names], label=f"epoch {lineage.epoch_a}")
    counts_ax.barh(y + 0.2, at_b, 0.4, color=[EVENT_COLOURS[n] for n in names], alpha=0.45,
                   label=f"epoch {lineage.epoch_b}")
    for yy, a, b in zip(y, at_a, at_b):
        counts_ax.text(a, yy - 0.2, f" {a}", va="center", fontsize=8)
        counts_ax.text(b, yy + 0.2, f" {b}", va="center", fontsize=8, alpha=0.8)
    counts_ax.set_yticks(y, names)
    counts_ax.invert_yaxis()
    counts_ax.set_xlabel("clusters")
    counts_ax.legend(fontsize=8, loc="lower right")
    counts_ax.set_title(f"clusters of epoch {lineage.epoch_a} -> {lineage.epoch_b}", fontsize=9)

    nodes_a, nodes_b = lineage_nodes(lineage, max_clusters, highlight_a)
    flows = lineage.flows[np.isin(lineage.flows[:, 0], nodes_a) & np.isin(lineage.flows[:, 1], nodes_b)]
    _alluvial(flow_ax, lineage, nodes_a, nodes_b, flows, set(highlight_a), set(highlight_b))
    fig.suptitle(title or f"cluster lineage, epoch {lineage.epoch_a} -> {lineage.epoch_b}", fontsize=10)
    fig.subplots_adjust(left=0.08, right=0.98, top=0.88, bottom=0.1, wspace=0.25)
    return fig


def _alluvial(ax, lineage, nodes_a, nodes_b, flows, highlight_a, highlight_b) -> None:
    gap = 0.02
    total_a = sum(_node_size(lineage, "a", c, flows) for c in nodes_a) or 1
    total_b = sum(_node_size(lineage, "b", c, flows) for c in nodes_b) or 1
    scale = (1 - gap * max(len(nodes_a), len(nodes_b), 1)) / max(total_a, total_b)
    left, right, width = 0.0, 1.0, 0.06

    def place(nodes, side):
        spans, top = {}, 1.0
        for cluster in nodes:
            height = _node_size(lineage, side, cluster, flows) * scale
            spans[cluster] = [top - height, top]  # [bottom, next free top]
            top -= height + gap
        return spans

    spans_a, spans_b = place(nodes_a, "a"), place(nodes_b, "b")
    for side, spans, x, events, highlight in (("a", spans_a, left, lineage.event_a, highlight_a),
                                              ("b", spans_b, right - width, lineage.event_b, highlight_b)):
        for cluster, (bottom, top) in spans.items():
            colour = "#cfcfcf" if cluster == OUTLIERS else EVENT_COLOURS[events[cluster]]
            patch = Rectangle((x, bottom), width, top - bottom, facecolor=colour,
                              edgecolor=HIGHLIGHT if cluster in highlight else "white",
                              linewidth=2.5 if cluster in highlight else 0.5, picker=True)
            patch.set_gid(f"{side}:{cluster}")
            ax.add_patch(patch)
            name = "outliers" if cluster == OUTLIERS else f"{cluster} ({events[cluster]})"
            ax.text(x - 0.01 if side == "a" else x + width + 0.01, (bottom + top) / 2, name, fontsize=7,
                    ha="right" if side == "a" else "left", va="center")
    cursor_a = {c: top for c, (_, top) in spans_a.items()}
    cursor_b = {c: top for c, (_, top) in spans_b.items()}
    for a, b, crops in flows.tolist():
        height = crops * scale
        y0, y1 = cursor_a[a], cursor_b[b]
        cursor_a[a] -= height
        cursor_b[b] -= height
        colour = "#cfcfcf" if a == OUTLIERS else EVENT_COLOURS[lineage.event_a[a]]
        x0, x1 = left + width, right - width
        mid = (x0 + x1) / 2
        path = MplPath([(x0, y0), (mid, y0), (mid, y1), (x1, y1), (x1, y1 - height), (mid, y1 - height),
                        (mid, y0 - height), (x0, y0 - height), (x0, y0)],
                       [MplPath.MOVETO, MplPath.CURVE4, MplPath.CURVE4, MplPath.CURVE4, MplPath.LINETO,
                        MplPath.CURVE4, MplPath.CURVE4, MplPath.CURVE4, MplPath.CLOSEPOLY])
        emphasised = a in highlight_a or b in highlight_b
        ax.add_patch(PathPatch(path, facecolor=colour, alpha=0.75 if emphasised else 0.4, linewidth=0))
        if crops * scale > 0.025:
            ax.text(mid, y0 - height / 2 + (y1 - y0) / 2, str(crops), fontsize=6, ha="center", va="center")
    ax.set_xlim(-0.25, 1.25)
    ax.set_ylim(min([s[0] for s in list(spans_a.values()) + list(spans_b.values())] or [0]) - 0.02, 1.02)
    ax.axis("off")
    ax.set_title(f"largest events: crops from epoch {lineage.epoch_a} (left) to epoch {lineage.epoch_b} (right); "
                 "click a cluster to select it", fontsize=8)


def _node_size(lineage, side: str, cluster: int, flows: np.ndarray) -> int:
    column = 0 if side == "a" else 1
    return int(flows[flows[:, column] == cluster, 2].sum())


# ---------------------------------------------------------------------------------------------------
# Trajectories


def trajectory_figure(steps, title: str, cursor: int | None = None, fig: Figure | None = None) -> Figure:
    """Per epoch, a stacked bar of the group's crops by cluster (largest first; green: the cluster holds
    the group's crops of several cameras, orange: of one camera only; grey: outliers), the group's share
    in its largest cluster over each bar, and the number of clusters it spans as a line."""
    fig = target_figure(fig, (10, 4.2))
    ax = fig.add_subplot()
    epochs = [s.epoch for s in steps]
    for step in steps:
        bottom = 0
        for crops, pure in zip(step.crops.tolist(), step.camera_pure.tolist()):
            bar = ax.bar(step.epoch, crops, bottom=bottom, width=0.8, color="#dd8452" if pure else "#55a868",
                         edgecolor="white", linewidth=0.5)
            bar.patches[0].set_gid(f"epoch:{step.epoch}")
            bar.patches[0].set_picker(True)
            bottom += crops
        if step.outliers:
            ax.bar(step.epoch, step.outliers, bottom=bottom, width=0.8, color="#cfcfcf", edgecolor="white")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("crops")
    for step in steps:  # the share of the group in its largest cluster, over each bar
        ax.text(step.epoch, int(step.crops.sum()) + step.outliers, f"{100 * step.largest_share:.0f}%",
                ha="center", va="bottom", fontsize=7)
    twin = ax.twinx()
    twin.plot(epochs, [s.num_clusters for s in steps], "k.-", label="clusters spanned (right axis)")
    twin.set_ylabel("clusters spanned")
    twin.set_ylim(0, max([s.num_clusters for s in steps] + [1]) * 1.3)
    twin.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(0, max([int(s.crops.sum()) + s.outliers for s in steps] + [1]) * 1.25)
    if cursor is not None:
        ax.axvline(cursor, color=HIGHLIGHT, linewidth=1, linestyle="--")
    handles = [Rectangle((0, 0), 1, 1, color=c) for c in ("#55a868", "#dd8452", "#cfcfcf")]
    ax.legend(handles + twin.get_legend_handles_labels()[0],
              ["multi-camera cluster", "camera-pure cluster", "outliers"] + twin.get_legend_handles_labels()[1],
              fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=4, frameon=False)
    ax.set_title(title, fontsize=9, pad=22)
    fig.subplots_adjust(left=0.08, right=0.92, top=0.84, bottom=0.13)
    return fig


# ---------------------------------------------------------------------------------------------------
# Camera pairs


def camera_pairs_figure(pairs, series: dict[int, tuple[float, float, float]], epoch: int, title: str = "",
                        fig: Figure | None = None) -> Figure:
    """Left: recall per camera pair (a person's crops from cameras a and b in one cluster) at `epoch`.
    Middle: wrong pairs (crops of a and b clustered together that are different people).
    Right: over epochs, cross-camera recall, same-camera recall and pair precision (`series`:
    {epoch: (cross recall, same recall, precision)})."""
    fig = target_figure(fig, (12, 4))
    recall_ax, wrong_ax, curve_ax = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1, 1, 1.4]})
    cams = [f"c{i + 1}" for i in range(len(pairs.correct))]
    for ax, matrix, name, cmap, fmt in ((recall_ax, pairs.recall, "recall (same person clustered together)",
                                         "viridis", "{:.2f}"),
                                        (wrong_ax, pairs.wrong.astype(float), "wrong pairs (different people)",
                                         "magma_r", "{:.0f}")):
        image = ax.imshow(np.nan_to_num(matrix, nan=0.0), cmap=cmap, vmin=0,
                          vmax=1 if "recall" in name else max(1.0, float(np.nanmax(matrix))))
        ax.set_xticks(range(len(cams)), cams, fontsize=7)
        ax.set_yticks(range(len(cams)), cams, fontsize=7)
        ax.set_title(f"{name}, epoch {epoch}", fontsize=8)
        if len(cams) <= 8:
            for (i, j), value in np.ndenumerate(matrix):
                if not np.isnan(value):
                    ax.text(j, i, fmt.format(value), ha="center", va="center", fontsize=6, color="white"
                            if (value < 0.5 if "recall" in name else value > np.nanmax(matrix) / 2) else "black")
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    epochs = sorted(series)
    if epochs:
        values = np.array([series[e] for e in epochs], dtype=float)
        for column, (label, style) in enumerate((("cross-camera recall", "o-"), ("same-camera recall", "s--"),
                                                 ("pair precision", "^:"))):
            line, = curve_ax.plot(epochs, values[:, column], style, markersize=3, label=label, picker=4)
            line.set_gid("epoch-curve")
        curve_ax.axvline(epoch, color=HIGHLIGHT, linewidth=1, linestyle="--")
        curve_ax.set_ylim(0, 1.02)
        curve_ax.set_xlabel("epoch (click to go there)")
        curve_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        curve_ax.legend(fontsize=7)
    curve_ax.set_title("over epochs: what camera-aware proxies should raise", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(left=0.05, right=0.98, top=0.85, bottom=0.14, wspace=0.35)
    return fig

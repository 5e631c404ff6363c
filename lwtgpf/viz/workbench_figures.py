"""The workbench's static figures: what the widgets show and what headless runs save as PNG.

Every function takes plain data (arrays, `lwtgpf.workbench` dataclasses, log rows) and returns a
matplotlib `Figure` (no pyplot, so nothing depends on a GUI backend); `figure_png` turns one into bytes.

    attention_figure(crop_attention, stage, block, head, query)   window grid + attention of one query token
    embedding_figure(layers, title, selected, crops)              UMAP scatter + the selected point's crops
    purity_dashboard_figure(history, panels)                      per-epoch label-quality curves
    cluster_examples_figure(quality, examples, title)             metrics + crops of the purest / most mixed clusters
    rank_list_figure(query, gallery, title)                       a query and its top-k, correct / wrong marked
    mosaic(rows, labels)                                          crops as one image (frames, captions, row labels)
    message_figure(text)                                          a figure that only says something
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.colors import ListedColormap, to_rgba
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator
from PIL import Image, ImageDraw, ImageFont

if TYPE_CHECKING:  # duck-typed: this module never imports torch
    from lwtgpf.workbench.attention import CropAttention


DPI = 80  # widget previews; save_figure passes its own
CATEGORY_COLOURS = ListedColormap(
    [
        "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
        "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#9edae5", "#dbdb8d",
    ]
)
OUTLIER_COLOUR = "#b0b0b0"
CORRECT_COLOUR, WRONG_COLOUR = "#1a9850", "#d73027"


def figure_png(fig: Figure, dpi: int = DPI) -> bytes:
    """The figure as PNG bytes (what an ipywidgets.Image shows); light compression: a redraw must be quick."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, pil_kwargs={"compress_level": 1})
    return buffer.getvalue()


def save_figure(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Write `fig` as a PNG file (parent folders created); returns the path."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"save_figure writes PNG files; {path} does not end in .png")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=dpi)
    return path


def message_figure(text: str, size: tuple[float, float] = (6, 1.5), fig: Figure | None = None) -> Figure:
    fig = target_figure(fig, size)
    fig.text(0.5, 0.5, text, ha="center", va="center", wrap=True)
    return fig


def target_figure(fig: Figure | None, size: tuple[float, float]) -> Figure:
    """A new Figure of `size` inches, or `fig` cleared (a widget's live figure: an interactive canvas
    keeps its figure, each redraw draws into it again)."""
    if fig is None:
        return Figure(figsize=size)
    fig.clear()
    if tuple(fig.get_size_inches()) != tuple(size):
        fig.set_size_inches(*size, forward=True)
    return fig


# ---------------------------------------------------------------------------------------------------
# Attention windows


def window_layout(window: int, shift: int, padded_hw: tuple[int, int]) -> np.ndarray:
    """(Hp, Wp) int: the attention window of every cell of the padded grid, in un-rolled grid coordinates.

    The block rolls the map by -shift and cuts windows row-major, so cell (r, c) of the grid falls into
    window ((r - shift) mod Hp) // window, ((c - shift) mod Wp) // window; with shift > 0 the last window
    row / column wraps around to the top / left border.
    """
    Hp, Wp = padded_hw
    rows = ((np.arange(Hp) - shift) % Hp) // window
    cols = ((np.arange(Wp) - shift) % Wp) // window
    return rows[:, None] * (Wp // window) + cols[None, :]


def query_attention(crop: CropAttention, stage: int, block: int, head: int | None,
                    query: tuple[int, int]) -> np.ndarray:
    """(Hp, Wp) float: the attention of the query token at grid `query` over its window's keys,
    padding keys included (their share is what a crop near the border loses to zeros); 0 elsewhere.
    head None averages the heads."""
    amap = crop.map(stage, block)
    H, W = amap.grid_hw
    row, col = query
    if not (0 <= row < H and 0 <= col < W):
        raise ValueError(f"query token ({row}, {col}) is outside the {H}x{W} grid of stage {stage}")
    Hp, Wp = amap.padded_hw
    layout = window_layout(amap.window, amap.shift, amap.padded_hw)
    win = int(layout[row, col])
    # position inside the window of every cell: rolled coordinates modulo the window
    rolled_r = (np.arange(Hp) - amap.shift) % Hp
    rolled_c = (np.arange(Wp) - amap.shift) % Wp
    offset = (rolled_r[:, None] % amap.window) * amap.window + rolled_c[None, :] % amap.window
    weights = amap.weights[0, win].numpy()  # (heads, N, N)
    if head is not None and not 0 <= head < weights.shape[0]:
        raise ValueError(f"head {head} does not exist; stage {stage} has {weights.shape[0]} heads")
    row_of_query = weights[:, offset[row, col]] if head is None else weights[head, offset[row, col]][None]
    per_key = row_of_query.mean(0)  # (N,)
    return np.where(layout == win, per_key[offset], 0.0)


def attention_figure(crop: CropAttention, stage: int, block: int, head: int | None,
                     query: tuple[int, int], title: str = "", fig: Figure | None = None) -> Figure:
    """Left: the crop, the block's window grid (shifted windows wrap), padding hatched, the query's
    window filled. Right: the query token's attention over its window (head `head`, None = mean)."""
    amap = crop.map(stage, block)
    H, W = amap.grid_hw
    Hp, Wp = amap.padded_hw
    s = amap.stride_px
    layout = window_layout(amap.window, amap.shift, amap.padded_hw)
    attention = query_attention(crop, stage, block, head, query)
    padding_mass = attention[H:, :].sum() + attention[:H, W:].sum()
    img_h, img_w = crop.image.shape[:2]
    fig = target_figure(fig, (2 * 3.6 * max(Wp / Hp, 0.6) + 1.4, 4.6))
    fig.subplots_adjust(left=0.02, right=0.82, bottom=0.02, top=0.8, wspace=0.08)
    axes = fig.subplots(1, 2)
    for ax in axes:
        ax.imshow(crop.image, extent=(0, img_w, img_h, 0))
        ax.set_xlim(0, Wp * s)
        ax.set_ylim(Hp * s, 0)
        ax.set_xticks([])
        ax.set_yticks([])
        _hatch_padding(ax, H, W, Hp, Wp, s)
    left, right = axes
    in_window = np.ma.masked_where(layout != layout[query], np.ones_like(layout, dtype=float))
    left.imshow(in_window, extent=(0, Wp * s, Hp * s, 0), cmap=ListedColormap(["#ffd54f"]), alpha=0.45,
                vmin=0, vmax=1)
    left.add_collection(_window_edges(layout, s, colour="#00bcd4", width=1.6))
    shifted = f", shifted by {amap.shift}" if amap.shift else ""
    left.set_title(f"windows {amap.window}x{amap.window}{shifted}\ngrid {H}x{W}, padded {Hp}x{Wp}", fontsize=9)
    heat = np.ma.masked_where(layout != layout[query], attention)
    shown = right.imshow(heat, extent=(0, Wp * s, Hp * s, 0), cmap="inferno", alpha=0.75,
                         vmin=0, vmax=max(float(attention.max()), 1e-6))
    right.add_collection(_window_edges(layout, s, colour="white", width=0.8))
    colourbar = fig.colorbar(shown, cax=fig.add_axes((0.85, 0.1, 0.025, 0.6)))
    colourbar.ax.tick_params(labelsize=7)
    which = "mean of heads" if head is None else f"head {head}"
    right.set_title(f"attention of token {query}, {which}\non padding: {100 * padding_mass:.1f}%", fontsize=9)
    for ax in axes:
        ax.add_patch(Rectangle((query[1] * s, query[0] * s), s, s, fill=False, ec="#00e676", lw=2))
    fig.suptitle(title or f"stage {stage}, block {block}", fontsize=10)
    return fig


def _window_edges(layout: np.ndarray, cell: float, colour: str, width: float) -> LineCollection:
    """Segments between neighbouring cells of different windows, plus the outer border."""
    Hp, Wp = layout.shape
    segments = []
    rows, cols = np.nonzero(layout[:, 1:] != layout[:, :-1])  # vertical edges right of (r, c)
    segments += [(((c + 1) * cell, r * cell), ((c + 1) * cell, (r + 1) * cell)) for r, c in zip(rows, cols)]
    rows, cols = np.nonzero(layout[1:, :] != layout[:-1, :])  # horizontal edges below (r, c)
    segments += [((c * cell, (r + 1) * cell), ((c + 1) * cell, (r + 1) * cell)) for r, c in zip(rows, cols)]
    w, h = Wp * cell, Hp * cell
    segments += [((0, 0), (w, 0)), ((w, 0), (w, h)), ((w, h), (0, h)), ((0, h), (0, 0))]
    return LineCollection(segments, colors=colour, linewidths=width)


def _hatch_padding(ax, H: int, W: int, Hp: int, Wp: int, cell: float) -> None:
    style = dict(facecolor="#9e9e9e", edgecolor="#424242", hatch="///", alpha=0.6, lw=0)
    if Hp > H:
        ax.add_patch(Rectangle((0, H * cell), Wp * cell, (Hp - H) * cell, **style))
    if Wp > W:
        ax.add_patch(Rectangle((W * cell, 0), (Wp - W) * cell, H * cell, **style))


# ---------------------------------------------------------------------------------------------------
# Crops as one mosaic image: frames and captions drawn into its pixels with Pillow, so a figure of 50
# crops is one imshow (matplotlib spends ~4 ms on every Text it lays out; 50 captions blow a 200 ms budget).


@dataclass(frozen=True)
class Tile:
    """One crop in a mosaic: (H, W, 3) uint8 pixels, a caption under it, a frame colour (None: no frame)."""

    image: np.ndarray
    caption: str = ""
    frame: str | None = None


THUMB_HEIGHT = 96  # px of a crop in a mosaic (aspect kept)
EXAMPLE_THUMB_HEIGHT = 72  # px in the cluster explorer's many rows (the PNG each redraw sends stays small)
FRAME_PX, GAP_PX, FONT_PX = 3, 6, 11


def mosaic(rows: Sequence[Sequence[Tile]], labels: Sequence[str] = (), columns: int | None = None,
           thumb_height: int = THUMB_HEIGHT, boxes: list | None = None) -> np.ndarray:
    """(H, W, 3) uint8 image: one line of tiles per entry of `rows` (wrapped every `columns` tiles),
    each line led by its label (multi-line text) when `labels` are given; white background.
    boxes: a list that receives one (row, index in row, x0, y0, x1, y1) per tile, in image pixels (what
    a click on the image lands on)."""
    font = ImageFont.load_default(size=FONT_PX)
    columns = columns or max([len(r) for r in rows] + [1])
    first = next((t.image for r in rows for t in r), np.zeros((2, 1, 3), np.uint8))
    thumb_w = max(1, round(first.shape[1] * thumb_height / first.shape[0]))
    lines = max([t.caption.count("\n") + 1 for r in rows for t in r if t.caption] + [0])
    caption_w = max([int(font.getbbox(line)[2]) for r in rows for t in r for line in t.caption.split("\n")] + [0])
    cell_w = max(thumb_w + 2 * FRAME_PX, caption_w) + GAP_PX
    cell_h = thumb_height + 2 * FRAME_PX + lines * (FONT_PX + 2) + GAP_PX
    label_w = max([int(font.getbbox(line)[2]) for label in labels for line in label.split("\n")] + [0])
    label_w += GAP_PX if labels else 0
    blocks, block_labels, origin = [], [], []  # lines of at most `columns` tiles; a row's label on its first line
    for r, row in enumerate(rows):
        for start in range(0, max(len(row), 1), columns):
            blocks.append(list(row[start:start + columns]))
            block_labels.append(labels[r] if start == 0 and r < len(labels) else "")
            origin.append((r, start))
    canvas = Image.new("RGB", (label_w + columns * cell_w, max(len(blocks), 1) * cell_h), "white")
    draw = ImageDraw.Draw(canvas)
    for b, (block, label) in enumerate(zip(blocks, block_labels)):
        top = b * cell_h
        if label:
            draw.multiline_text((0, top + thumb_height // 2), label, fill="black", font=font, anchor="lm",
                                spacing=2)
        for c, tile in enumerate(block):
            left = label_w + c * cell_w + (cell_w - GAP_PX - thumb_w - 2 * FRAME_PX) // 2  # centred in its cell
            if tile.frame is not None:
                draw.rectangle((left, top, left + thumb_w + 2 * FRAME_PX - 1, top + thumb_height + 2 * FRAME_PX - 1),
                               fill=tile.frame)
            if boxes is not None:
                boxes.append((origin[b][0], origin[b][1] + c, left, top, left + thumb_w + 2 * FRAME_PX,
                              top + thumb_height + 2 * FRAME_PX))
            thumb = Image.fromarray(np.ascontiguousarray(tile.image[..., :3])).resize((thumb_w, thumb_height))
            canvas.paste(thumb, (left + FRAME_PX, top + FRAME_PX))
            if tile.caption:
                draw.multiline_text((left + FRAME_PX + thumb_w / 2, top + thumb_height + 2 * FRAME_PX + 1),
                                    tile.caption, fill="black", font=font, anchor="ma", align="center", spacing=2)
    return np.asarray(canvas)


def _show_image(ax, image: np.ndarray, interpolation: str = "antialiased") -> None:
    """A mosaic in `ax`; "nearest" where it is shown at 1:1 pixels (no resampling: half the render time)."""
    ax.imshow(image, interpolation=interpolation)
    ax.set_axis_off()


# ---------------------------------------------------------------------------------------------------
# UMAP


@dataclass(frozen=True)
class PointLayer:
    """Points of one kind in the scatter: xy (M, 2), categories (M,) int (-1 = outlier, drawn grey)."""

    name: str
    xy: np.ndarray
    categories: np.ndarray
    marker: str = "o"
    size: float = 12.0


RING_LIMIT = 300  # a larger selection fades the other points instead of ringing its own (Agg draws fewer markers)


def embedding_figure(layers: Sequence[PointLayer], title: str, selected: np.ndarray | None = None,
                     crops: Sequence[Tile] = (), crops_title: str = "", highlight: np.ndarray | None = None,
                     fig: Figure | None = None) -> Figure:
    """Scatter of the layers coloured by category, the selected point ringed, the selection (`highlight`:
    indices into the first layer) circled in black, or, beyond RING_LIMIT points, shown by fading the
    others; the selection's crops on the right. The scatter is `fig.axes[0]` (what a mouse event is read
    against)."""
    fig = target_figure(fig, (10.0, 5.0))
    ax = fig.add_axes((0.02, 0.03, 0.56, 0.82))
    highlight = np.asarray([] if highlight is None else highlight, dtype=np.int64)
    for index, layer in enumerate(layers):
        cats = np.asarray(layer.categories)
        colours = np.where(cats[:, None] >= 0, CATEGORY_COLOURS(np.maximum(cats, 0) % CATEGORY_COLOURS.N),
                           np.array(to_rgba(OUTLIER_COLOUR)))
        if index == 0 and len(highlight) > RING_LIMIT:
            faded = np.ones(len(cats), dtype=bool)
            faded[highlight] = False
            colours[faded, 3] = 0.12
        ax.scatter(layer.xy[:, 0], layer.xy[:, 1], c=colours, s=layer.size, marker=layer.marker,
                   edgecolors="black" if layer.marker != "o" else "none", linewidths=0.6, label=layer.name)
    if layers and 0 < len(highlight) <= RING_LIMIT:
        xy = layers[0].xy[highlight]
        ax.scatter(xy[:, 0], xy[:, 1], s=40, facecolors="none", edgecolors="black", linewidths=0.9, label="selected")
    if selected is not None:
        ax.scatter([selected[0]], [selected[1]], s=260, facecolors="none", edgecolors="black", linewidths=2.0)
    if len(layers) > 1:
        legend = ax.legend(loc="upper right", fontsize=8)  # "best" scans every point: slow at 13k
        for handle in legend.legend_handles:  # the marker shape tells the layers apart, not a colour
            handle.set_facecolor("#757575")
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    crops_ax = fig.add_axes((0.61, 0.03, 0.38, 0.82))
    _show_image(crops_ax, mosaic([crops], columns=4))
    crops_ax.set_title(crops_title, fontsize=9)
    return fig


# ---------------------------------------------------------------------------------------------------
# Purity dashboard

# panel name -> (log keys, y label); what the dashboard can draw from the epoch log
DASHBOARD_PANELS: dict[str, tuple[tuple[str, ...], str]] = {
    "NMI / ARI": (("nmi", "ari"), "score"),
    "pairwise precision / recall": (("pairwise_precision", "pairwise_recall", "pairwise_f"), "score"),
    "clusters vs true ids": (("num_clusters", "num_proxies", "num_true_ids"), "count"),
    "outliers / camera split": (("outlier_fraction", "camera_split_rate"), "fraction"),
    "mAP / R1": (("mAP", "R1"), "fraction"),
}


def purity_dashboard_figure(history: Sequence[dict[str, Any]], panels: Sequence[str] = tuple(DASHBOARD_PANELS),
                            title: str | None = None, cursor: int | None = None, fig: Figure | None = None) -> Figure:
    """One small plot per panel, x = epoch; a key missing from an epoch (mAP between evaluations) is skipped.
    title None: a summary of the last epoch; "": none. cursor: an epoch marked by a dashed line."""
    unknown = [p for p in panels if p not in DASHBOARD_PANELS]
    if unknown:
        raise ValueError(f"unknown dashboard panels {unknown}; known: {list(DASHBOARD_PANELS)}")
    if not history:
        return message_figure("no epoch completed yet: the curves appear after the first trainer.step()", fig=fig)
    if not panels:
        return message_figure("no panel selected", fig=fig)
    columns = min(len(panels), 3)
    rows = math.ceil(len(panels) / columns)
    if title is None:
        last = history[-1]
        title = f"pseudo-label quality, {len(history)} epoch(s); last: " + ", ".join(
            f"{k} {last[k]:.3g}" for k in ("nmi", "ari", "num_clusters") if k in last)
    height = 2.5 * rows + (0.5 if title else 0.25)
    fig = target_figure(fig, (3.4 * columns, height))
    fig.subplots_adjust(left=0.18 / columns, right=0.98, bottom=0.4 / height,
                        top=1 - (0.5 if title else 0.25) / height,
                        wspace=0.25, hspace=0.4)
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    epochs = sorted({row["epoch"] for row in history})
    for ax, panel in zip(axes, panels):
        keys, ylabel = DASHBOARD_PANELS[panel]
        for key in keys:
            points = [(row["epoch"], row[key]) for row in history
                      if key in row and row[key] is not None and np.isfinite(row[key])]
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, marker="o", ms=4, label=key)
        ax.set_title(f"{panel} ({ylabel})", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
        # few tick labels: every label is a Text to lay out, the bulk of a redraw's time
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(nbins=4))
        if cursor is not None:
            ax.axvline(cursor, color="#d62728", linewidth=1, linestyle="--")
        if any(not line.get_label().startswith("_") for line in ax.lines):
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "not logged yet", ha="center", va="center", transform=ax.transAxes, fontsize=8)
    for ax in axes[len(panels):]:
        ax.set_axis_off()
    fig.supxlabel("epoch", fontsize=8, y=0.0, va="bottom")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


# ---------------------------------------------------------------------------------------------------
# Cluster explorer


@dataclass(frozen=True)
class ClusterExample:
    """One cluster to show: a label for the row and its crops (frame green = its majority identity)."""

    title: str
    crops: Sequence[Tile]


QUALITY_KEYS = ("num_clusters", "num_true_ids", "outlier_fraction", "nmi", "ari", "pairwise_precision",
                "pairwise_recall", "camera_split_rate", "cluster_purity")


def format_quality(quality: dict[str, float]) -> list[str]:
    return [f"{key} {quality[key]:.3g}" for key in QUALITY_KEYS if key in quality]


def cluster_examples_figure(quality: dict[str, float], examples: Sequence[ClusterExample], title: str,
                            dpi: int = DPI, fig: Figure | None = None, boxes: list | None = None) -> Figure:
    """Metrics on top, then one row of crops per example cluster, led by the example's title.
    Sized so that the mosaic shows at its own pixel size at `dpi`; boxes: see `mosaic`."""
    metrics = format_quality(quality)
    half = (len(metrics) + 1) // 2
    heading = "\n".join([title, "  ".join(metrics[:half]), "  ".join(metrics[half:])])
    if not examples:
        return message_figure(heading + "\n\nno cluster at these settings (every crop is an outlier)", (8, 2), fig)
    image = mosaic([e.crops for e in examples], labels=[e.title for e in examples], boxes=boxes,
                   thumb_height=EXAMPLE_THUMB_HEIGHT)
    return _image_figure(image, heading, dpi, fig)


# ---------------------------------------------------------------------------------------------------
# Rank list


def rank_list_figure(query: Tile, gallery: Sequence[Tile], title: str, dpi: int = DPI, fig: Figure | None = None,
                     boxes: list | None = None) -> Figure:
    """The query (dark frame), then its ranked gallery crops, framed green (same person) or red (other);
    boxes: see `mosaic` (index 0 is the query, i the i-th gallery crop)."""
    return _image_figure(mosaic([[query, *gallery]], boxes=boxes), title, dpi, fig)


def _image_figure(image: np.ndarray, title: str, dpi: int, fig: Figure | None = None) -> Figure:
    """A figure holding `image` at 1:1 pixels (at `dpi`) under a title of a few lines."""
    title_in = 0.2 * (title.count("\n") + 1) + 0.15
    width_in, height_in = image.shape[1] / dpi, image.shape[0] / dpi
    title_width_in = 0.075 * max(len(line) for line in title.split("\n"))  # ~ a 9-pt character each
    fig_width = max(width_in, title_width_in, 4.0)
    fig = target_figure(fig, (fig_width, height_in + title_in))
    fig.add_axes((0, 0, width_in / fig_width, height_in / (height_in + title_in)))
    _show_image(fig.axes[0], image, interpolation="nearest")
    fig.suptitle(title, fontsize=9, y=1 - 0.05 / (height_in + title_in), va="top")
    return fig

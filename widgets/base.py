"""The one view skeleton: controls on top, an interactive matplotlib canvas (ipympl), a status line.

Why ipympl: the figure a view shows IS the static twin a headless run saves (one plotting code path,
`lwtgpf/viz/`), and ipympl gives that figure mouse events in JupyterLab 4 (hover, click, drag: box and
lasso selectors from matplotlib.widgets) through the same comm messages a browser sends, so tests can
drive a view exactly as a user's mouse does (`send_mouse`).

A view subclasses `FigureView`, builds its controls, implements `draw(fig)` (draw into the live
figure, reading cached results from the RunState) and, for the mouse, `on_click` / `on_move` /
`on_pick`. Every control change and every change of the shared `Selection` redraws; a view that is not
on screen (`visible = False`, set by the Workbench's tabs) only marks itself stale and redraws when shown.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Sequence

import ipywidgets as W
from ipympl.backend_nbagg import Canvas, FigureManager
from matplotlib.figure import Figure

from lwtgpf.viz.workbench_figures import DPI, message_figure, save_figure
from lwtgpf.workbench import RunState

from .selection import Selection


class FigureView(W.VBox):
    title = "view"
    size = (10.0, 5.0)  # inches at DPI, until a draw resizes the figure

    def __init__(self, state: RunState, controls: Sequence[W.Widget], selection: Selection | None = None,
                 visible: bool = True):
        if not isinstance(state, RunState):
            raise TypeError(f"{type(self).__name__} needs a lwtgpf.workbench.RunState, got {type(state).__name__}")
        self.state = state
        self.selection = selection if selection is not None else Selection()
        self.figure = Figure(figsize=self.size, dpi=DPI)
        self.canvas = Canvas(self.figure)
        self.manager = FigureManager(self.canvas, 0)
        self.canvas.toolbar_visible = False
        self.canvas.header_visible = False
        self.canvas.footer_visible = False
        self.canvas.resizable = False
        self.canvas.capture_scroll = False
        self.status = W.HTML()
        self.visible = visible  # a hidden view (a Workbench tab not on screen) draws when shown
        self.stale = True
        self.last_draw_seconds = 0.0
        self.on_epoch: Callable[[int], None] | None = None  # set by a Workbench: a view asks to go to an epoch
        self._quiet = False
        self._press: tuple[float, float] | None = None
        super().__init__([W.HBox(list(controls), layout=W.Layout(flex_flow="row wrap")), self.canvas, self.status])
        for control in controls:
            if hasattr(control, "value"):
                control.observe(self._on_control, names="value")
        self.selection.observe(lambda change: self.on_selection(), names="revision")
        self.canvas.mpl_connect("button_press_event", self._on_press)
        self.canvas.mpl_connect("button_release_event", self._on_release)
        self.canvas.mpl_connect("motion_notify_event", self.on_move)
        self.canvas.mpl_connect("pick_event", self.on_pick)

    # ---- what subclasses implement ---------------------------------------------------------------
    def draw(self, fig: Figure) -> None:
        raise NotImplementedError

    def sync_controls(self) -> None:
        """Adapt control ranges / options to the state (called quietly: no redraw per change)."""

    def on_selection(self) -> None:
        """The shared selection changed (anywhere): redraw the highlight."""
        self.redraw()

    def on_click(self, event) -> None:
        """A click (press and release at the same place) on the canvas."""

    def on_move(self, event) -> None:
        """The mouse moved over the canvas (hover)."""

    def on_pick(self, event) -> None:
        """An artist with `picker` set was clicked (`event.artist.get_gid()` says which)."""

    # ---- the public surface ----------------------------------------------------------------------
    def redraw(self) -> None:
        """Show the state at the current controls and selection; a failure is shown in place of the figure.
        A hidden view only remembers that it is stale."""
        if not self.visible:
            self.stale = True
            return
        start = time.perf_counter()
        try:
            self.draw(self.figure)
            message = ""
        except (ValueError, IndexError, ImportError) as error:  # bad settings or data: say so, keep the widget
            message_figure(f"{type(error).__name__}: {error}", fig=self.figure)
            message = f"<span style='color:#c62828'>{type(error).__name__}: {error}</span>"
        self.canvas.draw_idle()
        self.stale = False
        self.last_draw_seconds = time.perf_counter() - start
        self.status.value = message or self.describe()

    def start(self) -> None:
        """The end of a subclass's __init__: draw now when on screen, else when first shown."""
        if self.visible:
            self.refresh()

    def refresh(self) -> None:
        """Re-read the state (after trainer.step(), an epoch change, or while a run folder is written)."""
        self.state.sync()
        with self.quietly():
            self.sync_controls()
        self.redraw()

    def show(self, visible: bool = True) -> None:
        """On screen or not; a view that became visible while stale redraws."""
        self.visible = visible
        if visible and self.stale:
            self.refresh()

    def current_figure(self) -> Figure:
        if self.stale:
            visible, self.visible = self.visible, True
            self.redraw()
            self.visible = visible
        return self.figure

    def save_figure(self, path: str | Path, dpi: int = 120) -> Path:
        """Write what the view shows as a PNG file (the static twin of a headless run)."""
        return save_figure(self.current_figure(), path, dpi=dpi)

    def go_to_epoch(self, epoch: int) -> None:
        """Move the epoch cursor (through the Workbench when there is one, so every view follows)."""
        if epoch not in self.state.epochs:
            return
        if self.on_epoch is not None:
            self.on_epoch(epoch)
        else:
            self.state.go_to(epoch)
            self.refresh()

    def describe(self) -> str:
        return (f"{self.state.source}, epoch {self.state.epoch}; {self.selection.describe()}; "
                f"drawn in {1000 * self.last_draw_seconds:.0f} ms")

    def send_mouse(self, kind: str, x: float, y: float, ax_index: int = 0, buttons: int = 0) -> None:
        """Deliver a mouse event at data coordinates (x, y) of axes `ax_index` exactly as the browser's
        ipympl front-end does (a comm message): kind "motion_notify", "button_press" or "button_release"."""
        ax = self.figure.axes[ax_index]
        px, py = ax.transData.transform((x, y))
        message = {"type": kind, "x": float(px), "y": float(self.figure.bbox.height - py), "button": 0,
                   "buttons": buttons, "guiEvent": {}, "modifiers": []}
        self.canvas._handle_message(self.canvas, message, [])

    # ---- helpers ---------------------------------------------------------------------------------
    @contextmanager
    def quietly(self) -> Iterator[None]:
        """Change controls without a redraw per change."""
        previous, self._quiet = self._quiet, True
        try:
            yield
        finally:
            self._quiet = previous

    def _on_control(self, change) -> None:
        if self._quiet:
            return
        with self.quietly():
            self.sync_controls()
        self.redraw()

    def _on_press(self, event) -> None:
        self._press = (event.x, event.y)

    def _on_release(self, event) -> None:
        if self._press is not None and abs(event.x - self._press[0]) < 4 and abs(event.y - self._press[1]) < 4:
            self.on_click(event)
        self._press = None

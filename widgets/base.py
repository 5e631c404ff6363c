"""The one widget skeleton: controls on top, the current figure as a PNG image, a status line below.

A view subclasses `FigureView`, builds its controls, and implements `draw() -> Figure` from the
`RunState` (cheap: it reads cached results) and, if a control needs it, `sync_controls()` to adapt
ranges after the state changed. Every control change calls `redraw()`; `refresh()` first lets the
state catch up with its run. The figure drawn is kept in `self.figure` (`current_figure()`), so
`save_figure` writes exactly what the widget shows.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

import ipywidgets as W
from matplotlib.figure import Figure

from lwtgpf.runs import RunState
from lwtgpf.viz.workbench_figures import figure_png, message_figure, save_figure


class FigureView(W.VBox):
    title = "view"

    def __init__(self, state: RunState, controls: Sequence[W.Widget]):
        if not isinstance(state, RunState):
            raise TypeError(f"{type(self).__name__} needs a lwtgpf.runs.RunState, got {type(state).__name__}")
        self.state = state
        self.figure: Figure | None = None
        self.image = W.Image(format="png", layout=W.Layout(max_width="100%"))
        self.status = W.HTML()
        self.last_draw_seconds = 0.0
        self._quiet = False
        super().__init__([W.HBox(list(controls), layout=W.Layout(flex_flow="row wrap")), self.image, self.status])
        for control in controls:
            if hasattr(control, "value"):
                control.observe(self._on_control, names="value")

    # ---- what subclasses implement ---------------------------------------------------------------
    def draw(self) -> Figure:
        raise NotImplementedError

    def sync_controls(self) -> None:
        """Adapt control ranges / options to the state (called quietly: no redraw per change)."""

    def render(self) -> None:
        """Draw the figure and put it on screen (a view may show cached images instead, see the dashboard)."""
        self.figure = self.draw()
        self.image.value = figure_png(self.figure)

    def current_figure(self) -> Figure:
        """The figure of what the view shows now (what save_figure writes)."""
        if self.figure is None:
            self.redraw()
        return self.figure

    # ---- the public surface ----------------------------------------------------------------------
    def redraw(self) -> None:
        """Show the state at the current control values; a failure is shown in place of the figure."""
        start = time.perf_counter()
        try:
            self.render()
            message = ""
        except (ValueError, IndexError, ImportError) as error:  # bad settings or data: say so, keep the widget
            self.figure = message_figure(f"{type(error).__name__}: {error}")
            self.image.value = figure_png(self.figure)
            message = f"<span style='color:#c62828'>{type(error).__name__}: {error}</span>"
        self.last_draw_seconds = time.perf_counter() - start
        self.status.value = message or self.describe()

    def refresh(self) -> None:
        """Re-read the state (call after trainer.step(), or while a run folder is being written)."""
        self.state.sync()
        with self.quietly():
            self.sync_controls()
        self.redraw()

    def save_figure(self, path: str | Path, dpi: int = 120) -> Path:
        """Write what the widget currently shows as a PNG file."""
        return save_figure(self.current_figure(), path, dpi=dpi)

    def describe(self) -> str:
        """Status line under the figure."""
        return f"{self.state.source}, epoch {self.state.epoch}; drawn in {1000 * self.last_draw_seconds:.0f} ms"

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

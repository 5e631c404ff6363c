"""ipywidgets views over lwtgpf's trainer state or a saved run folder (issue #6).

    from lwtgpf.workbench import RunState
    from widgets import Workbench
    state = RunState.from_trainer(trainer)        # or RunState.from_run_dir("runs/demo")
    bench = Workbench(state); display(bench)      # after trainer.step(): bench.refresh()

Each view is an ipywidgets.VBox holding an interactive matplotlib canvas (ipympl) with `refresh()` and
`save_figure(path)`; the figures are drawn by lwtgpf.viz (workbench_figures, history_figures), so a
headless run saves what the widget shows. This package
imports lwtgpf; lwtgpf never imports it.
"""
from .attention import AttentionWindows
from .base import FigureView
from .camera_pairs import CameraPairsView
from .dashboard import PurityDashboard
from .explorer import ClusterExplorer
from .lineage import LineageView
from .proxy_umap import ProxyUMAP
from .ranklist import RankList
from .selection import Selection
from .sweep import SweepView
from .trajectory import TrajectoryView
from .workbench import Workbench

__all__ = ["AttentionWindows", "CameraPairsView", "ClusterExplorer", "FigureView", "LineageView", "ProxyUMAP",
           "PurityDashboard", "RankList", "Selection", "SweepView", "TrajectoryView", "Workbench"]

"""ipywidgets views over lwtgpf's trainer state or a saved run folder (issue #6).

    from lwtgpf.runs import RunState
    from widgets import Workbench
    state = RunState.from_trainer(trainer)        # or RunState.from_run_dir("runs/demo")
    bench = Workbench(state); display(bench)      # after trainer.step(): bench.refresh()

Each view is an ipywidgets.VBox with `refresh()` and `save_figure(path)`; the figures themselves are
drawn by lwtgpf.viz.workbench_figures, so a headless run saves what the widget shows. This package
imports lwtgpf; lwtgpf never imports it.
"""
from .attention import AttentionWindows
from .base import FigureView
from .dashboard import PurityDashboard
from .explorer import ClusterExplorer
from .proxy_umap import ProxyUMAP
from .ranklist import RankList
from .sweep import SweepView
from .workbench import Workbench

__all__ = ["AttentionWindows", "ClusterExplorer", "FigureView", "ProxyUMAP", "PurityDashboard", "RankList",
           "SweepView", "Workbench"]

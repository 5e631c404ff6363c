"""Pure matplotlib figures (no ipywidgets): what headless runs and the CLI save as PNG.

Modules are imported on their own (`from lwtgpf.viz.dataset_figures import save_synthetic_overview`), so
importing the package does not load matplotlib.
"""

"""ipywidgets views over lwtgpf's trainer state or a saved run folder (filled by the workbench issue).

This package imports lwtgpf; lwtgpf never imports it.
"""

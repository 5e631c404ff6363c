"""lwtgpf: an open workbench for unsupervised person re-identification (LewinViT + GP-O2CAP)."""
__version__ = "0.1.0"

"""archlab: a PyTorch laboratory for neural-network architectures."""
__version__ = "0.1.0"

"""xarch: reproducible, minimal, multi-architecture container images from one recipe."""

__version__ = "0.1.0"

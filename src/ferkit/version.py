"""The package version (one place; ``ferkit.__version__`` and exported models read it)."""

__version__ = "0.1.0"

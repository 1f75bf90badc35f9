"""mgfm: the iMiGUE-3K micro-gesture benchmark pipeline and its foundation models."""

__version__ = "0.1.0"

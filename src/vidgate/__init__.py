"""vidgate: one API in front of every video generation model."""

__version__ = "0.1.0"

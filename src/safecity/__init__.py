"""SafeCity: an open-source public-safety operations platform for cities."""

__version__ = "0.1.0"

"""varfx: learn per-variant prior effect-size variances from GWAS summary statistics."""

__version__ = "0.1.0"

from .hookspecs import hookimpl  # noqa: E402,F401  (re-exported for plugin authors)

"""The architecture source (no file): summaries of the variants themselves."""

from __future__ import annotations

from varfx.api import Option
from varfx.errors import UserError

from .base import BaseFeatureSource
from .bigwig import BigWigSource
from .bed import BedSource
from .table import TableSource


# ------------------------------------------------------------------------------ architecture


class ArchitectureSource(BaseFeatureSource):
    """Features of the variant's genetic architecture, from the dataset itself."""

    name = "architecture"
    description = "allele frequency, minor allele frequency and LD score of each variant (from the dataset; no file)"
    options = {
        "columns": Option(str, "auto", "comma-separated freq, maf, ld_score; auto: freq, maf and ld_score when known"),
    }
    needs_path = False
    AVAILABLE = ("freq", "maf", "ld_score")

    def __init__(self, **options):
        super().__init__(**options)
        self._fill: dict[str, float] = {}

    def columns(self, path=None, *, variants=None) -> list[str]:
        raw = str(self.config["columns"]).strip().lower()
        if raw in ("", "auto"):
            cols = ["freq", "maf"]
            if variants is not None and variants.get("ld_score") is not None:
                cols.append("ld_score")
            return cols
        cols = [c.strip() for c in raw.split(",") if c.strip()]
        for c in cols:
            if c not in self.AVAILABLE:
                raise UserError(f"architecture option columns={self.config['columns']!r}: unknown column {c!r} "
                                f"(expected {', '.join(self.AVAILABLE)})")
        return cols

    def _column(self, variants, col):
        import numpy as np

        need = "ld_score" if col == "ld_score" else "freq"
        if variants is None or variants.get(need) is None:
            what = "LD scores" if need == "ld_score" else "allele frequencies"
            raise UserError(f"architecture feature {col!r} needs the variants' {what}, which were not given")
        x = np.asarray(variants[need], dtype=np.float64)
        if col == "maf":
            x = np.minimum(x, 1.0 - x)
        return x

    def prepare(self, path, chrom, pos, *, variants=None) -> None:
        import numpy as np

        # missing values (NaN) are filled with the mean over all variants (0 once normalised)
        for col in self.columns(path, variants=variants):
            x = self._column(variants, col)
            ok = np.isfinite(x)
            self._fill[col] = float(x[ok].mean()) if ok.any() else 0.0
        self.last_info = {"missing": {c: int((~np.isfinite(self._column(variants, c))).sum())
                                      for c in self.columns(path, variants=variants)}}

    def read(self, path, chrom, pos, *, window=256, variants=None):
        import numpy as np

        cols = self.columns(path, variants=variants)
        out = np.zeros((len(pos), len(cols)), dtype=np.float64)
        for j, col in enumerate(cols):
            x = self._column(variants, col)
            if len(x) != len(pos):
                raise UserError(f"architecture feature {col!r}: {len(x)} values for {len(pos)} variants")
            bad = ~np.isfinite(x)
            if bad.any():
                fill = self._fill.get(col)
                x = np.where(bad, float(np.nanmean(x)) if fill is None and (~bad).any() else (fill or 0.0), x)
            out[:, j] = x
        return out


BUILTIN_SOURCES = (BigWigSource, BedSource, TableSource, ArchitectureSource)

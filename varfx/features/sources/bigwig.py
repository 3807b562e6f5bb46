"""bigWig tracks (pyBigWig): per-variant window summaries and per-base tracks."""

from __future__ import annotations

from pathlib import Path

from varfx.api import Option
from varfx.errors import UserError
from varfx.genome import chrom_label
from varfx.genome import chrom_codes as as_chrom_codes

from .common import BIGWIG_MAGIC, boolean, contig_lookup
from .windows import _check_positions, by_chromosome, gather_windows, window_starts
from .base import BaseFeatureSource


# ------------------------------------------------------------------------------ bigWig


class BigWigSource(BaseFeatureSource):
    """Base-level values of a bigWig track in a window around each variant."""

    name = "bigwig"
    description = "bigWig track (pyBigWig): per-base values in a window around each variant (NaN -> 0) and their mean"
    options = {
        "track": Option(boolean, True, "store the per-base values of the window (for sequence models)"),
        "summary": Option(str, "mean", "per-variant summaries over the window: comma-separated mean, max, min"),
    }
    missing_chromosome_is_error = True
    SUMMARIES = ("mean", "max", "min")

    @classmethod
    def sniff(cls, path) -> bool:
        try:
            with open(path, "rb") as fh:
                return fh.read(4) in BIGWIG_MAGIC
        except OSError:
            return False

    def _summaries(self) -> list[str]:
        names = [s.strip().lower() for s in str(self.config["summary"]).split(",") if s.strip()]
        for s in names:
            if s not in self.SUMMARIES:
                raise UserError(f"bigwig option summary={self.config['summary']!r}: expected a comma-separated list of "
                                f"{', '.join(self.SUMMARIES)}")
        return names

    def columns(self, path, *, variants=None) -> list[str]:
        return self._summaries()

    def track_channels(self, path) -> list[str]:
        return ["value"] if self.config["track"] else []

    @staticmethod
    def open(path):
        try:
            import pyBigWig
        except ImportError:
            raise UserError("reading bigWig features needs pyBigWig (pip install pyBigWig)", path=path) from None

        path = Path(path)
        if not path.is_file():
            raise UserError("no such bigWig file", path=path)
        try:
            bw = pyBigWig.open(str(path))
        except (RuntimeError, OSError):
            bw = None
        if bw is None:
            raise UserError("not a bigWig file: pyBigWig could not open it", path=path)
        if not bw.isBigWig():
            bw.close()
            raise UserError("a bigBed file: expected a bigWig (use kind bed with the intervals as BED)", path=path)
        return bw

    def values(self, path, chrom, pos, window: int):
        """``(n, window)`` float32 base-level values, NaN (no data) -> 0."""
        import numpy as np

        codes = as_chrom_codes(chrom)
        pos = np.asarray(pos, dtype=np.int64)
        window = int(window)
        out = np.zeros((len(pos), window), dtype=np.float32)
        if len(pos) == 0:
            return out
        bw = self.open(path)
        try:
            lengths = bw.chroms()
            names = contig_lookup(lengths)
            for code, idx in by_chromosome(codes, pos):
                label = chrom_label(code) if code > 0 else str(np.asarray(chrom)[idx[0]])
                if code not in names:
                    have = ", ".join(list(lengths)[:8]) + (", ..." if len(lengths) > 8 else "")
                    raise UserError(
                        f"no chromosome {label} in this bigWig (it has: {have}): expected a track covering every "
                        "chromosome of the variants",
                        path=path,
                    )
                cname = names[code]
                L = int(lengths[cname])
                p = pos[idx]
                _check_positions(path, label, p, L, "bigWig")

                def fetch(s, e, _c=cname, _L=L):
                    seg = np.zeros(e - s, dtype=np.float32)
                    a, b = max(s, 0), min(e, _L)
                    if b > a:
                        seg[a - s:b - s] = bw.values(_c, a, b, numpy=True)
                    return seg

                out[idx] = gather_windows(fetch, window_starts(p, window), window, dtype=np.float32)
        finally:
            bw.close()
        np.nan_to_num(out, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        return out

    def _summarise(self, vals):
        import numpy as np

        cols = []
        for s in self._summaries():
            if vals.shape[1] == 0:
                cols.append(np.zeros(vals.shape[0]))
            elif s == "mean":
                cols.append(vals.mean(axis=1, dtype=np.float64))
            elif s == "max":
                cols.append(vals.max(axis=1))
            else:
                cols.append(vals.min(axis=1))
        return np.stack(cols, axis=1).astype(np.float64) if cols else np.zeros((vals.shape[0], 0))

    def read(self, path, chrom, pos, *, window=256, variants=None):
        return self._summarise(self.values(path, chrom, pos, window))

    def read_track(self, path, chrom, pos, *, window=256, variants=None):
        if not self.config["track"]:
            return super().read_track(path, chrom, pos, window=window)
        return self.values(path, chrom, pos, window)[:, :, None]

    def extract(self, path, chrom, pos, *, window=256, track_window=256, variants=None):
        if not self.config["track"]:
            return self.read(path, chrom, pos, window=window), None
        if int(window) == int(track_window):
            vals = self.values(path, chrom, pos, window)
            return self._summarise(vals), vals[:, :, None]
        return super().extract(path, chrom, pos, window=window, track_window=track_window, variants=variants)

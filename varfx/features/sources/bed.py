"""BED intervals: the fraction of each window covered, and whether the variant is inside one."""

from __future__ import annotations

import gzip
from pathlib import Path

from varfx.api import Option
from varfx.errors import UserError
from varfx.genome import chrom_code
from varfx.genome import chrom_codes as as_chrom_codes

from .common import PLINK_MAGIC, _head_lines, _open_text, boolean
from .windows import by_chromosome, window_starts
from .base import BaseFeatureSource


# ------------------------------------------------------------------------------ BED


def read_bed_intervals(path) -> tuple[dict, dict]:
    """Parse a BED file (plain or gzip) into merged, sorted intervals per chromosome code.

    Returns ``({code: (starts, ends, cumulative)}, info)``: 0-based half-open intervals,
    overlapping and adjacent ones merged; ``cumulative[k]`` is the total length of the
    intervals before ``k``.  ``track``/``browser``/``#`` lines and blank lines are
    skipped; intervals on other contigs (``chrUn_...``) are counted in ``info``.
    """
    import numpy as np

    path = Path(path)
    starts: dict[int, list[int]] = {}
    ends: dict[int, list[int]] = {}
    n_read = n_other = 0
    try:
        with open(path, "rb") as raw:
            if raw.read(3) == PLINK_MAGIC:
                raise UserError("a PLINK binary genotype .bed, not a BED interval file", path=path)
        fh = _open_text(path)
    except FileNotFoundError:
        raise UserError("no such BED file", path=path) from None
    try:
        with fh:
            for lineno, line in enumerate(fh, 1):
                s = line.strip()
                if not s or s.startswith("#") or s.startswith("track") or s.startswith("browser"):
                    continue
                fields = s.split("\t") if "\t" in s else s.split()
                if len(fields) < 3:
                    raise UserError(f"expected at least 3 tab-separated fields (chrom, start, end), found {len(fields)}",
                                    path=path, line=lineno)
                try:
                    a, b = int(fields[1]), int(fields[2])
                except ValueError:
                    bad = 1 if not fields[1].strip().lstrip("-").isdigit() else 2
                    raise UserError(f"expected an integer {'start' if bad == 1 else 'end'} (column {bad + 1}), found "
                                    f"{fields[bad]!r}", path=path, line=lineno) from None
                if a < 0 or b < a:
                    raise UserError(f"expected 0 <= start <= end, found start {a}, end {b}", path=path, line=lineno)
                n_read += 1
                code = chrom_code(fields[0])
                if code < 0:
                    n_other += 1
                    continue
                starts.setdefault(code, []).append(a)
                ends.setdefault(code, []).append(b)
    except UnicodeDecodeError:
        raise UserError("not a text BED file (expected UTF-8 text, plain or gzip)", path=path) from None
    except (EOFError, gzip.BadGzipFile, OSError) as exc:
        raise UserError(f"could not read this BED file ({exc}): a corrupt or truncated gzip file?", path=path) from None
    out = {}
    for code in starts:
        S = np.asarray(starts[code], dtype=np.int64)
        E = np.asarray(ends[code], dtype=np.int64)
        o = np.argsort(S, kind="stable")
        S, E = S[o], E[o]
        keep = E > S
        S, E = S[keep], E[keep]
        if S.size == 0:
            continue
        run_end = np.maximum.accumulate(E)
        new = np.ones(S.size, dtype=bool)
        new[1:] = S[1:] > run_end[:-1]
        first = np.flatnonzero(new)
        last = np.r_[first[1:] - 1, S.size - 1]
        MS, ME = S[first], run_end[last]
        C = np.zeros(MS.size + 1, dtype=np.int64)
        C[1:] = np.cumsum(ME - MS)
        out[code] = (MS, ME, C)
    return out, {"intervals": n_read, "other_contigs": n_other}


def _covered_below(S, E, C, x):
    """Total interval length below each 0-based coordinate ``x``."""
    import numpy as np

    k = np.searchsorted(S, x, side="right") - 1
    kk = np.maximum(k, 0)
    part = np.clip(x - S[kk], 0, E[kk] - S[kk])
    return np.where(k >= 0, C[kk] + part, 0)


def _inside(S, E, x):
    import numpy as np

    k = np.searchsorted(S, x, side="right") - 1
    kk = np.maximum(k, 0)
    return (k >= 0) & (x < E[kk])


class BedSource(BaseFeatureSource):
    """Coverage of each variant's window by BED intervals."""

    name = "bed"
    description = "BED intervals (plain or gzip): fraction of the window covered, and whether the variant is inside one"
    options = {
        "overlap": Option(boolean, True, "add a 0/1 column: the variant's own base is inside an interval"),
        "track": Option(boolean, False, "store the per-base 0/1 coverage of the window (for sequence models)"),
    }

    def __init__(self, **options):
        super().__init__(**options)
        self._cache: dict[str, dict] = {}

    @classmethod
    def sniff(cls, path) -> bool:
        try:
            with open(path, "rb") as fh:
                if fh.read(3) == PLINK_MAGIC:
                    return False
        except OSError:
            return False
        name = Path(path).name.lower()
        if name.endswith((".bed", ".bed.gz", ".bed.bgz")):
            return True
        for line in _head_lines(path):
            s = line.strip()
            if not s or s.startswith(("#", "track", "browser")):
                continue
            f = s.split("\t")
            return (len(f) >= 3 and chrom_code(f[0]) > 0 and f[1].isdigit() and f[2].isdigit()
                    and int(f[1]) <= int(f[2]))
        return False

    def _intervals(self, path):
        key = str(Path(path).resolve())
        if key not in self._cache:
            self._cache[key], info = read_bed_intervals(path)
            self.last_info = dict(info)
        return self._cache[key]

    def prepare(self, path, chrom, pos, *, variants=None) -> None:
        self._intervals(path)

    def columns(self, path, *, variants=None) -> list[str]:
        return ["coverage"] + (["overlap"] if self.config["overlap"] else [])

    def track_channels(self, path) -> list[str]:
        return ["coverage"] if self.config["track"] else []

    def read(self, path, chrom, pos, *, window=256, variants=None):
        import numpy as np

        iv = self._intervals(path)
        codes = as_chrom_codes(chrom)
        pos = np.asarray(pos, dtype=np.int64)
        window = int(window)
        out = np.zeros((len(pos), len(self.columns(path))), dtype=np.float64)
        for code, idx in by_chromosome(codes, pos):
            if code not in iv:
                continue
            S, E, C = iv[code]
            s0 = window_starts(pos[idx], window)
            out[idx, 0] = (_covered_below(S, E, C, s0 + window) - _covered_below(S, E, C, s0)) / max(window, 1)
            if self.config["overlap"]:
                out[idx, 1] = _inside(S, E, pos[idx] - 1)
        return out

    def read_track(self, path, chrom, pos, *, window=256, variants=None):
        import numpy as np

        if not self.config["track"]:
            return super().read_track(path, chrom, pos, window=window)
        iv = self._intervals(path)
        codes = as_chrom_codes(chrom)
        pos = np.asarray(pos, dtype=np.int64)
        window = int(window)
        out = np.zeros((len(pos), window, 1), dtype=np.float32)
        ar = np.arange(window, dtype=np.int64)
        for code, idx in by_chromosome(codes, pos):
            if code not in iv:
                continue
            S, E, _ = iv[code]
            x = window_starts(pos[idx], window)[:, None] + ar[None, :]
            out[idx, :, 0] = _inside(S, E, x)
        return out

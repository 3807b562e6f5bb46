"""The feature-source contract and the built-in sources: ``bigwig``, ``bed``, ``table``,
``architecture`` (``fasta`` lives in :mod:`varfx.features.sequence`).

A feature source turns one input (a file, or nothing for ``architecture``) into features
of a set of variants.  The contract (documented in ``docs/features.md``), for ``n``
variants given as ``chrom`` (chromosome codes: ``22``, ``23`` for X...; or names such as
``"chr22"``) and ``pos`` (1-based positions), in any order:

- ``sniff(path) -> bool`` (classmethod): does this file look like this kind?  Used to
  infer the kind of a manifest entry that does not name one.  Must not raise.
- ``prepare(path, chrom, pos, *, variants=None)``: called once with *all* the dataset's
  variants before any ``read`` (a table builds its lookup for those variants here).
- ``columns(path, *, variants=None) -> list[str]``: names of the per-variant scalar
  columns that ``read`` returns.
- ``read(path, chrom, pos, *, window=256, variants=None) -> ndarray (n, len(columns))``,
  finite floats.  ``window`` is the width in bp of the window each variant's summaries
  are taken over: positions ``pos - window//2 .. pos - window//2 + window - 1`` (for
  ``window = 256``: ``pos-128 .. pos+127``; the variant is at offset ``window // 2``).
- ``track_channels(path) -> list[str]`` and ``read_track(path, chrom, pos, *, window=256,
  variants=None) -> ndarray (n, window, len(track_channels))``: per-base values over the
  same window (empty list: no track).
- ``variants`` is a dict of per-variant arrays aligned with ``chrom``/``pos``
  (``snp``, ``a1``, ``a2``, ``freq``, ``ld_score`` when known).

:class:`BaseFeatureSource` implements the defaults; third-party sources may subclass it
(or :class:`varfx.api.FeatureSource` directly: the store falls back to the defaults).

This module imports no numpy, pyBigWig or pysam at import time: it is loaded with the
plugins when ``varfx`` starts.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any, ClassVar

from varfx.api import FeatureSource, Option
from varfx.errors import UserError
from varfx.genome import CHROM_CODES, CHROM_LABELS, MISSING_TOKENS, chrom_code, chrom_label, is_missing  # noqa: F401
from varfx.genome import GZIP_MAGIC, complement_allele, open_text
from varfx.genome import chrom_codes as as_chrom_codes  # the name this module exported

#: Windows whose gap is below this many bp are fetched with one read (pyBigWig costs
#: ~100 us per call and 6-30 ns per base: measured in ``benchmarks/features.py``).
MERGE_GAP = 8192
#: At most this many bases are held per fetch buffer (bounded memory).
MAX_BUFFER = 1 << 23

BIGWIG_MAGIC = (b"\x26\xfc\x8f\x88", b"\x88\x8f\xfc\x26")
PLINK_MAGIC = b"\x6c\x1b\x01"


# ------------------------------------------------------------------------------ chromosomes


def contig_lookup(names) -> dict[int, str]:
    """Chromosome code -> the file's own name for it (``"chr22"`` or ``"22"``).  When a
    file names one chromosome twice (``1`` and ``chr1``), the first name wins."""
    out: dict[int, str] = {}
    for name in names:
        c = chrom_code(name)
        if c > 0 and c not in out:
            out[c] = name
    return out


def boolean(value) -> bool:
    """Option type: ``true/false``, ``yes/no``, ``1/0``, ``on/off``."""
    if isinstance(value, bool):
        return value
    v = str(value).strip().lower()
    if v in ("1", "true", "yes", "on", "y", "t"):
        return True
    if v in ("0", "false", "no", "off", "n", "f"):
        return False
    raise ValueError(f"not a boolean: {value!r}")


def _open_text(path):
    """Open a plain or gzip text file (detected from the magic bytes; a BOM dropped)."""
    return open_text(path, "a feature file")


def _head_lines(path, n=20, nbytes=1 << 16) -> list[str]:
    """The first lines of a plain or gzip text file ([] when it is not text)."""
    try:
        with open(path, "rb") as fh:
            magic = fh.read(2)
        opener = gzip.open if magic == GZIP_MAGIC else open
        with opener(path, "rb") as fh:
            raw = fh.read(nbytes)
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError, EOFError):
        return []
    if "\x00" in text:
        return []
    lines = text.splitlines()
    if len(raw) == nbytes and lines:
        lines = lines[:-1]  # possibly cut short
    return lines[:n]


# ------------------------------------------------------------------------------ windows


def window_starts(pos, window: int):
    """0-based start of each variant's window: ``pos - 1 - window // 2``."""
    import numpy as np

    return np.asarray(pos, dtype=np.int64) - 1 - int(window) // 2


def _segments(start0, window: int, merge_gap: int, max_len: int):
    """Cut sorted window starts into fetch segments: a new segment where the gap to the
    previous window exceeds ``merge_gap`` or the segment would pass ``max_len`` bp.
    Returns (segment id per variant, segment starts, segment ends) (0-based, half-open)."""
    import numpy as np

    n = len(start0)
    if n == 0:
        z = np.zeros(0, dtype=np.int64)
        return z, z, z
    gap = np.empty(n, dtype=bool)
    gap[0] = True
    gap[1:] = start0[1:] - (start0[:-1] + window) > merge_gap
    group = np.cumsum(gap) - 1
    g_start = start0[gap][group]
    sub = (start0 - g_start) // max(int(max_len), 1)
    new = gap.copy()
    new[1:] |= sub[1:] != sub[:-1]
    seg = np.cumsum(new) - 1
    first = np.flatnonzero(new)
    last = np.r_[first[1:] - 1, n - 1]
    return seg, start0[first], start0[last] + window


def gather_windows(fetch, start0, window: int, *, dtype, merge_gap: int = MERGE_GAP,
                   max_buffer: int = MAX_BUFFER):
    """Per-variant windows ``(n, window)`` from ``fetch(start, end) -> array`` (one
    chromosome, ``start0`` sorted ascending, 0-based; ``fetch`` must handle ranges that
    pass the chromosome ends).  Nearby windows share one fetch."""
    import numpy as np

    n = len(start0)
    out = np.empty((n, window), dtype=dtype)
    if n == 0:
        return out
    max_len = max(window, max_buffer // 4)
    seg, ss, se = _segments(start0, window, merge_gap, max_len)
    lengths = se - ss
    ar = np.arange(window, dtype=np.int64)
    k = 0
    n_seg = len(ss)
    while k < n_seg:
        # a run of segments whose buffer stays under max_buffer bases
        total = np.cumsum(lengths[k:])
        stop = k + max(1, int(np.searchsorted(total, max_buffer, side="right")))
        off = np.zeros(stop - k + 1, dtype=np.int64)
        off[1:] = np.cumsum(lengths[k:stop])
        buf = np.empty(int(off[-1]), dtype=dtype)
        for j in range(k, stop):
            buf[off[j - k]:off[j - k + 1]] = fetch(int(ss[j]), int(se[j]))
        lo = int(np.searchsorted(seg, k, side="left"))
        hi = int(np.searchsorted(seg, stop, side="left"))
        s = seg[lo:hi] - k
        base = off[s] + start0[lo:hi] - ss[seg[lo:hi]]
        out[lo:hi] = buf[base[:, None] + ar[None, :]]
        k = stop
    return out


def by_chromosome(codes, pos):
    """Yield (code, indices) per chromosome, indices sorted by position."""
    import numpy as np

    order = np.lexsort((pos, codes))
    sc = codes[order]
    cuts = np.flatnonzero(np.diff(sc)) + 1
    for idx in np.split(order, cuts):
        if idx.size:
            yield int(codes[idx[0]]), idx


def _check_positions(path, label, pos, length=None, what="chromosome"):
    import numpy as np

    bad = np.flatnonzero(pos < 1)
    if bad.size:
        raise UserError(f"position {int(pos[bad[0]])} on chromosome {label}: expected a 1-based position >= 1", path=path)
    if length is not None:
        bad = np.flatnonzero(pos > length)
        if bad.size:
            raise UserError(
                f"position {int(pos[bad[0]])} is beyond the end of chromosome {label} ({int(length)} bp) in this "
                f"{what}: check the genome build",
                path=path,
            )


# ------------------------------------------------------------------------------ base class


class BaseFeatureSource(FeatureSource):
    """Defaults for the feature-source contract (see the module docstring)."""

    #: False for sources computed from the dataset itself (no file).
    needs_path: ClassVar[bool] = True
    #: Where ``read_track`` values go: ``"window"`` (float, normalised, stacked with the
    #: other tracks) or ``"sequence"`` (uint8 one-hot DNA, stored as is).
    track_store: ClassVar[str] = "window"
    #: True when a variant on a chromosome the file does not have is an error (a track
    #: that should cover the genome); False when such variants just get 0.
    missing_chromosome_is_error: ClassVar[bool] = False

    def __init__(self, **options):
        super().__init__(**options)
        self.last_info: dict[str, Any] = {}

    @classmethod
    def sniff(cls, path) -> bool:
        return False

    def prepare(self, path, chrom, pos, *, variants=None) -> None:
        return None

    def columns(self, path, *, variants=None) -> list[str]:  # pragma: no cover - interface
        raise NotImplementedError

    def track_channels(self, path) -> list[str]:
        return []

    def read(self, path, chrom, pos, *, window=256, variants=None):  # pragma: no cover - interface
        raise NotImplementedError

    def read_track(self, path, chrom, pos, *, window=256, variants=None):
        import numpy as np

        return np.zeros((len(pos), int(window), 0), dtype=np.float32)

    def extract(self, path, chrom, pos, *, window=256, track_window=256, variants=None):
        """(scalar features, track or None) in one call; sources that can share work
        between the two override this."""
        scalar = self.read(path, chrom, pos, window=window, variants=variants)
        track = None
        if self.track_channels(path):
            track = self.read_track(path, chrom, pos, window=track_window, variants=variants)
        return scalar, track


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


# ------------------------------------------------------------------------------ tables

_SNP_NAMES = ("snp", "rsid", "variant_id", "id")
_CHR_NAMES = ("chr", "chrom", "#chrom", "chromosome", "#chr")
_BP_NAMES = ("bp", "pos", "position")


def _table_layout(header: list[str]) -> dict:
    lower = [h.strip().lower() for h in header]

    def find(names):
        for n in names:
            if n in lower:
                return lower.index(n)
        return None

    return {
        "snp": find(_SNP_NAMES), "chrom": find(_CHR_NAMES), "bp": find(_BP_NAMES),
        "a1": find(("a1",)), "a2": find(("a2",)),
    }


def _pair(a, b) -> tuple[str, str]:
    a, b = str(a).upper(), str(b).upper()
    return (a, b) if a <= b else (b, a)


class TableSource(BaseFeatureSource):
    """Numeric columns of a per-variant table, 0 where a variant is absent."""

    name = "table"
    description = ("per-variant table (TSV with a header: SNP, or CHR BP [A1 A2], and numeric columns, e.g. coding "
                   "scores); 0 where absent")
    options = {
        "columns": Option(str, "", "comma-separated value columns to use (default: every column but the keys)"),
    }

    def __init__(self, **options):
        super().__init__(**options)
        self._tables: dict[str, dict] = {}

    @classmethod
    def sniff(cls, path) -> bool:
        for line in _head_lines(path):
            if not line.strip() or line.startswith("##"):
                continue
            header = line.rstrip("\r\n").split("\t") if "\t" in line else line.split()
            lay = _table_layout(header)
            return lay["snp"] is not None or (lay["chrom"] is not None and lay["bp"] is not None)
        return False

    # -- header --------------------------------------------------------------------------

    def _header(self, path):
        path = Path(path)
        if not path.is_file():
            raise UserError("no such table file", path=path)
        try:
            with _open_text(path) as fh:
                for lineno, line in enumerate(fh, 1):
                    if line.strip() and not line.startswith("##"):
                        return self._parse_header(path, line, lineno)
        except UnicodeDecodeError:
            raise UserError("not a text table (expected UTF-8 text, plain or gzip)", path=path) from None
        except (EOFError, gzip.BadGzipFile, OSError) as exc:
            raise UserError(f"could not read this table ({exc}): a corrupt or truncated gzip file?", path=path) from None
        raise UserError("empty table: expected a header line and rows", path=path)

    def _parse_header(self, path, line, lineno):
        tab = "\t" in line
        header = [h.strip() for h in (line.rstrip("\r\n").split("\t") if tab else line.split())]
        lay = _table_layout(header)
        if lay["chrom"] is not None and lay["bp"] is not None:
            by = "position"
        elif lay["snp"] is not None:
            by = "snp"
        else:
            raise UserError(f"expected a SNP column or CHR and BP columns in the header, found {' '.join(header)}",
                            path=path, line=lineno)
        keys = {i for k, i in lay.items() if i is not None}
        wanted = [c.strip() for c in str(self.config["columns"]).split(",") if c.strip()]
        if wanted:
            value_idx = []
            for c in wanted:
                if c not in header:
                    raise UserError(f"no column {c!r} (option columns=): the header has {' '.join(header)}",
                                    path=path, line=lineno)
                value_idx.append(header.index(c))
        else:
            value_idx = [i for i in range(len(header)) if i not in keys]
        if not value_idx:
            raise UserError("no value columns: expected numeric columns besides SNP/CHR/BP/A1/A2", path=path, line=lineno)
        names = [header[i] for i in value_idx]
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise UserError(f"column {dup!r} appears twice in the header", path=path, line=lineno)
        return {"header": header, "layout": lay, "by": by, "value_idx": value_idx, "names": names,
                "line": lineno, "tab": tab}

    def columns(self, path, *, variants=None) -> list[str]:
        return list(self._header(path)["names"])

    # -- lookup --------------------------------------------------------------------------

    def _variant_keys(self, path, meta, chrom, pos, variants):
        """Per variant, the keys it matches in the table (first one found wins)."""
        import numpy as np

        n = len(pos)
        variants = variants or {}
        if meta["by"] == "snp":
            if "snp" not in variants:
                raise UserError("this table is keyed by SNP id: the variants' ids are needed (no CHR/BP columns)",
                                path=path)
            return [(str(s),) for s in np.asarray(variants["snp"]).tolist()], False
        codes = as_chrom_codes(chrom).tolist()
        bp = np.asarray(pos, dtype=np.int64).tolist()
        lay = meta["layout"]
        use_alleles = lay["a1"] is not None and lay["a2"] is not None and "a1" in variants and "a2" in variants
        if not use_alleles:
            return [(c, b) for c, b in zip(codes, bp)], False
        a1 = np.asarray(variants["a1"]).astype(str).tolist()
        a2 = np.asarray(variants["a2"]).astype(str).tolist()
        keys = []
        for c, b, x, y in zip(codes, bp, a1, a2):
            k = (c, b) + _pair(x, y)
            # the other strand of an allele is its reverse complement (ACT -> AGT)
            kc = (c, b) + _pair(complement_allele(x.upper()), complement_allele(y.upper()))
            keys.append((k, kc))
        assert len(keys) == n
        return keys, True

    def _load(self, path, wanted: set, meta, with_alleles: bool) -> dict:
        """Parse the table keeping the rows whose key is in ``wanted``."""
        import numpy as np

        lay, vidx = meta["layout"], meta["value_idx"]
        header = meta["header"]
        ncol = len(header)
        found: dict = {}
        first_line: dict = {}
        n_rows = 0
        tab = meta["tab"]
        try:
            with _open_text(path) as fh:
                for lineno, line in enumerate(fh, 1):
                    if lineno <= meta["line"] or not line.strip() or line.startswith("#"):
                        continue
                    f = line.rstrip("\r\n").split("\t") if tab else line.split()
                    if len(f) != ncol:
                        raise UserError(f"expected {ncol} fields as in the header, found {len(f)}", path=path, line=lineno)
                    n_rows += 1
                    if meta["by"] == "snp":
                        key = (f[lay["snp"]].strip(),)
                    else:
                        tok = f[lay["bp"]].strip()
                        try:
                            b = int(tok)
                        except ValueError:
                            raise UserError(f"expected an integer position, found {tok!r}", path=path, line=lineno,
                                            column=header[lay["bp"]]) from None
                        c = chrom_code(f[lay["chrom"]])
                        key = (c, b)
                        if with_alleles:
                            key = key + _pair(f[lay["a1"]].strip(), f[lay["a2"]].strip())
                    if key not in wanted:
                        continue
                    vals = np.empty(len(vidx), dtype=np.float64)
                    for j, i in enumerate(vidx):
                        tok = f[i].strip()
                        if is_missing(tok):
                            vals[j] = 0.0
                            continue
                        try:
                            v = float(tok)
                        except ValueError:
                            raise UserError(
                                f"expected a number (or NA), found {tok!r}; choose numeric columns with the manifest "
                                f"option columns=...", path=path, line=lineno, column=header[i]) from None
                        vals[j] = v if np.isfinite(v) else 0.0
                    if key in found:
                        raise UserError(
                            f"a second row for the same variant (first on line {first_line[key]}): expected one row "
                            "per variant" + ("" if with_alleles or meta["by"] == "snp" else
                                             " (add A1 A2 columns to tell alleles apart)"),
                            path=path, line=lineno)
                    found[key] = vals
                    first_line[key] = lineno
        except UnicodeDecodeError:
            raise UserError("not a text table (expected UTF-8 text, plain or gzip)", path=path) from None
        except (EOFError, gzip.BadGzipFile) as exc:
            raise UserError(f"could not read this table ({exc}): a corrupt or truncated gzip file?", path=path) from None
        self.last_info = {"rows": n_rows, "rows_matched": len(found)}
        return found

    def prepare(self, path, chrom, pos, *, variants=None) -> None:
        meta = self._header(path)
        keys, alleles = self._variant_keys(path, meta, chrom, pos, variants)
        wanted = {k for kk in keys for k in (kk if alleles else (kk,))}
        rkey = str(Path(path).resolve())
        old = self._tables.get(rkey)
        if old is not None and wanted <= old["wanted"]:
            return
        if old is not None:
            wanted |= old["wanted"]
        self._tables[rkey] = {"wanted": wanted, "rows": self._load(path, wanted, meta, alleles), "meta": meta}

    def read(self, path, chrom, pos, *, window=256, variants=None):
        import numpy as np

        self.prepare(path, chrom, pos, variants=variants)
        t = self._tables[str(Path(path).resolve())]
        meta = t["meta"]
        keys, alleles = self._variant_keys(path, meta, chrom, pos, variants)
        rows = t["rows"]
        out = np.zeros((len(pos), len(meta["names"])), dtype=np.float64)
        for i, kk in enumerate(keys):
            if alleles:
                v = rows.get(kk[0])
                if v is None:
                    v = rows.get(kk[1])
            else:
                v = rows.get(kk)
            if v is not None:
                out[i] = v
        return out


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

"""GWAS summary statistics: detect the format from the header, parse it fast, check it.

Formats (see ``docs/formats.md``) are :class:`SumstatsFormat` records in
:data:`FORMATS`, tried in order; the first whose *signature* columns are all in the
header is used.  GWAS-VCF is recognised from its first line and read with pysam.

Text tables (tab-, comma- or whitespace-separated, plain or gzipped) are parsed with
``pyarrow.csv`` (multi-threaded C++, the gzip stream decompressed alongside: 6-7x faster
and ~3x less memory than the Python splitting it replaced, see ``docs/benchmarks.md``).
A file that does not parse is diagnosed afterwards, so every bad input still gets a
one-line message naming the file, the line and the column.

:func:`read_sumstats` returns a :class:`Sumstats` (a ``dict`` of numpy arrays, one row
per variant, in file order):

============ ======================================================================
``snp``       variant id (``str``, object array); ``CHR:BP`` where the file has none
``chrom``     ``int64`` chromosome (X=23, Y=24, XY=25, MT=26, other contigs 0),
              -1 when missing
``bp``        ``int64`` base-pair position, -1 when missing
``a1``        effect allele (upper-case ``str`` of A/C/G/T): Z and ``freq`` refer to it
``a2``        other allele (upper-case ``str``)
``z``         ``float64`` Z score of ``a1`` (``BETA/SE`` where the file has no Z)
``n``         ``float64`` sample size (the ``N`` column, or ``n=`` for every row)
``freq``      ``float64`` frequency of ``a1``, NaN where the file has none
``info``      ``float64`` imputation INFO score, NaN where the file has none
============ ======================================================================

:func:`filter_sumstats` applies the quality filters of ingest (autosomes, INFO, MAF,
multi-allelic sites) and counts what each removed.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from ..api import SumstatsFormat  # the plugin contract; importable from here as before
from ..errors import UserError
from ..genome import BOM, GZIP_MAGIC, MISSING_TOKENS, chrom_code, unquote
from ..genome import read_bytes as _read_bytes
from ..genome import read_text as _read_text

# MISSING_TOKENS (from varfx.genome) are read as "missing" in optional numeric columns
# (CHR, BP, frequency, INFO), matched case-insensitively.  ``NaN`` is read as a number (a
# NaN), which is also "missing" in those columns.

#: The same tokens, in the spellings pyarrow is told to read as null.
_NULL_VALUES = sorted({v for t in MISSING_TOKENS - {"NAN"} for v in (t, t.lower(), t.title())})

#: Canonical fields and the header name a column mapping renames a column to.
CANONICAL_HEADER = {"snp": "SNP", "chrom": "CHR", "bp": "BP", "a1": "A1", "a2": "A2", "z": "Z",
                    "beta": "BETA", "se": "SE", "n": "N", "freq": "FREQ", "info": "INFO"}

#: The ``varfx ingest`` option that maps each field (for messages).
COLUMN_OPTIONS = {"snp": "--col-snp", "chrom": "--col-chr", "bp": "--col-bp", "a1": "--col-a1",
                  "a2": "--col-a2", "z": "--col-z", "beta": "--col-beta", "se": "--col-se",
                  "n": "--col-n", "freq": "--col-freq", "info": "--col-info"}

_NUMERIC = ("bp", "z", "beta", "se", "n", "freq", "info", "odds_ratio", "hazard_ratio")


LDSC = SumstatsFormat(
    name="ldsc",
    description="LDSC .sumstats (SNP A1 A2 Z N, optional CHR BP)",
    columns={
        "snp": ("SNP",),
        "chrom": ("CHR",),
        "bp": ("BP", "POS"),
        "a1": ("A1",),
        "a2": ("A2",),
        "z": ("Z",),
        "n": ("N",),
        "freq": ("FRQ", "FREQ", "AF1", "EAF"),
        "info": ("INFO",),
    },
    required=("snp", "a1", "a2", "z"),
    signature=("snp", "a1", "a2", "z"),
)

UKB = SumstatsFormat(
    name="ukb",
    description="UK Biobank BOLT-LMM release (SNP CHR POS A1 A2 REF EAF Beta se P N INFO); A1 is the effect allele",
    columns={
        "snp": ("SNP",),
        "chrom": ("CHR",),
        "bp": ("POS", "BP"),
        "a1": ("A1",),
        "a2": ("A2",),
        "ref": ("REF",),
        "freq": ("EAF",),
        "beta": ("BETA",),
        "se": ("SE",),
        "n": ("N",),
        "info": ("INFO",),
    },
    required=("snp", "a1", "a2", "beta", "se"),
    signature=("snp", "a1", "a2", "ref", "freq", "beta", "se"),
)

FASTGWA = SumstatsFormat(
    name="fastGWA",
    description="fastGWA (CHR SNP POS A1 A2 N AF1 BETA SE P); Z = BETA/SE",
    columns={
        "chrom": ("CHR",),
        "snp": ("SNP",),
        "bp": ("POS", "BP"),
        "a1": ("A1",),
        "a2": ("A2",),
        "n": ("N",),
        "freq": ("AF1", "FREQ", "EAF"),
        "beta": ("BETA",),
        "se": ("SE",),
        "info": ("INFO",),
    },
    required=("snp", "a1", "a2", "beta", "se"),
    signature=("snp", "a1", "a2", "beta", "se"),
)

BOLT = SumstatsFormat(
    name="bolt",
    description="BOLT-LMM (SNP CHR BP GENPOS ALLELE1 ALLELE0 A1FREQ ... BETA SE P_BOLT_LMM); ALLELE1 is the effect allele",
    columns={
        "snp": ("SNP",),
        "chrom": ("CHR",),
        "bp": ("BP",),
        "a1": ("ALLELE1",),
        "a2": ("ALLELE0",),
        "freq": ("A1FREQ",),
        "info": ("INFO",),
        "beta": ("BETA",),
        "se": ("SE",),
        "n": ("N",),
    },
    required=("snp", "a1", "a2", "beta", "se"),
    signature=("snp", "a1", "a2", "beta"),
)

GWAS_SSF = SumstatsFormat(
    name="gwas-ssf",
    description=("GWAS-SSF, the GWAS Catalog standard (chromosome base_pair_location effect_allele other_allele "
                 "beta standard_error effect_allele_frequency p_value [rsid] [n])"),
    columns={
        "chrom": ("CHROMOSOME",),
        "bp": ("BASE_PAIR_LOCATION",),
        "a1": ("EFFECT_ALLELE",),
        "a2": ("OTHER_ALLELE",),
        "beta": ("BETA",),
        "odds_ratio": ("ODDS_RATIO",),
        "hazard_ratio": ("HAZARD_RATIO",),
        "z": ("Z-SCORE", "Z_SCORE"),
        "se": ("STANDARD_ERROR",),
        "freq": ("EFFECT_ALLELE_FREQUENCY",),
        "snp": ("RSID", "VARIANT_ID"),
        "info": ("INFO",),
        "n": ("N",),
    },
    required=("chrom", "bp", "a1", "a2"),
    signature=("chrom", "bp", "a1", "a2"),
)

#: Used only with a column mapping when no format matches: every common header name.
CUSTOM = SumstatsFormat(
    name="custom",
    description="a table with mapped columns (--col-a1, --col-a2, --col-z or --col-beta/--col-se, ...)",
    columns={
        "snp": ("SNP", "RSID", "ID", "MARKERNAME", "MARKER", "VARIANT_ID", "RS"),
        "chrom": ("CHR", "CHROM", "CHROMOSOME"),
        "bp": ("BP", "POS", "POSITION", "BASE_PAIR_LOCATION"),
        "a1": ("A1", "ALLELE1", "EFFECT_ALLELE", "EA"),
        "a2": ("A2", "ALLELE0", "ALLELE2", "OTHER_ALLELE", "NEA"),
        "z": ("Z", "ZSCORE", "Z-SCORE"),
        "beta": ("BETA",),
        "se": ("SE", "STANDARD_ERROR"),
        "n": ("N",),
        "freq": ("FREQ", "FRQ", "EAF", "AF1", "A1FREQ", "EFFECT_ALLELE_FREQUENCY"),
        "info": ("INFO",),
    },
    required=("a1", "a2"),
    signature=(),
)


def _read_gwas_vcf_entry(path, n, **kw):  # resolved lazily: pysam is imported only for VCFs
    return read_gwas_vcf(path, n, **kw)


def _sniff_vcf(path) -> bool:
    return is_vcf(path)


GWAS_VCF = SumstatsFormat(
    name="gwas-vcf",
    description="GWAS-VCF (FORMAT ES:SE:LP:AF[:SS], one sample column; ALT is the effect allele)",
    columns={},
    required=(),
    signature=(),
    reader=_read_gwas_vcf_entry,
    sniff=_sniff_vcf,
)

#: The built-in table formats, in the order they are registered and tried (UKB before
#: fastGWA: its header has fastGWA's columns too).
FORMATS: list[SumstatsFormat] = [LDSC, UKB, FASTGWA, BOLT, GWAS_SSF]

#: Every built-in format by name.
FORMATS_BY_NAME: dict[str, SumstatsFormat] = {f.name.lower(): f for f in FORMATS + [GWAS_VCF, CUSTOM]}

#: The built-ins as registered by varfx.default_plugins.formats (CUSTOM last: it is only
#: used with a column mapping, after every named format).
BUILTIN_FORMATS: tuple[SumstatsFormat, ...] = (GWAS_VCF, *FORMATS, CUSTOM)


def registered_formats() -> tuple[list[SumstatsFormat], list[SumstatsFormat], dict[str, SumstatsFormat]]:
    """(table formats in detection order, file formats with a reader, every format by
    lower-case name), from the plugin registry (``register_sumstats_formats``)."""
    from ..plugins import get_sumstats_formats

    found = list(get_sumstats_formats().values())
    tables = [f for f in found if f.reader is None and f.name.lower() != "custom"]
    files = [f for f in found if f.reader is not None]
    return tables, files, {f.name.lower(): f for f in found}


class Sumstats(dict):
    """A dict of per-variant numpy arrays, plus what was read: ``path``, ``format``,
    ``n_source`` ("column" or "option"), ``has_position`` (CHR and BP columns),
    ``columns`` (field -> the header column it was read from, or how it was derived)
    and ``delimiter`` ("tab", "comma", "whitespace" or "vcf")."""

    def __init__(self, *args, path=None, format=None, n_source=None, has_position=False,
                 columns=None, delimiter=None, **kw):
        super().__init__(*args, **kw)
        self.path = path
        self.format = format
        self.n_source = n_source
        self.has_position = has_position
        self.columns = dict(columns or {})
        self.delimiter = delimiter

    @property
    def n_variants(self) -> int:
        return int(len(self["snp"])) if "snp" in self else 0

    def subset(self, index) -> "Sumstats":
        """The rows ``index`` (a boolean mask or integer indices), same attributes."""
        out = Sumstats({k: v[index] for k, v in self.items()}, path=self.path, format=self.format,
                       n_source=self.n_source, has_position=self.has_position, columns=self.columns,
                       delimiter=self.delimiter)
        return out


# ----------------------------------------------------------------------------------------
# reading bytes


def _sniffs(fmt: SumstatsFormat, path: Path) -> bool:
    """A format's sniff; one that raises counts as "not this format" (sniffs must not raise)."""
    try:
        return bool(fmt.sniff(path)) if fmt.sniff is not None else False
    except Exception:  # noqa: BLE001 - a third-party sniffer must not break detection
        return False


def _check_path(path: Path) -> None:
    if not path.exists():
        raise UserError("no such file", path=path)
    if path.is_dir():
        raise UserError("is a directory, expected a summary-statistics file", path=path)


def read_bytes(path) -> bytes:
    """The content of a plain or gzip-compressed file (detected from its first bytes)."""
    return _read_bytes(path, "a summary-statistics file")


def read_text(path) -> str:
    """The whole text of a plain or gzip-compressed file (detected from its first bytes),
    without a leading byte-order mark."""
    return _read_text(path, "a text table")


def _head(path: Path, size: int = 64) -> bytes:
    """The first ``size`` bytes of the (decompressed) content, or b"" when unreadable."""
    try:
        with open(path, "rb") as fh:
            magic = fh.read(2)
        if magic == GZIP_MAGIC:
            with gzip.open(path, "rb") as fh:
                return fh.read(size)
        with open(path, "rb") as fh:
            return fh.read(size)
    except (OSError, EOFError, zlib.error):
        return b""


def _read_prefix(path: Path, size: int = 1 << 20) -> tuple[bytes, bool, bool]:
    """(the first ``size`` bytes of the decompressed content, whether that is all of it,
    whether the file is gzip).  A gzip error here is left to :func:`read_bytes`."""
    with open(path, "rb") as fh:
        gz = fh.read(2) == GZIP_MAGIC
    try:
        with (gzip.open(path, "rb") if gz else open(path, "rb")) as fh:
            prefix = fh.read(size + 1)
    except (OSError, EOFError, zlib.error):
        read_bytes(path)  # raises the corrupt/truncated gzip error
        raise  # pragma: no cover - read_bytes raised
    return prefix[:size], len(prefix) <= size, gz


def is_vcf(path) -> bool:
    """Whether ``path`` starts like a VCF file (``##fileformat=VCF``), gzipped or not."""
    return _head(Path(path)).startswith(b"##fileformat=VCF")


def _find_header(data: bytes, path) -> tuple[int, int, str]:
    """(0-based line index of the header, byte offset of the line after it, header text):
    the first non-blank line not starting with ``##``; (-1, len, "") when there is none."""
    # A UTF-8 byte-order mark (Excel, PowerShell) is not part of the first column's name
    pos, i, size = (len(BOM) if data.startswith(BOM) else 0), 0, len(data)
    while pos < size:
        nl = data.find(b"\n", pos)
        end = size if nl < 0 else nl
        line = data[pos:end]
        if line.strip() and not line.startswith(b"##"):
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise UserError(f"not a text file (byte {pos + exc.start} is not UTF-8)", path=path) from None
            return i, (size if nl < 0 else nl + 1), text
        if nl < 0:
            break
        pos, i = nl + 1, i + 1
    return -1, size, ""


def _split_header(text: str) -> tuple[list[str], str]:
    """Header names and the delimiter mode: "tab" if the header has a tab, else "comma"
    if it has a comma, else "whitespace"."""
    text = text.rstrip("\r\n")
    if "\t" in text:
        names, mode = [unquote(c) for c in text.strip().split("\t")], "tab"
    elif "," in text:
        names, mode = [unquote(c) for c in text.split(",")], "comma"
    else:
        names, mode = [unquote(c) for c in text.split()], "whitespace"
    if names and names[0].startswith("#"):
        names[0] = names[0].lstrip("#")
    return names, mode


# ----------------------------------------------------------------------------------------
# format detection and column mapping


def _apply_overrides(header_upper: list[str], columns: dict[str, str], path, line=None) -> list[str]:
    """Rename mapped columns to their canonical header names (and move clashes aside)."""
    out = list(header_upper)
    targets: dict[int, str] = {}
    for f, name in columns.items():
        if f not in CANONICAL_HEADER:
            raise UserError(f"unknown sumstats field {f!r} in a column mapping (fields: {', '.join(CANONICAL_HEADER)})")
        if name is None:
            continue
        opt = COLUMN_OPTIONS[f]
        if name.upper() not in header_upper:
            raise UserError(
                f"{opt} {name}: no such column; expected one of the header's columns: {' '.join(header_upper)}",
                path=path, line=line,
            )
        i = header_upper.index(name.upper())
        if i in targets:
            other = next(g for g, c in CANONICAL_HEADER.items() if c == targets[i])
            raise UserError(f"{opt} {name}: column already given for {COLUMN_OPTIONS[other]}", path=path, line=line)
        targets[i] = CANONICAL_HEADER[f]
    for i, c in enumerate(out):
        if i not in targets and c in targets.values():
            out[i] = f"{c}#UNUSED"
    for i, c in targets.items():
        out[i] = c
    return out


def _format_columns(fmt: SumstatsFormat, mapped: set) -> dict[str, tuple[str, ...]]:
    """The header names of each field in ``fmt``; a mapped field is its canonical name."""
    cols = dict(fmt.columns)
    for f in mapped:
        cols[f] = (CANONICAL_HEADER[f],)
    return cols


def _has_effect(has) -> bool:
    return has("z") or (has("se") and (has("beta") or has("odds_ratio") or has("hazard_ratio")))


def _find_format(header_upper: list[str], path, *, mapped=frozenset(), forced: str | None = None,
                 line=None) -> SumstatsFormat:
    present = set(header_upper)
    formats, _, by_name = registered_formats()
    custom = by_name.get("custom", CUSTOM)

    def has_fn(fmt):
        cols = _format_columns(fmt, mapped)
        return lambda f: any(name in present for name in cols.get(f, ()))

    def complete(fmt):
        has = has_fn(fmt)
        return all(has(f) for f in fmt.required) and _has_effect(has)

    if forced is not None:
        fmt = by_name[forced.lower()]
        candidates = [fmt]
    else:
        for fmt in formats:
            # a named format is recognised from its own column names, not from mapped ones
            if all(f not in mapped and any(nm in present for nm in fmt.columns.get(f, ())) for f in fmt.signature) \
                    and complete(fmt):
                return fmt
        if mapped and complete(custom):
            return custom
        candidates = formats + ([custom] if mapped else [])
    if forced is not None and complete(candidates[0]):
        return candidates[0]
    # No format matches: blame the closest one and name what it misses.
    if len(header_upper) == 1 and any(d in header_upper[0] for d in ";|"):
        raise UserError(
            f"the header is a single column {header_upper[0]!r}: expected tab-, comma- or "
            "whitespace-separated columns", path=path, line=line,
        )

    def score(fmt):
        has = has_fn(fmt)
        sig = fmt.signature or fmt.required
        return sum(has(f) for f in sig) / max(1, len(sig))

    best = max(candidates, key=score)
    has = has_fn(best)
    cols = _format_columns(best, mapped)
    missing = [f for f in best.required if not has(f)]
    if missing:
        names = " or ".join(cols[missing[0]])
    elif "se" in cols and not has("se") and (has("beta") or has("odds_ratio") or has("hazard_ratio")):
        names = " or ".join(cols["se"])
    else:  # no effect column
        effect = [cols[f][0] for f in ("beta", "odds_ratio", "hazard_ratio", "z") if f in cols]
        names = " or ".join(effect) + (f" (with {cols['se'][0]})" if "se" in cols and "z" not in best.required else "")
    raise UserError(
        f"missing required column {names} (closest format: {best.description}); "
        f"header is: {' '.join(header_upper)}",
        path=path,
    )


# ----------------------------------------------------------------------------------------
# the table parser (pyarrow) and error locator

_DELIM = {"tab": "\t", "comma": ",", "whitespace": " ", "normalised": "\t"}
_BLANK = np.zeros(256, dtype=bool)
_BLANK[[9, 11, 12, 13, 32]] = True  # \t \v \f \r and space


def _normalise_whitespace(body, block: int = 64 << 20) -> bytes:
    """The fields of whitespace splitting (``str.split()`` of each line), tab-separated:
    runs of blanks become one tab, blanks at the start or end of a line go.  Vectorised
    (numpy) over blocks of whole lines, so memory stays bounded on large files."""
    raw = np.frombuffer(body, dtype=np.uint8)
    out = []
    pos = 0
    while pos < raw.size:
        end = min(raw.size, pos + block)
        if end < raw.size:  # end the block after a newline
            nl = np.flatnonzero(raw[end - 1 : min(raw.size, end + (1 << 20))] == 10)
            end = end + int(nl[0]) if nl.size else raw.size
        seg = raw[pos:end]
        ws = _BLANK[seg]
        brk = ws | (seg == 10)  # a blank, or a line end
        first = ws.copy()
        first[1:] &= ~ws[:-1]
        last = ws.copy()
        last[:-1] &= ~ws[1:]
        starts = np.flatnonzero(first)
        ends = np.flatnonzero(last) + 1  # runs never cross a newline, so they pair up
        before = starts > 0
        before[before] = ~brk[starts[before] - 1]
        after = ends < seg.size
        after[after] = ~brk[ends[after]]
        interior = starts[before & after]
        keep = ~ws
        keep[interior] = True
        vals = seg.copy()
        vals[interior] = 9
        out.append(vals[keep].tobytes())
        pos = end
    return b"".join(out)


def _first_non_utf8(body, block: int = 64 << 20) -> int | None:
    """Offset of the first byte of ``body`` that is not UTF-8 (checked block by block)."""
    import codecs

    dec = codecs.getincrementaldecoder("utf-8")()
    mv = memoryview(body)
    for pos in range(0, len(mv), block):
        chunk = bytes(mv[pos : pos + block])
        try:
            dec.decode(chunk, final=pos + block >= len(mv))
        except UnicodeDecodeError as exc:
            return max(0, pos + exc.start - len(dec.getstate()[0]))
    return None


class _Locator:
    """From a data row index back to its line number and its text (for messages)."""

    def __init__(self, body, first_line: int, mode: str, nrows: int):
        self._body = body  # bytes-like, the text after the header as parsed, or a function giving it
        self.first_line = first_line  # 1-based line number of the first line after the header
        self.mode = mode
        self.nrows = nrows
        self._rows = None  # (starts, ends) of the non-empty lines, computed on demand

    @property
    def body(self):
        if callable(self._body):
            self._body = self._body()
        return self._body

    def _row_spans(self):
        if self._rows is None:
            raw = np.frombuffer(self.body, dtype=np.uint8)
            nl = np.flatnonzero(raw == 10)
            starts = np.concatenate(([0], nl + 1))
            ends = np.concatenate((nl, [raw.size]))
            keep = ends > starts
            # a line holding only "\r" is empty too (CRLF files)
            cr = keep & (ends - starts == 1)
            if cr.any():
                keep[cr] = raw[starts[cr]] != 13
            self._line_index = np.flatnonzero(keep)
            self._rows = (starts[keep], ends[keep])
        return self._rows

    def line(self, i: int) -> int:
        starts, _ = self._row_spans()
        if i >= len(starts):  # pragma: no cover - defensive
            return self.first_line + i
        return self.first_line + int(self._line_index[i])

    def fields(self, i: int) -> list[str]:
        starts, ends = self._row_spans()
        text = bytes(self.body[int(starts[i]) : int(ends[i])]).decode("utf-8", errors="replace").rstrip("\r")
        if self.mode == "comma":
            import csv

            return next(csv.reader([text]))
        if self.mode in ("tab", "normalised"):
            return text.split("\t")
        return text.split()

    def token(self, i: int, j: int) -> str:
        f = self.fields(i)
        return f[j].strip() if j < len(f) else ""


def _arrow_read(body, mode: str, ncol: int, want: dict[int, str]):
    import pyarrow as pa
    import pyarrow.csv as pcsv

    names = [f"c{j}" for j in range(ncol)]
    types = {f"c{j}": (pa.float64() if kind == "float" else pa.string()) for j, kind in want.items()}
    return pcsv.read_csv(
        body if isinstance(body, pa.NativeFile) else pa.py_buffer(body),
        read_options=pcsv.ReadOptions(column_names=names, block_size=8 << 20),
        parse_options=pcsv.ParseOptions(
            delimiter=_DELIM[mode],
            quote_char='"' if mode == "comma" else False,
            ignore_empty_lines=True,
        ),
        convert_options=pcsv.ConvertOptions(
            include_columns=[f"c{j}" for j in sorted(want)],
            column_types=types,
            null_values=_NULL_VALUES,
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )


def _first_bad_float(col) -> int | None:
    """Index of the first string of ``col`` (a ChunkedArray) that is neither a number
    nor a missing token, found chunk by chunk and then by bisection with pyarrow's own
    parser (so "bad" means exactly what the fast path rejected)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    nulls = pa.array(_NULL_VALUES, type=pa.string())

    def ok(arr) -> bool:
        arr = pc.utf8_trim_whitespace(arr)
        arr = pc.if_else(pc.is_in(arr, value_set=nulls), pa.scalar(None, pa.string()), arr)
        try:
            pc.cast(arr, pa.float64())
            return True
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return False

    offset = 0
    for chunk in col.chunks:
        if not ok(chunk):
            lo, hi = 0, len(chunk)  # the first bad element is in [lo, hi)
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if ok(chunk.slice(lo, mid - lo)):
                    lo = mid
                else:
                    hi = mid
            return offset + lo
        offset += len(chunk)
    return None


def _diagnose(path, data, body_start: int, body, mode: str, ncol: int, want: dict[int, str],
              names: dict[int, str], first_line: int, exc, header_mode: str) -> UserError:
    """The UserError for a table that pyarrow refused: non-UTF-8 bytes, a line with a
    different number of fields, or a value that is not a number."""
    import pyarrow as pa

    bad = _first_non_utf8(memoryview(data)[body_start:])
    if bad is not None:
        return UserError(f"not a text file (byte {body_start + bad} is not UTF-8)", path=path)
    loc = _Locator(body, first_line, mode, 0)
    starts, ends = loc._row_spans()
    raw = np.frombuffer(body, dtype=np.uint8)
    delim = ord(_DELIM[mode])
    quoted = mode == "comma" and b'"' in bytes(body[: min(len(body), 1 << 20)])
    step = 1 << 20  # lines per block: bounded memory on a large file
    for b0 in range(0, starts.size, step):
        s0, e0 = starts[b0 : b0 + step], ends[b0 : b0 + step]
        if quoted:
            counts = np.array([len(loc.fields(i)) for i in range(b0, b0 + s0.size)])
        else:
            seg = raw[s0[0] : e0[-1]]
            cum = np.concatenate(([0], np.cumsum(seg == delim, dtype=np.int32)))
            counts = cum[e0 - s0[0]] - cum[s0 - s0[0]] + 1
        bad = np.flatnonzero(counts != ncol)
        if bad.size:
            i, found = b0 + int(bad[0]), int(counts[bad[0]])
            hint = ""
            if found == 1 and any(d in loc.fields(i)[0] for d in ",;|\t "):
                hint = f" (is the delimiter right? the header is {_mode_words(header_mode)})"
            return UserError(f"expected {ncol} fields (as in the header), found {found}{hint}",
                             path=path, line=loc.line(i))
    # a value that is not a number: read each numeric column as text and find it
    for j, kind in sorted(want.items()):
        if kind != "float":
            continue
        try:
            col = _arrow_read(body, mode, ncol, {j: "str"}).column(0)
        except pa.ArrowInvalid:  # pragma: no cover - the parse itself succeeded above
            continue
        i = _first_bad_float(col)
        if i is not None:
            return UserError(f"expected a number, found {col[i].as_py()!r}", path=path, line=loc.line(i), column=names[j])
    return UserError(f"could not parse the table ({str(exc).splitlines()[0]})", path=path)


def _mode_words(mode: str) -> str:
    return {"tab": "tab-separated", "comma": "comma-separated", "whitespace": "whitespace-separated"}[mode]


# ----------------------------------------------------------------------------------------
# checks shared by the table and VCF readers


class _Checker:
    """Checks on the parsed columns; messages name the line and column of the first bad value."""

    def __init__(self, path, line_of, token_of, names):
        self.path = path
        self.line_of = line_of  # row index -> line number
        self.token_of = token_of  # (field, row index) -> the text as written
        self.names = names  # field -> column name (for messages)

    def fail(self, i, message, field=None):
        raise UserError(message, path=self.path, line=self.line_of(int(i)),
                        column=self.names.get(field) if field else None)

    def first(self, bad):
        idx = np.flatnonzero(bad)
        return int(idx[0]) if idx.size else None

    def required_number(self, field, values, valid):
        """Nulls (missing tokens) are errors in a required numeric column."""
        i = self.first(~valid)
        if i is not None:
            self.fail(i, f"expected a number, found {self.token_of(field, i)!r}", field)
        return values


def _check_alleles(arr, checker: _Checker, field: str):
    """Upper-cased alleles as an object array; each must be A/C/G/T letters."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not isinstance(arr, (pa.Array, pa.ChunkedArray)):
        arr = pa.array(arr, type=pa.string())
    up = pc.ascii_upper(pc.ascii_trim_whitespace(arr))
    ok = pc.match_substring_regex(up, "^[ACGT]+$")
    if not pc.all(ok).as_py():
        bad = np.flatnonzero(~np.asarray(ok.to_numpy(zero_copy_only=False), dtype=bool))
        i = int(bad[0])
        checker.fail(i, f"expected an allele made of A, C, G, T (e.g. 'A' or 'ACT'), found "
                        f"{checker.token_of(field, i)!r}", field)
    return np.asarray(up.to_numpy(zero_copy_only=False), dtype=object)


def _chrom_codes(arr) -> np.ndarray:
    """int64 chromosome codes of string tokens: -1 for missing, 0 for other contigs."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not isinstance(arr, (pa.Array, pa.ChunkedArray)):
        arr = pa.array(arr, type=pa.string())
    uniq_arr = pc.unique(arr)
    uniq = uniq_arr.to_pylist()
    codes = []
    for u in uniq:
        t = unquote(u)
        if t.upper() in MISSING_TOKENS:
            codes.append(-1)
        else:
            c = chrom_code(t)
            codes.append(c if c >= 0 else 0)
    if len(arr) == 0:
        return np.zeros(0, dtype=np.int64)
    idx = pc.index_in(arr, value_set=uniq_arr).to_numpy(zero_copy_only=False)
    return np.asarray(codes, dtype=np.int64)[idx]


def _unquote_column(arr):
    """Text fields without one pair of surrounding double quotes (R's ``write.table``
    quotes every string, whatever the separator): ``"22"`` is chromosome 22, not an
    unknown contig."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not isinstance(arr, (pa.Array, pa.ChunkedArray)):
        arr = pa.array(arr, type=pa.string())
    if not pc.any(pc.match_substring(arr, '"')).as_py():
        return arr
    return pc.replace_substring_regex(arr, pattern=r'^\s*"(.*)"\s*$', replacement=r"\1")


def _finish(cols: dict, present: dict, checker: _Checker, *, n, path, fmt_name, mode, m) -> Sumstats:
    """Build the Sumstats from parsed columns.

    ``cols[field]``: pyarrow/numpy arrays: strings for snp/chrom/a1/a2, float64 numpy
    arrays (NaN for null) for numeric fields, with ``cols[field + "?"]`` the validity
    mask (False where the token was a missing value).  ``present``: field -> how it
    was read (for ``Sumstats.columns``).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if mode != "comma":  # pyarrow unquotes comma-separated fields itself
        for f in ("snp", "chrom", "a1", "a2"):
            if f in cols:
                cols[f] = _unquote_column(cols[f])
    has_pos = "chrom" in cols and "bp" in cols
    out = Sumstats(path=path, format=fmt_name, has_position=has_pos, columns=present, delimiter=mode)
    out["a1"] = _check_alleles(cols["a1"], checker, "a1")
    out["a2"] = _check_alleles(cols["a2"], checker, "a2")

    out["chrom"] = _chrom_codes(cols["chrom"]) if "chrom" in cols else np.full(m, -1, dtype=np.int64)
    if "bp" in cols:
        bp = cols["bp"]
        bad = np.isfinite(bp) & ((bp < 0) | (bp != np.round(bp)))
        i = checker.first(bad)
        if i is not None:
            checker.fail(i, f"expected a non-negative integer position, found {checker.token_of('bp', i)!r}", "bp")
        out["bp"] = np.where(np.isfinite(bp), bp, -1).astype(np.int64)
    else:
        out["bp"] = np.full(m, -1, dtype=np.int64)

    # ids; CHR:BP where there is no id column, or for a missing id (e.g. "#NA", ".")
    def synth():
        chrom_txt = cols["chrom"]
        if not isinstance(chrom_txt, (pa.Array, pa.ChunkedArray)):
            chrom_txt = pa.array(chrom_txt, pa.string())
        return pc.binary_join_element_wise(pc.ascii_trim_whitespace(chrom_txt),
                                           pa.array(out["bp"]).cast(pa.string()), ":")

    if "snp" in cols:
        snp = cols["snp"]
        if not isinstance(snp, (pa.Array, pa.ChunkedArray)):
            snp = pa.array(snp, pa.string())
        snp = pc.ascii_trim_whitespace(snp)
        if has_pos:
            missing = pc.is_in(snp, value_set=pa.array(_NULL_VALUES + ["NaN", "nan", "NAN"], pa.string()))
            if pc.any(missing).as_py():
                snp = pc.if_else(missing, synth(), snp)
        out["snp"] = np.asarray(snp.to_numpy(zero_copy_only=False), dtype=object)
    else:
        out["snp"] = np.asarray(synth().to_numpy(zero_copy_only=False), dtype=object)
        out.columns = dict(present, snp="CHR:BP")

    if "z" in cols:
        z = checker.required_number("z", cols["z"], cols["z?"])
        i = checker.first(~np.isfinite(z))
        if i is not None:
            checker.fail(i, f"Z is not finite ({checker.token_of('z', i)}): expected a finite number", "z")
    else:
        eff = next(f for f in ("beta", "odds_ratio", "hazard_ratio") if f in cols)
        b = checker.required_number(eff, cols[eff], cols[eff + "?"])
        se = checker.required_number("se", cols["se"], cols["se?"])
        if eff != "beta":
            i = checker.first(~(b > 0))
            if i is not None:
                checker.fail(i, f"expected a positive {checker.names[eff]}, found {checker.token_of(eff, i)}", eff)
            b = np.log(b)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = b / se
        i = checker.first(~np.isfinite(z) | ~(se > 0))
        if i is not None:
            en, sn = checker.names[eff], checker.names["se"]
            what = "BETA/SE" if eff == "beta" else f"ln({en})/SE"
            checker.fail(i, f"Z = {what} is not finite or SE is not positive "
                            f"({en}={checker.token_of(eff, i)}, {sn}={checker.token_of('se', i)})")
    out["z"] = np.asarray(z, dtype=np.float64)

    if n is not None:
        out["n"] = np.full(m, float(n))
        out.n_source = "option"
    elif "n" in cols:
        nn = checker.required_number("n", cols["n"], cols["n?"])
        i = checker.first(~(np.isfinite(nn) & (nn > 0)))
        if i is not None:
            checker.fail(i, f"expected a positive sample size, found {checker.token_of('n', i)}", "n")
        out["n"] = nn
        out.n_source = "column"
    else:
        raise UserError(f"no N column ({_no_n_hint(fmt_name)}) and no --n given: pass the sample size with --n", path=path)

    if "freq" in cols:
        fr = cols["freq"]
        i = checker.first(np.isfinite(fr) & ((fr < 0) | (fr > 1)))
        if i is not None:
            checker.fail(i, f"expected an allele frequency in [0, 1], found {checker.token_of('freq', i)}", "freq")
        out["freq"] = fr
    else:
        out["freq"] = np.full(m, np.nan)
    if "info" in cols:
        info = cols["info"]
        i = checker.first(np.isfinite(info) & (info < 0) | np.isinf(info))
        if i is not None:
            checker.fail(i, f"expected an imputation INFO score >= 0, found {checker.token_of('info', i)}", "info")
        out["info"] = info
    else:
        out["info"] = np.full(m, np.nan)
    return out


def _no_n_hint(fmt_name) -> str:
    return {"bolt": "BOLT-LMM writes none", "gwas-vcf": "no SS FORMAT field"}.get(fmt_name, "")


# ----------------------------------------------------------------------------------------
# the public reader


def _check_n(n):
    if n is None:
        return None
    try:
        v = float(n)
    except (TypeError, ValueError):
        raise UserError(f"option --n: expected a positive number, got {n!r}") from None
    if not (np.isfinite(v) and v > 0):
        raise UserError(f"option --n: expected a positive number, got {n!r}")
    return v


def read_sumstats(path, n=None, *, columns: dict[str, str] | None = None, format: str | None = None) -> Sumstats:
    """Read summary statistics (see :data:`FORMATS`; plain or gzipped; or GWAS-VCF).

    ``n`` is the sample size for every variant; it is required when the file has no N
    column and, when given, replaces that column.  ``columns`` maps canonical fields
    to header names (e.g. ``{"z": "ZSCORE"}``): a mapped field is read from that
    column whatever the format.  ``format`` forces a format by name (``ldsc``,
    ``ukb``, ``fastGWA``, ``bolt``, ``gwas-ssf``, ``gwas-vcf``, ``custom``) instead of
    detecting it.  Raises :class:`UserError` on bad input, naming the file, line and
    column.
    """
    path = Path(path)
    n = _check_n(n)
    columns = {f: c for f, c in (columns or {}).items() if c is not None}
    _, file_formats, by_name = registered_formats()
    if format is not None and format.lower() not in by_name:
        raise UserError(f"option --sumstats-format: unknown format {format!r}; expected one of "
                        f"{', '.join(f.name for f in by_name.values())}")
    _check_path(path)
    forced_fmt = by_name[format.lower()] if format is not None else None
    reader_fmt = forced_fmt if forced_fmt is not None and forced_fmt.reader is not None else None
    if forced_fmt is None:
        reader_fmt = next((f for f in file_formats if _sniffs(f, path)), None)
    if reader_fmt is not None:
        if columns:
            opts = ", ".join(COLUMN_OPTIONS.get(f, f) for f in columns)
            what = ("a GWAS-VCF file (its fields are ES, SE, EZ, AF, SS, SI)" if reader_fmt.name == "gwas-vcf"
                    else f"the {reader_fmt.name} format (not a table)")
            raise UserError(f"{opts}: column mapping does not apply to {what}", path=path)
        return reader_fmt.reader(path, n)

    prefix, complete, gz = _read_prefix(path)
    data = None
    h, body_start, header_text = _find_header(prefix, path)
    if not complete and (h < 0 or body_start >= len(prefix)):  # the header is not in the first MiB
        data = read_bytes(path)
        h, body_start, header_text = _find_header(data, path)
    if h < 0:
        if prefix.startswith(b"##fileformat=VCF"):
            raise UserError("VCF file with no #CHROM header line", path=path)
        raise UserError("empty file: expected a header line and one line per variant", path=path)
    header, mode = _split_header(header_text)
    header_upper = [c.upper() for c in header]
    mapped = set()
    if columns:
        header_upper = _apply_overrides(header_upper, columns, path, line=h + 1)
        mapped = set(columns)
    forced = format if forced_fmt is not None else None
    fmt = _find_format(header_upper, path, mapped=mapped, forced=forced, line=h + 1)

    # columns of each field
    fcols = _format_columns(fmt, mapped)
    dup = {c for c in header_upper if header_upper.count(c) > 1}
    col_index: dict[str, int] = {}
    for f, names in fcols.items():
        for name in names:
            if name in header_upper:
                if name in dup:
                    raise UserError(f"column {name} appears more than once in the header", path=path, line=h + 1)
                col_index[f] = header_upper.index(name)
                break
    col_index.pop("ref", None)
    # the Z source: Z, else BETA/SE (or ln OR / SE, ln HR / SE); other effect columns unused
    if "z" in col_index:
        for f in ("beta", "se", "odds_ratio", "hazard_ratio"):
            col_index.pop(f, None)
    else:
        eff = next((f for f in ("beta", "odds_ratio", "hazard_ratio") if f in col_index), None)
        for f in ("beta", "odds_ratio", "hazard_ratio"):
            if f != eff:
                col_index.pop(f, None)
    if n is not None:
        col_index.pop("n", None)
    if "snp" not in col_index and not ("chrom" in col_index and "bp" in col_index):
        raise UserError(f"missing required column {' or '.join(fcols.get('snp', ('SNP',)))} (or CHR and BP columns); "
                        f"header is: {' '.join(header_upper)}", path=path)
    names = {f: header[j] for f, j in col_index.items()}
    ncol = len(header)
    want = {j: ("float" if f in _NUMERIC else "str") for f, j in col_index.items()}

    # parse
    import pyarrow as pa

    first_line = h + 2
    col_names = {j: names[f] for f, j in col_index.items()}
    table = None
    fast_exc = None
    if data is None:
        # fast path: pyarrow reads the file as a stream (gzip is decompressed on its I/O
        # thread while the parser threads work); the bytes are read again only for a message
        try:
            with pa.input_stream(str(path), compression="gzip" if gz else None) as stream:
                if len(stream.read(body_start)) == body_start:
                    table = _arrow_read(stream, mode, ncol, want)
        except (pa.ArrowInvalid, OSError, EOFError) as exc:
            fast_exc = exc
        if table is not None and table.num_rows == 0:
            table = None
        parsed_mode = mode

        def parsed_body():
            return memoryview(read_bytes(path))[body_start:]
    if table is None:
        # slow path: all the bytes (a corrupt gzip is reported here); as written, then
        # as whitespace-split fields; else find the line and column of the problem
        data = read_bytes(path) if data is None else data
        body = memoryview(data)[body_start:]
        if not bytes(body[: 1 << 16]).strip() and not bytes(body).strip():
            raise UserError("no data rows after the header", path=path, line=h + 1)
        exc = fast_exc if isinstance(fast_exc, pa.ArrowInvalid) else None
        if exc is None:
            try:
                table = _arrow_read(body, mode, ncol, want)
                parsed_mode, norm = mode, body
            except pa.ArrowInvalid as e:
                exc = e
        if table is None:
            if mode == "comma" or "conversion error" in str(exc).lower():
                raise _diagnose(path, data, body_start, body, mode, ncol, want, col_names, first_line, exc,
                                mode) from None
            norm = _normalise_whitespace(body)
            try:
                table = _arrow_read(norm, "normalised", ncol, want)
            except pa.ArrowInvalid as exc2:
                raise _diagnose(path, data, body_start, norm, "normalised", ncol, want, col_names, first_line,
                                exc2, mode) from None
            parsed_mode = "normalised"

        def parsed_body(norm=norm):
            return norm
    m = table.num_rows
    if m == 0:
        raise UserError("no data rows after the header", path=path, line=h + 1)
    loc = _Locator(parsed_body, first_line, parsed_mode, m)

    def token_of(field, i):
        return loc.token(i, col_index[field])

    checker = _Checker(path, loc.line, token_of, names)

    cols: dict = {}
    for f, j in col_index.items():
        arr = table.column(f"c{j}")
        if want[j] == "float":
            valid = arr.is_valid().to_numpy(zero_copy_only=False) if arr.null_count else np.ones(m, dtype=bool)
            cols[f] = np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.float64)
            if arr.null_count:
                cols[f][~valid] = np.nan
            cols[f + "?"] = valid
        else:
            cols[f] = arr
    present = {f: names[f] for f in col_index}
    if "z" not in col_index:
        eff = next(f for f in ("beta", "odds_ratio", "hazard_ratio") if f in col_index)
        present["z"] = f"{names[eff]}/{names['se']}" if eff == "beta" else f"ln({names[eff]})/{names['se']}"
    del table
    return _finish(cols, present, checker, n=n, path=path, fmt_name=fmt.name, mode=mode, m=m)


# ----------------------------------------------------------------------------------------
# GWAS-VCF (pysam)


def read_gwas_vcf(path, n=None) -> Sumstats:
    """Read a GWAS-VCF file (MRC IEU GWAS-VCF specification) with pysam.

    One sample column (one study).  FORMAT fields: ``ES`` (effect of ALT) and ``SE``, or
    ``EZ`` (Z of ALT); ``AF`` (ALT frequency), ``SS`` (sample size), ``SI`` (INFO).
    ``ID`` is the variant id, ``REF``/``ALT`` the alleles with ALT the effect allele: a1 =
    ALT, a2 = REF.  A record with several ALT alleles gives one row per ALT (then
    reported as multi-allelic by :func:`filter_sumstats`).
    """
    path = Path(path)
    n = _check_n(n)
    _check_path(path)
    with open(path, "rb") as fh:
        head = fh.read(18)
    if head[:2] == b"\x1f\x8b" and not (len(head) >= 14 and head[3] & 4 and head[12:14] == b"BC"):
        # plain gzip, not BGZF: htslib cannot read it; decompress to a temporary file
        import shutil
        import tempfile

        with tempfile.TemporaryDirectory(prefix="varfx-vcf-") as d:
            tmp = Path(d) / "input.vcf"
            try:
                with gzip.open(path, "rb") as src, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst, 16 << 20)
            except (OSError, EOFError, zlib.error) as exc:
                raise UserError(f"corrupt or truncated gzip file ({exc})", path=path) from None
            return _read_vcf_file(tmp, path, n)
    return _read_vcf_file(path, path, n)


def _vcf_header_lines(file) -> int:
    """The 1-based line number of the ``#CHROM`` line (0 when there is none)."""
    with open(file, "rb") as fh:
        gz = fh.read(2) == GZIP_MAGIC
    try:
        with (gzip.open(file, "rb") if gz else open(file, "rb")) as fh:
            for i, line in enumerate(fh, 1):
                if line.startswith(b"#CHROM"):
                    return i
                if not line.startswith(b"#"):
                    break
    except (OSError, EOFError, zlib.error):
        pass
    return 0


def _read_vcf_file(file, path, n) -> Sumstats:
    """Read ``file`` (plain or BGZF); messages name ``path``, the file given."""
    import pysam

    old = pysam.set_verbosity(0)  # htslib warnings would break the one-line error contract
    try:
        n_header = _vcf_header_lines(file)
        if n_header == 0:
            raise UserError("no #CHROM header line: expected a VCF header", path=path)
        try:
            vf = pysam.VariantFile(str(file))
        except (OSError, ValueError, NotImplementedError) as exc:
            raise UserError(f"not a readable VCF file ({exc})", path=path) from None
        with vf:
            return _read_vcf_records(vf, path, n, n_header)
    finally:
        pysam.set_verbosity(old)


def _round_sig(x: np.ndarray, digits: int) -> np.ndarray:
    """``x`` (finite, non-zero) rounded to ``digits`` significant decimal digits."""
    e = (digits - 1) - np.floor(np.log10(np.abs(x))).astype(np.int64)
    p = 10.0 ** np.abs(e)
    return np.where(e >= 0, np.round(x * p) / p, np.round(x / p) * p)


def _float32_decimal(values) -> np.ndarray:
    """float64 values of float32 numbers through their shortest decimal form.

    htslib stores VCF floats as float32 (relative spacing 1.2e-7), so the text
    ``-0.000988763`` is read as -0.00098876299...; this returns the decimal with the
    fewest significant digits (6 to 9) that rounds to the same float32, as
    ``repr(numpy.float32)`` does: a value written with up to 6 significant digits comes
    back exactly as written.  Vectorised."""
    x32 = np.asarray(values, dtype=np.float32)
    x = x32.astype(np.float64)
    out = x.copy()
    todo = np.flatnonzero(np.isfinite(x) & (x != 0))
    for digits in (6, 7, 8, 9):
        if todo.size == 0:
            break
        cand = _round_sig(x[todo], digits)
        with np.errstate(over="ignore"):
            ok = cand.astype(np.float32) == x32[todo]
        out[todo[ok]] = cand[ok]
        todo = todo[~ok]
    return out


def _read_vcf_records(vf, path, n, n_header) -> Sumstats:
    hdr = vf.header
    samples = list(hdr.samples)
    if len(samples) != 1:
        raise UserError(f"expected one sample column in a GWAS-VCF (one study), found {len(samples)}",
                        path=path, line=n_header)
    fmts = set(hdr.formats.keys())
    if "EZ" in fmts:
        eff_fields = ("EZ",)
    elif "ES" in fmts and "SE" in fmts:
        eff_fields = ("ES", "SE")
    else:
        miss = "SE" if "ES" in fmts else "ES"
        raise UserError(f"no ##FORMAT=<ID={miss},...> in the header: a GWAS-VCF needs FORMAT fields ES and SE (or EZ)",
                        path=path, line=n_header)
    use_ss = n is None and "SS" in fmts
    if n is None and not use_ss:
        raise UserError("no SS FORMAT field (sample size) and no --n given: pass the sample size with --n", path=path)
    has_af = "AF" in fmts
    has_si = "SI" in fmts
    wanted = [k for k in ("EZ", "ES", "SE", "AF", "SS", "SI")
              if k in eff_fields or (k == "AF" and has_af) or (k == "SS" and use_ss) or (k == "SI" and has_si)]
    required = set(eff_fields) | ({"SS"} if use_ss else set())
    snp, chrom, bp, a1, a2, line_no = [], [], [], [], [], []
    vals = {key: [] for key in wanted}
    columns = [(key, vals[key], key in required) for key in wanted]
    nan = float("nan")

    def bad_value(rec, key, line):
        if key not in rec.format.keys():
            raise UserError(f"FORMAT has no {key} field (FORMAT is {':'.join(rec.format.keys())}): expected the "
                            f"FORMAT fields {', '.join(k for k in wanted if k in required)}", path=path, line=line,
                            column="FORMAT")
        raise UserError(f"FORMAT field {key} is missing ('.'): expected a number", path=path, line=line, column=key)

    it = iter(vf)
    line = n_header
    while True:
        line += 1
        try:
            rec = next(it)
        except StopIteration:
            break
        except (OSError, ValueError, NotImplementedError) as exc:
            raise UserError(f"not a valid VCF record ({exc})", path=path, line=line) from None
        alts = rec.alts
        if not alts:
            raise UserError("no ALT allele: expected the effect allele in ALT", path=path, line=line, column="ALT")
        sample = rec.samples[0]
        rid, rchrom, rpos, ref = rec.id, rec.chrom, rec.pos, rec.ref
        na = len(alts)
        for key, out, req in columns:
            v = sample.get(key)  # a tuple (Number=A) or a number; None when absent
            if v.__class__ is not tuple:
                v = (v,) * na
            elif len(v) != na:
                v = (v + (None,) * na)[:na] if len(v) < na else v[:na]
            for x in v:
                if x is None:
                    if req:
                        bad_value(rec, key, line)
                    out.append(nan)
                else:
                    out.append(x)
        for alt in alts:
            snp.append(rid if rid else f"{rchrom}:{rpos}")
            chrom.append(rchrom)
            bp.append(rpos)
            a1.append(alt)
            a2.append(ref)
            line_no.append(line)
    m = len(snp)
    if m == 0:
        raise UserError("no variant records after the header", path=path, line=n_header)

    def token_of(field, i):
        key = {"z": "EZ", "beta": "ES", "se": "SE", "freq": "AF", "n": "SS", "info": "SI",
               "a1": "ALT", "a2": "REF", "bp": "POS"}[field]
        if key == "ALT":
            return a1[i]
        if key == "REF":
            return a2[i]
        if key == "POS":
            return str(bp[i])
        return repr(float(vals[key][i]))

    for key in wanted:  # htslib stores VCF floats as float32: back to the decimal written
        vals[key] = _float32_decimal(vals[key])
    names = {"z": "EZ", "beta": "ES", "se": "SE", "freq": "AF", "n": "SS", "info": "SI", "a1": "ALT",
             "a2": "REF", "bp": "POS", "chrom": "CHROM"}
    checker = _Checker(path, lambda i: line_no[i], token_of, names)
    cols: dict = {"snp": snp, "chrom": chrom, "bp": np.asarray(bp, dtype=np.float64), "a1": a1, "a2": a2}
    present = {"snp": "ID", "chrom": "CHROM", "bp": "POS", "a1": "ALT", "a2": "REF"}
    if "EZ" in eff_fields:
        cols["z"] = vals["EZ"]
        cols["z?"] = np.ones(m, dtype=bool)
        present["z"] = "EZ"
    else:
        for f, key in (("beta", "ES"), ("se", "SE")):
            cols[f] = vals[key]
            cols[f + "?"] = np.ones(m, dtype=bool)
        present["z"] = "ES/SE"
    if use_ss:
        cols["n"] = vals["SS"]
        cols["n?"] = np.ones(m, dtype=bool)
        present["n"] = "SS"
    if has_af:
        cols["freq"] = vals["AF"]
        present["freq"] = "AF"
    if has_si:
        cols["info"] = vals["SI"]
        present["info"] = "SI"
    return _finish(cols, present, checker, n=n, path=path, fmt_name="gwas-vcf", mode="vcf", m=m)


# ----------------------------------------------------------------------------------------
# quality filters

#: Filter reasons, in the order they are applied (each row is counted once).
FILTER_REASONS = ("non_autosomal", "low_info", "low_maf", "multi_allelic")

#: Defaults of ``varfx ingest --info-min`` / ``--maf-min`` (see docs/formats.md for why).
INFO_MIN = 0.6
MAF_MIN = 0.001


def _check_threshold(value, option, lo, hi):
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise UserError(f"option {option}: expected a number in [{lo}, {hi}], got {value!r}") from None
    if not (lo <= v <= hi):
        raise UserError(f"option {option}: expected a number in [{lo}, {hi}], got {value!r}")
    return v


def filter_sumstats(ss: Sumstats, *, info_min: float = INFO_MIN, maf_min: float = MAF_MIN,
                    keep_multi_allelic: bool = False) -> tuple[np.ndarray, dict]:
    """Quality filters applied before harmonisation; returns ``(keep mask, counts)``.

    In this order (a row removed by one is not counted by the next):

    - ``non_autosomal``: a chromosome other than 1-22 (X, Y, XY, MT, other contigs);
      rows with no chromosome are kept (they are matched by id);
    - ``low_info``: INFO below ``info_min`` (rows with no INFO value are kept);
    - ``low_maf``: minor allele frequency ``min(freq, 1 - freq)`` below ``maf_min``, from
      the sumstats frequency (rows with no frequency are kept);
    - ``multi_allelic``: a position (chromosome + bp) with more than one allele pair
      among the remaining rows (an SNV pair and its strand complement are one pair):
      every row at it is removed, unless ``keep_multi_allelic``.
    """
    from .harmonise import multi_allelic_mask

    info_min = _check_threshold(info_min, "--info-min", 0, 1)
    maf_min = _check_threshold(maf_min, "--maf-min", 0, 0.5)
    m = ss.n_variants
    keep = np.ones(m, dtype=bool)
    counts = {}
    chrom = ss["chrom"]
    bad = (chrom >= 0) & ~((chrom >= 1) & (chrom <= 22))
    counts["non_autosomal"] = int(bad.sum())
    keep &= ~bad
    info = ss.get("info")
    if info is not None and info_min > 0:
        bad = keep & np.isfinite(info) & (info < info_min)
    else:
        bad = np.zeros(m, dtype=bool)
    counts["low_info"] = int(bad.sum())
    keep &= ~bad
    fr = ss["freq"]
    if maf_min > 0:
        maf = np.minimum(fr, 1.0 - fr)
        bad = keep & np.isfinite(maf) & (maf < maf_min)
    else:
        bad = np.zeros(m, dtype=bool)
    counts["low_maf"] = int(bad.sum())
    keep &= ~bad
    if keep_multi_allelic:
        bad = np.zeros(m, dtype=bool)
    else:
        bad = np.zeros(m, dtype=bool)
        idx = np.flatnonzero(keep)
        if idx.size:
            bad[idx] = multi_allelic_mask(ss["chrom"][idx], ss["bp"][idx], ss["a1"][idx], ss["a2"][idx])
    counts["multi_allelic"] = int(bad.sum())
    keep &= ~bad
    return keep, counts

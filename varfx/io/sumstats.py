"""GWAS summary statistics: detect the format from the header and parse it with numpy.

Formats (see ``docs/formats.md``) are :class:`SumstatsFormat` records in
:data:`FORMATS`, tried in order; the first whose *signature* columns are all in the
header is used.  A new format (BOLT-LMM, GWAS-SSF, ...) is one more record; a format
that is not a whitespace-separated table (GWAS-VCF) supplies its own ``reader``.

:func:`read_sumstats` returns a :class:`Sumstats` (a ``dict`` of numpy arrays, one row
per variant, in file order):

============ ======================================================================
``snp``       variant id (``str``)
``chrom``     ``int64`` chromosome (X=23, Y=24, XY=25, MT=26), -1 when missing
``bp``        ``int64`` base-pair position, -1 when missing
``a1``        effect allele (upper-case ``str``): Z and ``freq`` refer to it
``a2``        other allele (upper-case ``str``)
``z``         ``float64`` Z score of ``a1`` (``BETA/SE`` where the file has no Z)
``n``         ``float64`` sample size (the ``N`` column, or ``n=`` for every row)
``freq``      ``float64`` frequency of ``a1``, NaN where the file has none
============ ======================================================================
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import UserError
from .plink import parse_chrom

#: Tokens read as "missing" in optional numeric columns (CHR, BP, frequency).
MISSING_TOKENS = frozenset({"", "NA", "NAN", "N/A", ".", "NONE", "NULL", "-"})


@dataclass(frozen=True)
class SumstatsFormat:
    """One summary-statistics table format.

    ``columns`` maps a canonical field (``snp chrom bp a1 a2 z beta se n freq``) to the
    header names it may have (matched case-insensitively).  ``required`` fields must be
    present; ``signature`` is the set of fields whose presence identifies the format.
    """

    name: str
    description: str
    columns: dict[str, tuple[str, ...]]
    required: tuple[str, ...]
    signature: tuple[str, ...]
    reader: Callable | None = None  # custom reader(path, n) -> Sumstats, for non-table formats

    def expected(self) -> str:
        parts = []
        for f, names in self.columns.items():
            name = names[0]
            parts.append(name if f in self.required else f"[{name}]")
        return " ".join(parts)


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
    },
    required=("snp", "a1", "a2", "z"),
    signature=("snp", "a1", "a2", "z"),
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
    },
    required=("snp", "a1", "a2", "beta", "se"),
    signature=("snp", "a1", "a2", "beta", "se"),
)

#: Formats tried in order.  Later issues add BOLT-LMM, GWAS-SSF and GWAS-VCF here.
FORMATS: list[SumstatsFormat] = [LDSC, FASTGWA]


class Sumstats(dict):
    """A dict of per-variant numpy arrays, plus what was read: ``path``, ``format``,
    ``n_source`` ("column" or "option") and ``has_position`` (CHR and BP columns)."""

    def __init__(self, *args, path=None, format=None, n_source=None, has_position=False, **kw):
        super().__init__(*args, **kw)
        self.path = path
        self.format = format
        self.n_source = n_source
        self.has_position = has_position

    @property
    def n_variants(self) -> int:
        return int(len(self["snp"])) if "snp" in self else 0


# ----------------------------------------------------------------------------------------
# reading text


def read_text(path) -> str:
    """The whole text of a plain or gzip-compressed file (detected from its first bytes)."""
    path = Path(path)
    if not path.exists():
        raise UserError("no such file", path=path)
    if path.is_dir():
        raise UserError("is a directory, expected a summary-statistics file", path=path)
    with open(path, "rb") as fh:
        data = fh.read()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise UserError(f"corrupt or truncated gzip file ({exc})", path=path) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"not a text file (byte {exc.start} is not UTF-8)", path=path) from None


def _header_index(text: str) -> int:
    """0-based line number of the header: the first non-blank line not starting with ##."""
    pos, i = 0, 0
    while pos <= len(text):
        nl = text.find("\n", pos)
        end = len(text) if nl < 0 else nl
        line = text[pos:end]
        if line.strip() and not line.startswith("##"):
            return i
        if nl < 0:
            return -1
        pos, i = nl + 1, i + 1
    return -1


_WS = np.zeros(256, dtype=bool)
_WS[[9, 10, 11, 12, 13, 32]] = True


def _split_table(text: str, h: int, ncol: int, path):
    """Split the lines after the header (line ``h``) into ``ncol`` whitespace-separated
    fields.  Returns ``(column(j) -> list of str, kept)`` where ``kept`` holds, for each
    data row, its 0-based line offset after the header (blank lines are skipped).

    Vectorised: one ``str.split()`` for all tokens and a numpy pass over the bytes to
    count the fields of every line; a per-line split only when non-ASCII whitespace
    makes the two disagree.
    """
    parts = text.split("\n", h + 1)
    body = parts[h + 1] if len(parts) > h + 1 else ""
    tokens = body.split()
    raw = np.frombuffer(body.encode("utf-8"), dtype=np.uint8)
    if raw.size:
        ws = _WS[raw]
        starts = ~ws
        starts[1:] &= ws[:-1]
        line_starts = np.concatenate(([0], np.flatnonzero(raw == 10) + 1))
        line_starts = line_starts[line_starts < raw.size]
        token_starts = np.flatnonzero(starts)
        first = np.searchsorted(token_starts, line_starts)  # first token at/after each line start
        counts = np.diff(np.append(first, token_starts.size))
    else:
        counts = np.zeros(0, dtype=np.int64)
    if int(counts.sum()) != len(tokens):  # unicode whitespace: split line by line
        rows = [line.split() for line in body.split("\n")]
        counts = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
        tokens = [t for r in rows for t in r]
    kept = np.flatnonzero(counts > 0)
    if kept.size == 0:
        raise UserError("no data rows after the header", path=path, line=h + 1)
    bad = np.flatnonzero(counts[kept] != ncol)
    if bad.size:
        i = int(kept[bad[0]])
        raise UserError(f"expected {ncol} fields (as in the header), found {counts[i]}", path=path, line=h + 2 + i)

    def column(j):
        return tokens[j::ncol]

    return column, kept


def _find_format(header_upper: list[str], path) -> SumstatsFormat:
    present = set(header_upper)

    def has(fmt, f):
        return any(name in present for name in fmt.columns.get(f, ()))

    for fmt in FORMATS:
        if fmt.reader is None and all(has(fmt, f) for f in fmt.signature):
            return fmt
    # No format matches: blame the closest one and name what it misses.
    best = max(FORMATS, key=lambda fmt: sum(has(fmt, f) for f in fmt.signature) / len(fmt.signature))
    missing = [fmt_f for fmt_f in best.required if not has(best, fmt_f)]
    names = " or ".join(best.columns[missing[0]]) if missing else "?"
    raise UserError(
        f"missing required column {names} (closest format: {best.description}); "
        f"header is: {' '.join(header_upper)}",
        path=path,
    )


def _to_float(tokens, path, column, lines_of, *, optional=False) -> np.ndarray:
    """Vectorised str -> float64, naming the first bad token's line and column."""
    try:
        return np.array(tokens, dtype=np.float64)
    except (ValueError, TypeError):
        if optional:
            tokens = [np.nan if t.upper() in MISSING_TOKENS else t for t in tokens]
            try:
                return np.array(tokens, dtype=np.float64)
            except (ValueError, TypeError):
                pass
        for i, t in enumerate(tokens):
            try:
                float(t)
            except (ValueError, TypeError):
                raise UserError(f"expected a number, found {t!r}", path=path, line=lines_of(i), column=column) from None
        raise  # pragma: no cover


def read_sumstats(path, n=None, *, columns: dict[str, str] | None = None) -> Sumstats:
    """Read summary statistics (LDSC or fastGWA, plain or gzipped).

    ``n`` is the sample size for every variant; it is required when the file has no N
    column and, when given, replaces that column.  ``columns`` overrides the header
    name of canonical fields (e.g. ``{"z": "ZSCORE"}``).  Raises :class:`UserError` on
    bad input, naming the file, line and column.
    """
    path = Path(path)
    if n is not None:
        try:
            n = float(n)
        except (TypeError, ValueError):
            raise UserError(f"option --n: expected a positive number, got {n!r}") from None
        if not (np.isfinite(n) and n > 0):
            raise UserError(f"option --n: expected a positive number, got {n!r}")

    text = read_text(path)
    h = _header_index(text)
    if h < 0:
        raise UserError("empty file: expected a header line and one line per variant", path=path)
    header = text.split("\n", h + 1)[h].split()
    if header and header[0].startswith("#"):
        header[0] = header[0].lstrip("#")
    header_upper = [c.upper() for c in header]
    if columns:
        header_upper = _apply_overrides(header_upper, columns, path)
    fmt = _find_format(header_upper, path)
    if fmt.reader is not None:  # pragma: no cover - for formats that are not tables
        return fmt.reader(path, n)

    dup = {c for c in header_upper if header_upper.count(c) > 1}
    col_index: dict[str, int] = {}
    col_name: dict[str, str] = {}
    for f, names in fmt.columns.items():
        for name in names:
            if name in header_upper:
                if name in dup:
                    raise UserError(f"column {name} appears more than once in the header", path=path, line=h + 1)
                col_index[f] = header_upper.index(name)
                col_name[f] = header[col_index[f]]
                break
    for f in fmt.required:
        if f not in col_index:  # pragma: no cover - _find_format checked the signature
            raise UserError(f"missing required column {fmt.columns[f][0]}; header is: {' '.join(header)}", path=path)

    ncol = len(header)
    cols_of, kept = _split_table(text, h, ncol, path)
    first_line = h + 2  # 1-based number of the first line after the header

    def lines_of(i):
        return first_line + int(kept[i])

    def col(f):
        return cols_of(col_index[f])

    m = len(kept)
    out = Sumstats(path=path, format=fmt.name, has_position="chrom" in col_index and "bp" in col_index)
    out["snp"] = np.array(col("snp"))
    for f in ("a1", "a2"):
        out[f] = np.char.upper(np.array(col(f)))

    if "chrom" in col_index:
        tokens = np.array(col("chrom"))
        uniq, inv = np.unique(tokens, return_inverse=True)
        out["chrom"] = np.array([parse_chrom(u) for u in uniq], dtype=np.int64)[inv]
    else:
        out["chrom"] = np.full(m, -1, dtype=np.int64)
    if "bp" in col_index:
        bp = _to_float(col("bp"), path, col_name["bp"], lines_of, optional=True)
        bad = np.isfinite(bp) & ((bp < 0) | (bp != np.round(bp)))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise UserError(f"expected a non-negative integer position, found {col('bp')[i]!r}", path=path, line=lines_of(i), column=col_name["bp"])
        out["bp"] = np.where(np.isfinite(bp), bp, -1).astype(np.int64)
    else:
        out["bp"] = np.full(m, -1, dtype=np.int64)

    if "z" in col_index:
        z = _to_float(col("z"), path, col_name["z"], lines_of)
        bad = ~np.isfinite(z)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise UserError(f"Z is not finite ({col('z')[i]}): expected a finite number", path=path, line=lines_of(i), column=col_name["z"])
    else:
        beta = _to_float(col("beta"), path, col_name["beta"], lines_of)
        se = _to_float(col("se"), path, col_name["se"], lines_of)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = beta / se
        bad = ~np.isfinite(z) | ~(se > 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise UserError(
                f"Z = BETA/SE is not finite or SE is not positive (BETA={col('beta')[i]}, SE={col('se')[i]})",
                path=path, line=lines_of(i),
            )
    out["z"] = z

    if n is not None:
        out["n"] = np.full(m, n)
        out.n_source = "option"
    elif "n" in col_index:
        nn = _to_float(col("n"), path, col_name["n"], lines_of)
        bad = ~(np.isfinite(nn) & (nn > 0))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise UserError(f"expected a positive sample size, found {col('n')[i]}", path=path, line=lines_of(i), column=col_name["n"])
        out["n"] = nn
        out.n_source = "column"
    else:
        raise UserError(f"no N column (header is: {' '.join(header)}) and no --n given: pass the sample size with --n", path=path)

    if "freq" in col_index:
        fr = _to_float(col("freq"), path, col_name["freq"], lines_of, optional=True)
        bad = np.isfinite(fr) & ((fr < 0) | (fr > 1))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise UserError(f"expected an allele frequency in [0, 1], found {col('freq')[i]}", path=path, line=lines_of(i), column=col_name["freq"])
        out["freq"] = fr
    else:
        out["freq"] = np.full(m, np.nan)
    return out


#: The header name an override (``columns={field: name}``) renames a column to.
CANONICAL_HEADER = {"snp": "SNP", "chrom": "CHR", "bp": "BP", "a1": "A1", "a2": "A2", "z": "Z",
                    "beta": "BETA", "se": "SE", "n": "N", "freq": "FREQ"}


def _apply_overrides(header_upper: list[str], columns: dict[str, str], path) -> list[str]:
    """Rename overridden columns to their canonical header names (and move clashes aside)."""
    out = list(header_upper)
    targets = {}
    for f, name in columns.items():
        if f not in CANONICAL_HEADER:
            raise UserError(f"unknown sumstats field {f!r} in a column override (fields: {', '.join(CANONICAL_HEADER)})")
        if name.upper() not in header_upper:
            raise UserError(f"column {name} (given for {f}) is not in the header: {' '.join(header_upper)}", path=path)
        targets[header_upper.index(name.upper())] = CANONICAL_HEADER[f]
    for i, c in enumerate(out):
        if i not in targets and c in targets.values():
            out[i] = f"{c}#UNUSED"
    for i, c in targets.items():
        out[i] = c
    return out

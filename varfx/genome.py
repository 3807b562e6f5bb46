"""Genome primitives shared by every reader: chromosome names, alleles, missing values,
plain/gzip text.

One implementation of each, so that a chromosome spelt ``chr22``, ``"22"`` (quoted, as R's
``write.table`` writes it) or ``22`` with a UTF-8 byte-order mark in front means the same
chromosome in summary statistics, PLINK and VCF panels, UKBB region files, chain files,
long-range LD lists and feature tracks.

- :func:`chrom_code`: a chromosome name -> PLINK numbering (1-22, X 23, Y 24, XY 25,
  MT 26), ``-1`` for anything else (``0``, ``chr1_random``, ``GL000220.1``, blanks);
  :func:`chrom_codes` does the same for an array, :func:`chrom_label` goes back.
- :func:`unquote`: one pair of surrounding double (or single) quotes removed.
- :data:`MISSING_TOKENS` / :func:`is_missing`: the spellings of a missing value.
- :func:`complement` (one base) and :func:`complement_allele` (a whole ACGT allele,
  reverse-complemented as a strand flip requires).
- :func:`is_gzip`, :func:`read_bytes`, :func:`read_text`, :func:`open_text`: plain or
  gzip files (detected from the magic bytes, never from the name), a leading UTF-8 BOM
  removed, one-line :class:`~varfx.errors.UserError` for what cannot be read.
- :func:`parse_region`: ``22:16000000-17000000`` -> a :class:`GenomeRegion`.

Nothing heavy is imported here (numpy only inside the array helpers).
"""

from __future__ import annotations

import gzip
import io
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError

#: PLINK codes of the non-numeric chromosomes (``M`` is UCSC's name of ``MT``).
CHROM_CODES = {"X": 23, "Y": 24, "XY": 25, "MT": 26, "M": 26}
CHROM_LABELS = {23: "X", 24: "Y", 25: "XY", 26: "MT"}

#: Tokens read as "missing" (compare upper-cased, see :func:`is_missing`).  ``#NA`` is the
#: GWAS-SSF spelling, ``.`` the VCF one, ``-`` PLINK's.
MISSING_TOKENS = frozenset({"", "NA", "NAN", "N/A", ".", "NONE", "NULL", "-", "#NA"})

GZIP_MAGIC = b"\x1f\x8b"
BOM = b"\xef\xbb\xbf"

_BASES = frozenset("ACGT")
#: ``str.translate`` table of base complements (either case; other letters unchanged)
COMPLEMENT_TABLE = str.maketrans("ACGTacgt", "TGCAtgca")
_COMP = COMPLEMENT_TABLE


# ------------------------------------------------------------------------------ tokens


def unquote(token: str) -> str:
    """``'"22"'`` -> ``'22'``; one pair of matching surrounding quotes, after trimming blanks
    (a BOM included: Python's ``str.strip`` keeps U+FEFF)."""
    t = token.strip().lstrip("\ufeff").strip()
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "\"'":
        t = t[1:-1].strip()
    return t


def is_missing(token) -> bool:
    """Whether a token spells a missing value (case-insensitive, quotes and blanks ignored)."""
    return unquote(str(token)).upper() in MISSING_TOKENS


# ------------------------------------------------------------------------------ chromosomes


def chrom_code(token) -> int:
    """``22``, ``"22"``, ``"chr22"``, ``'"22"'``, ``"X"``, ``"chrX"`` -> 22, 22, 22, 22, 23,
    23; ``"chrM"``/``"MT"`` -> 26; anything else (``"0"``, ``"chr1_random"``,
    ``"GL000220.1"``, ``""``) -> -1."""
    if isinstance(token, bool):
        return -1
    if isinstance(token, int):
        return int(token) if token > 0 else -1
    if isinstance(token, bytes):
        token = token.decode("utf-8", errors="replace")
    t = unquote(str(token))
    if t[:3].lower() == "chr":
        t = t[3:]
    if t.isdigit() and t.isascii():
        c = int(t)
        return c if c > 0 else -1
    return CHROM_CODES.get(t.upper(), -1)


def chrom_label(code: int) -> str:
    """23 -> ``"X"``, 22 -> ``"22"`` (how messages name a chromosome)."""
    code = int(code)
    return CHROM_LABELS.get(code, str(code))


def chrom_codes(chrom):
    """An int64 array of chromosome codes from codes or names (unknown names -> -1).

    Names are parsed once per distinct value, so a million rows of one chromosome cost
    one :func:`chrom_code` call."""
    import numpy as np

    arr = np.asarray(chrom)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64).reshape(-1)
    if arr.dtype.kind == "f":
        return np.where(np.isfinite(arr), arr, -1).astype(np.int64).reshape(-1)
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    uniq, inv = np.unique(arr.astype(str), return_inverse=True)
    codes = np.array([chrom_code(u) for u in uniq], dtype=np.int64)
    return codes[inv.reshape(-1)]


# ------------------------------------------------------------------------------ alleles


def complement(allele: str) -> str | None:
    """The complementary base of a single-base ACGT allele (upper case), else None."""
    if len(allele) == 1 and allele in _BASES:
        return allele.translate(_COMP)
    return None


def complement_allele(allele: str) -> str:
    """The allele on the other strand: reverse complement (``"ACT"`` -> ``"AGT"``), so that a
    multi-base allele read 5'->3' on the minus strand is the plus-strand one.  Letters
    other than ACGT are kept as they are."""
    return allele.translate(_COMP)[::-1]


def is_acgt(allele: str) -> bool:
    """Whether an allele is one or more of A, C, G, T (upper case)."""
    return bool(allele) and all(c in _BASES for c in allele)


# ------------------------------------------------------------------------------ files


def is_gzip(path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == GZIP_MAGIC


def _check_file(path: Path, what: str) -> None:
    if not path.exists():
        raise UserError(f"no such file (expected {what})", path=path)
    if path.is_dir():
        raise UserError(f"is a directory, expected {what}", path=path)


def read_bytes(path, what: str, *, strip_bom: bool = False) -> bytes:
    """The content of a plain or gzip-compressed file (detected from its first bytes).

    ``what`` names the expected file (e.g. ``"a UCSC chain file"``) in the errors for a
    missing file, a directory, or a corrupt or truncated gzip stream.  ``strip_bom``
    removes a leading UTF-8 byte-order mark (Excel and PowerShell write one).
    """
    path = Path(path)
    _check_file(path, what)
    data = path.read_bytes()
    if data[:2] == GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise UserError(f"corrupt or truncated gzip file ({exc}); expected {what}", path=path) from None
    if strip_bom and data.startswith(BOM):
        data = data[len(BOM):]
    return data


def read_text(path, what: str) -> str:
    """The whole text of a plain or gzip file, UTF-8, without a leading BOM."""
    data = read_bytes(path, what, strip_bom=True)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"not a text file (byte {exc.start} is not UTF-8; expected {what})", path=Path(path)) from None


def open_text(path, what: str = "a text file"):
    """A text stream of a plain or gzip file (UTF-8; ``newline=""`` keeps ``\\r`` visible
    to the caller), positioned after a leading BOM.  Decoding errors surface when read."""
    path = Path(path)
    _check_file(path, what)
    raw = gzip.open(path, "rb") if is_gzip(path) else open(path, "rb")
    try:
        # utf-8-sig drops a BOM at the start and reads plain UTF-8 otherwise
        return io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
    except BaseException:  # pragma: no cover - TextIOWrapper does not fail on a fresh stream
        raw.close()
        raise


# ------------------------------------------------------------------------------ regions

_REGION_RE = re.compile(r"^([^:\s]+)(?::([\d,]+)?(?:-([\d,]*))?)?$")


@dataclass(frozen=True)
class GenomeRegion:
    """A region as written by the user (``chrom`` keeps the spelling, for index lookups),
    its chromosome code, and 1-based inclusive ``start``/``end`` (None: open)."""

    text: str
    chrom: str
    code: int
    start: int | None
    end: int | None

    def contains(self, chrom, bp):
        """Boolean mask over variants (chromosome codes or names, 1-based positions)."""
        import numpy as np

        bp = np.asarray(bp, dtype=np.int64)
        inside = chrom_codes(chrom) == self.code
        if self.start is not None:
            inside &= bp >= self.start
        if self.end is not None:
            inside &= bp <= self.end
        return inside


def parse_region(text: str, option: str | None = None) -> GenomeRegion:
    """``"chr22:1,000-2,000"`` -> chromosome 22, 1000..2000 (1-based inclusive); ``"22"`` the
    whole chromosome, ``"22:500"`` one base, ``"22:500-"`` from 500 on.  The chromosome must
    be one of 1-22, X, Y, XY, MT (with or without ``chr``): ``banana`` is an error.
    ``option`` names the option in the error (``--ld-region``)."""
    where = f"option {option}: " if option else ""
    example = "expected CHROM, CHROM:START-END or CHROM:START- (e.g. 22:16000000-17000000)"
    m = _REGION_RE.match(str(text).strip())
    if not m:
        raise UserError(f"{where}bad region {text!r}: {example}")
    chrom, s, e = m.group(1), m.group(2), m.group(3)
    code = chrom_code(chrom)
    if code < 0:
        raise UserError(f"{where}bad region {text!r}: unknown chromosome {chrom!r} (expected 1-22, X, Y, XY or MT, "
                        f"with or without 'chr'); {example}")
    try:
        start = int(s.replace(",", "")) if s else None
        end = int(e.replace(",", "")) if e else None
    except ValueError:  # e.g. "22:1,,-": commas only
        raise UserError(f"{where}bad region {text!r}: {example}") from None
    if s and m.group(3) is None:  # "22:1000": a single base
        end = start
    if start is not None and start < 1:
        raise UserError(f"{where}bad region {text!r}: positions are 1-based (start >= 1)")
    if start is not None and end is not None and end < start:
        raise UserError(f"{where}bad region {text!r}: end before start")
    return GenomeRegion(str(text).strip(), chrom, code, start, end)

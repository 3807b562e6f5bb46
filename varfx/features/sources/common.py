"""Shared by the built-in feature sources: constants, option types, opening and sniffing files."""

from __future__ import annotations

import gzip

from varfx.genome import chrom_code
from varfx.genome import GZIP_MAGIC
from varfx.genome import open_text


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

"""Reference DNA around each variant: a reference FASTA (with its ``.fai``) read with
``pysam.FastaFile``, one-hot encoded for sequence models (MIFM-style channels).

``one_hot(fasta, chrom, pos, window=256)`` returns ``(n, window, 5)`` uint8: channels
``A, C, G, T`` and ``V``, the variant token (1 at the variant's own position, offset
``window // 2``, when ``variant_token``).  The window covers positions
``pos - window//2 .. pos - window//2 + window - 1`` (1-based), like every feature window.
``N`` (and any other IUPAC code) is all zero in A, C, G, T; lower-case (soft-masked)
bases are encoded like upper-case ones; positions before the chromosome start or past
its end (a variant near an end) are all zero.  A variant *itself* past the chromosome
end is an error (wrong genome build).  Chromosomes match with or without ``chr``.

The ``fasta`` feature source (a manifest kind, and what ``--fasta`` adds) stores this
one-hot window in ``features/sequence`` and the window's GC fraction as a scalar feature.
pysam is imported inside the functions.
"""

from __future__ import annotations

from pathlib import Path

from varfx.api import Option
from varfx.errors import UserError
from varfx.genome import COMPLEMENT_TABLE, GZIP_MAGIC

from .sources import (
    BaseFeatureSource,
    _check_positions,
    _head_lines,
    as_chrom_codes,
    boolean,
    by_chromosome,
    chrom_label,
    contig_lookup,
    gather_windows,
    window_starts,
)

CHANNELS = ("A", "C", "G", "T", "V")
#: fetches of nearby windows are merged below this gap (pysam costs ~2 us per fetch)
FASTA_MERGE_GAP = 512
_N = 4


def _lut():
    import numpy as np

    lut = np.full(256, _N, dtype=np.uint8)
    for i, b in enumerate("ACGT"):
        lut[ord(b)] = i
        lut[ord(b.lower())] = i
    return lut


def _fai_path(path: Path) -> Path:
    return path.with_name(path.name + ".fai")


def open_fasta(path):
    """``pysam.FastaFile`` for ``path``; its ``.fai`` index must exist (``samtools faidx``
    or ``pysam.faidx`` makes it), and for a bgzip-compressed FASTA its ``.gzi`` too."""
    if not isinstance(path, (str, Path)):
        return path  # already open
    try:
        import pysam
    except ImportError:
        raise UserError("reading a FASTA needs pysam (pip install pysam)", path=path) from None
    path = Path(path)
    if not path.is_file():
        raise UserError("no such FASTA file", path=path)
    if not _fai_path(path).is_file():
        raise UserError(f"no FASTA index {_fai_path(path).name}: expected a .fai next to the FASTA "
                        f"(make it with: samtools faidx {path.name})", path=path)
    with open(path, "rb") as fh:
        gz = fh.read(2) == GZIP_MAGIC
    if gz and not path.with_name(path.name + ".gzi").is_file():
        raise UserError("compressed FASTA without a .gzi index: expected a bgzip-compressed FASTA indexed with "
                        "samtools faidx (or an uncompressed FASTA)", path=path)
    try:
        return pysam.FastaFile(str(path))
    except (OSError, ValueError) as exc:
        raise UserError(f"could not open this FASTA with its index ({exc})", path=path) from None


def sequence_codes(fasta, chrom, pos, *, window: int = 256):
    """``(n, window)`` uint8 base codes: 0..3 for A, C, G, T (either case), 4 for N,
    other IUPAC codes and positions beyond the chromosome ends."""
    import numpy as np

    path = fasta if isinstance(fasta, (str, Path)) else getattr(fasta, "filename", "FASTA")
    if isinstance(path, bytes):
        path = path.decode()
    fa = open_fasta(fasta)
    close = fa is not fasta
    codes = as_chrom_codes(chrom)
    pos = np.asarray(pos, dtype=np.int64)
    window = int(window)
    out = np.full((len(pos), window), _N, dtype=np.uint8)
    lut = _lut()
    try:
        lengths = dict(zip(fa.references, fa.lengths))
        names = contig_lookup(fa.references)
        for code, idx in by_chromosome(codes, pos):
            label = chrom_label(code) if code > 0 else str(np.asarray(chrom)[idx[0]])
            if code not in names:
                have = ", ".join(list(fa.references)[:8]) + (", ..." if len(fa.references) > 8 else "")
                raise UserError(f"no chromosome {label} in this FASTA (it has: {have})", path=path)
            cname = names[code]
            L = int(lengths[cname])
            p = pos[idx]
            _check_positions(path, label, p, L, "FASTA")

            def fetch(s, e, _c=cname, _L=L):
                seg = np.full(e - s, _N, dtype=np.uint8)
                a, b = max(s, 0), min(e, _L)
                if b > a:
                    seq = fa.fetch(_c, a, b).encode("ascii", "replace")
                    seg[a - s:a - s + len(seq)] = lut[np.frombuffer(seq, dtype=np.uint8)]
                return seg

            out[idx] = gather_windows(fetch, window_starts(p, window), window, dtype=np.uint8,
                                      merge_gap=FASTA_MERGE_GAP)
    finally:
        if close:
            fa.close()
    return out


def codes_to_one_hot(codes, *, variant_token: bool = True):
    """``(n, window)`` base codes -> ``(n, window, 5)`` uint8 one-hot (A, C, G, T, V)."""
    import numpy as np

    table = np.zeros((5, 5), dtype=np.uint8)
    table[np.arange(4), np.arange(4)] = 1
    out = table[codes]
    if variant_token and codes.shape[1] > 0:
        out[:, codes.shape[1] // 2, 4] = 1
    return out


def one_hot(fasta, chrom, pos, *, window: int = 256, variant_token: bool = True, alt=None):
    """One-hot reference windows ``(n, window, 5)`` uint8 (channels A, C, G, T, V).

    ``fasta``: a path (its ``.fai`` must exist) or an open ``pysam.FastaFile``;
    ``chrom``: codes (22, 23 = X) or names (``"chr22"``, ``"X"``); ``pos``: 1-based.
    ``alt``: optional per-variant alleles; where one is a single base (A, C, G, T) it
    replaces the reference base at the variant's position (offset ``window // 2``), so
    the window shows the sequence carrying that allele.  Other alleles (indels, ``N``,
    ``-``) leave the reference base.  ``V`` marks the variant position either way.
    """
    import numpy as np

    codes = sequence_codes(fasta, chrom, pos, window=window)
    if alt is not None and len(codes) and window > 0:
        alt = np.asarray(alt).astype(str)
        if len(alt) != len(codes):
            raise UserError(f"alt: {len(alt)} alleles for {len(codes)} variants")
        up = np.char.upper(alt)
        single = np.char.str_len(up) == 1
        base = np.full(len(up), _N, dtype=np.uint8)
        for i, b in enumerate("ACGT"):
            base[single & (up == b)] = i
        ok = base < _N
        codes[ok, window // 2] = base[ok]
    return codes_to_one_hot(codes, variant_token=variant_token)


def reference_bases(fasta, chrom, pos):
    """The reference base at each position (upper-case, ``N`` for anything else)."""
    import numpy as np

    c = sequence_codes(fasta, chrom, pos, window=1)[:, 0]
    return np.array(list("ACGTN"))[c]


def reference_match(fasta, chrom, pos, a1, a2) -> dict:
    """How many single-base variants have the FASTA base as one of their alleles (or
    its complement): a check that the FASTA and the variants share a genome build."""
    import numpy as np

    a1 = np.char.upper(np.asarray(a1).astype(str))
    a2 = np.char.upper(np.asarray(a2).astype(str))
    snv = (np.char.str_len(a1) == 1) & (np.char.str_len(a2) == 1)
    if not snv.any():
        return {"checked": 0, "match": 0, "fraction": None}
    ref = reference_bases(fasta, np.asarray(chrom)[snv], np.asarray(pos)[snv])
    comp = np.char.translate(ref.astype(str), COMPLEMENT_TABLE)  # single bases: no reversal needed
    x, y = a1[snv], a2[snv]
    m = ((ref == x) | (ref == y) | (comp == x) | (comp == y)) & (ref != "N")
    return {"checked": int(snv.sum()), "match": int(m.sum()), "fraction": float(m.mean())}


class FastaSource(BaseFeatureSource):
    """Reference sequence around each variant: one-hot window and GC fraction."""

    name = "fasta"
    description = "reference FASTA with .fai (pysam): one-hot A,C,G,T + variant token window, and GC fraction"
    options = {
        "variant_token": Option(boolean, True, "add the V channel marking the variant position"),
        "gc": Option(boolean, True, "add the GC fraction of the window as a scalar feature"),
    }
    missing_chromosome_is_error = True
    track_store = "sequence"

    @classmethod
    def sniff(cls, path) -> bool:
        name = Path(path).name.lower()
        if name.endswith((".fa", ".fasta", ".fna", ".fa.gz", ".fasta.gz", ".fna.gz")):
            return True
        lines = _head_lines(path, n=1)
        return bool(lines) and lines[0].startswith(">")

    def columns(self, path, *, variants=None) -> list[str]:
        return ["gc"] if self.config["gc"] else []

    def track_channels(self, path) -> list[str]:
        return list(CHANNELS)

    @staticmethod
    def _gc(codes):
        import numpy as np

        acgt = (codes < _N).sum(axis=1)
        gc = ((codes == 1) | (codes == 2)).sum(axis=1)
        return np.where(acgt > 0, gc / np.maximum(acgt, 1), 0.0)

    def read(self, path, chrom, pos, *, window=256, variants=None):
        import numpy as np

        if not self.config["gc"]:
            return np.zeros((len(pos), 0))
        return self._gc(sequence_codes(path, chrom, pos, window=window))[:, None]

    def prepare(self, path, chrom, pos, *, variants=None) -> None:
        variants = variants or {}
        if "a1" in variants and "a2" in variants and len(pos):
            import numpy as np

            # a build check on up to 10,000 evenly spread variants
            take = np.unique(np.linspace(0, len(pos) - 1, min(len(pos), 10_000)).astype(np.int64))
            self.last_info = {"reference_match": reference_match(
                path, np.asarray(chrom)[take], np.asarray(pos)[take],
                np.asarray(variants["a1"])[take], np.asarray(variants["a2"])[take])}
        open_fasta(path).close()

    def read_track(self, path, chrom, pos, *, window=256, variants=None):
        return codes_to_one_hot(sequence_codes(path, chrom, pos, window=window),
                                variant_token=self.config["variant_token"])

    def extract(self, path, chrom, pos, *, window=256, track_window=256, variants=None):
        import numpy as np

        if int(window) != int(track_window):
            return super().extract(path, chrom, pos, window=window, track_window=track_window, variants=variants)
        codes = sequence_codes(path, chrom, pos, window=window)
        scalar = self._gc(codes)[:, None] if self.config["gc"] else np.zeros((len(pos), 0))
        return scalar, codes_to_one_hot(codes, variant_token=self.config["variant_token"])

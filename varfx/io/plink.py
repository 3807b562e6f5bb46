"""PLINK 1 binary genotype panels (``.bed/.bim/.fam``), read with numpy.

The ``.bed`` file must be SNP-major: three magic bytes ``0x6c 0x1b 0x01`` then, for each
``.bim`` variant, ``ceil(n_people / 4)`` bytes holding 2 bits per person (lowest bits
first).  Genotype codes: ``00`` homozygous A1, ``01`` missing, ``10`` heterozygous,
``11`` homozygous A2, where A1 is column 5 of the ``.bim`` file.

:func:`read_bed` returns *dosages of the .bim A1 allele* as ``int8``: 2, 1, 0, and -1
for a missing genotype.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..genome import CHROM_CODES, chrom_code, chrom_codes, is_acgt  # noqa: F401 - re-exported
from ..genome import read_text as _read_text

BED_MAGIC = b"\x6c\x1b\x01"

# code -> dosage of A1: 00 -> 2, 01 -> missing, 10 -> 1, 11 -> 0
_CODE_TO_DOSAGE = np.array([2, -1, 1, 0], dtype=np.int8)
# byte value -> the 4 dosages it holds (person 4k in the lowest two bits)
_BYTE_LUT = _CODE_TO_DOSAGE[(np.arange(256)[:, None] >> (2 * np.arange(4))[None, :]) & 3]


def parse_chrom(token: str) -> int:
    """'22', 'chr22', 'X' -> 22, 22, 23 (PLINK numbering); anything else -> -1
    (:func:`varfx.genome.chrom_code`, kept under its old name)."""
    return chrom_code(token)


def plink_paths(path) -> tuple[Path, Path, Path]:
    """The ``.bed/.bim/.fam`` paths of a PLINK prefix (or of any one of the three files)."""
    p = Path(path)
    if p.suffix in (".bed", ".bim", ".fam"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".bed"), p.with_name(p.name + ".bim"), p.with_name(p.name + ".fam")


def is_plink(path) -> bool:
    bed, bim, fam = plink_paths(path)
    return bed.is_file() or bim.is_file() or fam.is_file()


def read_bim(path) -> dict:
    """Read a ``.bim`` file: chrom (int64, -1 unknown), snp, cm, bp (int64), a1, a2 (upper-case).

    Every row is returned (they index the ``.bed``); a position that is negative or not
    an integer is an error naming the line.  Alleles are returned as written: see
    :func:`acgt_mask` for the rows a caller should drop (indels, ``0``)."""
    path = Path(path)
    text = _read_text(path, "a PLINK .bim table")
    rows = [line.split() for line in text.splitlines()]
    if not any(rows):
        raise UserError("empty file: expected one line per variant (CHR SNP CM BP A1 A2)", path=path)
    if not all(rows):
        first = next(i for i, r in enumerate(rows) if not r)
        raise UserError("blank line: expected 6 columns (CHR SNP CM BP A1 A2)", path=path, line=first + 1)
    bad = [i for i, r in enumerate(rows) if len(r) != 6]
    if bad:
        raise UserError(
            f"expected 6 columns (CHR SNP CM BP A1 A2), found {len(rows[bad[0]])}", path=path, line=bad[0] + 1
        )
    cols = list(zip(*rows))
    chrom = chrom_codes(np.array(cols[0]))
    try:
        bp = np.array(cols[3], dtype=np.float64)
    except ValueError:
        i = next(i for i, t in enumerate(cols[3]) if not _is_float(t))
        raise UserError(f"expected an integer base-pair position, found {cols[3][i]!r}", path=path, line=i + 1, column="BP") from None
    if not np.all(np.isfinite(bp)) or np.any(bp != np.round(bp)):
        i = int(np.flatnonzero(~np.isfinite(bp) | (bp != np.round(bp)))[0])
        raise UserError(f"expected an integer base-pair position, found {cols[3][i]!r}", path=path, line=i + 1, column="BP")
    if np.any(bp < 0):
        # PLINK 1 marks variants to skip with a negative position; they are not usable LD
        i = int(np.flatnonzero(bp < 0)[0])
        raise UserError(f"negative base-pair position {cols[3][i]!r}: expected a position >= 0 "
                        "(remove excluded variants with plink --make-bed first)", path=path, line=i + 1, column="BP")
    try:
        cm = np.array(cols[2], dtype=np.float64)
    except ValueError:
        cm = np.full(len(rows), np.nan)
    return {
        "chrom": chrom,
        "snp": np.array(cols[1]),
        "cm": cm,
        "bp": bp.astype(np.int64),
        "a1": np.char.upper(np.array(cols[4])),
        "a2": np.char.upper(np.array(cols[5])),
    }


def acgt_mask(a1, a2) -> np.ndarray:
    """True where both alleles are made of A/C/G/T only (upper case): rows with an indel
    written as ``-``/``I``/``D``, a missing allele ``0`` or a symbolic one are False."""
    return np.fromiter((is_acgt(x) and is_acgt(y) for x, y in zip(np.asarray(a1).tolist(), np.asarray(a2).tolist())),
                       dtype=bool, count=len(a1))


def _is_float(t: str) -> bool:
    try:
        float(t)
        return True
    except ValueError:
        return False


def read_fam(path) -> np.ndarray:
    """Read a ``.fam`` file; returns the individual ids (column 2)."""
    path = Path(path)
    try:
        lines = [line.split() for line in _read_text(path, "a PLINK .fam table").splitlines() if line.strip()]
    except UnicodeDecodeError:  # pragma: no cover - read_text raises a UserError
        raise UserError("not a text file (expected a PLINK .fam table)", path=path) from None
    if not lines:
        raise UserError("empty file: expected one line per individual (FID IID PAT MAT SEX PHENO)", path=path)
    bad = [i for i, r in enumerate(lines) if len(r) < 6]
    if bad:
        raise UserError(f"expected 6 columns (FID IID PAT MAT SEX PHENO), found {len(lines[bad[0]])}", path=path, line=bad[0] + 1)
    return np.array([r[1] for r in lines])


def check_bed(path, n_people: int, n_snps: int) -> int:
    """Validate the magic bytes and size of a ``.bed`` file; return bytes per variant."""
    path = Path(path)
    bpv = (n_people + 3) // 4
    with open(path, "rb") as fh:
        magic = fh.read(3)
    if len(magic) < 3 or magic[:2] != BED_MAGIC[:2]:
        raise UserError(
            f"not a PLINK .bed file (first bytes {magic.hex() or 'none'}, expected magic 6c1b01)", path=path
        )
    if magic[2] != BED_MAGIC[2]:
        raise UserError(
            f"PLINK .bed file is individual-major (mode byte {magic[2]:02x}); expected SNP-major (01): "
            "convert it with plink --make-bed",
            path=path,
        )
    size = os.path.getsize(path)
    expected = 3 + n_snps * bpv
    if size != expected:
        raise UserError(
            f"file size {size} bytes does not match the .bim/.fam ({n_snps} variants x {n_people} people "
            f"= {expected} bytes expected): truncated or mismatched files",
            path=path,
        )
    return bpv


def read_bed(path, n_people: int, n_snps: int, index=None) -> np.ndarray:
    """Dosages of the .bim A1 allele, ``int8`` (variants x people), -1 for missing.

    ``index`` selects variants (sorted or not); ``None`` reads all of them.
    """
    bpv = check_bed(path, n_people, n_snps)
    raw = np.memmap(path, dtype=np.uint8, mode="r", offset=3, shape=(n_snps, bpv)) if n_snps else np.zeros((0, bpv), np.uint8)
    if index is not None:
        raw = raw[np.asarray(index, dtype=np.int64)]
    return decode_bed_bytes(np.asarray(raw), n_people)


def decode_bed_bytes(raw: np.ndarray, n_people: int) -> np.ndarray:
    """Decode packed ``.bed`` rows (variants x bytes) into int8 A1 dosages."""
    out = _BYTE_LUT[raw]  # (m, bpv, 4)
    return out.reshape(raw.shape[0], -1)[:, :n_people]


@dataclass
class PlinkPanel:
    """A PLINK panel: the ``.bim`` table, the number of people and the ``.bed`` path."""

    bed: Path
    bim_path: Path
    fam_path: Path
    bim: dict
    n_people: int

    @property
    def n_snps(self) -> int:
        return len(self.bim["snp"])

    @property
    def inputs(self) -> list[tuple[str, Path]]:
        """(role, path) of the files read, for provenance."""
        return [("ld_bed", self.bed), ("ld_bim", self.bim_path), ("ld_fam", self.fam_path)]

    def genotypes(self, index=None) -> np.ndarray:
        """int8 dosages of A1 (variants x people), -1 missing."""
        return read_bed(self.bed, self.n_people, self.n_snps, index)

    def summary_stats(self, chunk: int = 8192):
        """Per-variant (A1 frequency, monomorphic flag), reading the ``.bed`` in chunks.

        A variant is monomorphic when its non-missing dosages are all equal (or it has
        no non-missing genotype).
        """
        m = self.n_snps
        freq = np.full(m, np.nan)
        mono = np.zeros(m, dtype=bool)
        check_bed(self.bed, self.n_people, m)
        for s in range(0, m, chunk):
            g = self.genotypes(np.arange(s, min(m, s + chunk)))
            ok = g >= 0
            cnt = ok.sum(axis=1)
            tot = np.where(ok, g, 0).sum(axis=1, dtype=np.int64)
            with np.errstate(invalid="ignore", divide="ignore"):
                freq[s : s + len(g)] = tot / (2.0 * cnt)
            gmax = np.where(ok, g, -1).max(axis=1)
            gmin = np.where(ok, g, 3).min(axis=1)
            mono[s : s + len(g)] = (cnt == 0) | (gmax == gmin)
        return freq, mono


def load_plink(path) -> PlinkPanel:
    """Open a PLINK panel from its prefix or one of its files, validating what it can."""
    bed, bim, fam = plink_paths(path)
    for p in (bed, bim, fam):
        if not p.is_file():
            raise UserError(
                f"missing PLINK file {p.name} (a PLINK LD reference needs .bed, .bim and .fam with the same prefix)",
                path=p,
            )
    table = read_bim(bim)
    people = read_fam(fam)
    check_bed(bed, len(people), len(table["snp"]))
    return PlinkPanel(bed=bed, bim_path=bim, fam_path=fam, bim=table, n_people=len(people))


@dataclass
class PanelGenotypes:
    """Genotypes to write with :func:`write_plink`: ``dosages`` (variants x people) of
    ``a1`` as int8, -1 missing, with ``snp chrom bp a1 a2`` per variant."""

    dosages: np.ndarray
    snp: np.ndarray
    chrom: np.ndarray
    bp: np.ndarray
    a1: np.ndarray
    a2: np.ndarray


def write_plink(prefix, panel) -> Path:
    """``prefix.bed/.bim/.fam`` of a panel (SNP-major; dosage 2 = homozygous A1): anything with
    ``dosages`` (variants x people int8, -1 missing) and per-variant ``chrom snp bp a1 a2``.
    The inverse of :func:`read_bed` / :func:`read_bim` (``varfx simulate --truth motif``
    writes its panel with it)."""
    prefix = Path(prefix)
    n = panel.dosages.shape[1]
    code = np.array([3, 2, 0], dtype=np.uint8)  # dosage 0 -> 11, 1 -> 10, 2 -> 00
    c = np.where(panel.dosages < 0, 1, code[np.clip(panel.dosages, 0, 2)]).astype(np.uint8)
    pad = (-n) % 4
    c = np.concatenate([c, np.zeros((c.shape[0], pad), np.uint8)], axis=1).reshape(c.shape[0], -1, 4)
    packed = (c[..., 0] | (c[..., 1] << 2) | (c[..., 2] << 4) | (c[..., 3] << 6)).astype(np.uint8)
    prefix.with_name(prefix.name + ".bed").write_bytes(BED_MAGIC + packed.tobytes())
    prefix.with_name(prefix.name + ".bim").write_text("".join(
        f"{c}\t{s}\t0\t{b}\t{x}\t{y}\n" for c, s, b, x, y in zip(panel.chrom, panel.snp, panel.bp, panel.a1, panel.a2)))
    prefix.with_name(prefix.name + ".fam").write_text("".join(f"F{i}\tI{i}\t0\t0\t0\t-9\n" for i in range(n)))
    return prefix

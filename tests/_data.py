"""Small real-data inputs cut from ../shared/data (the 1000G chr22 panel + UKB height)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
if not SHARED.is_dir():  # CI clones main with shared/ beside it
    SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CHR22 = SHARED / "chr22_1000g_ukb_height"
PANEL = CHR22 / "1000G_eur_chr22"
SUMSTATS = CHR22 / "ukb_height_chr22.fastGWA.gz"
EXAMPLE = Path(__file__).resolve().parents[1] / "example_data"
if not CHR22.is_dir():  # fall back on the bundled copy of the same files
    PANEL = EXAMPLE / "1000G_eur_chr22"
    SUMSTATS = EXAMPLE / "ukb_height_chr22.fastGWA.gz"


def read_bed_dosages(prefix, n_people: int, rows: np.ndarray) -> np.ndarray:
    """Dosage of the .bim A1 allele for the given SNP rows (people x len(rows)), NaN missing.

    Deliberately simple and independent of varfx.io.plink (used to check it).
    """
    nbytes = (n_people + 3) // 4
    raw = np.fromfile(f"{prefix}.bed", dtype=np.uint8)
    assert raw[:3].tolist() == [0x6C, 0x1B, 0x01]
    blocks = np.stack([raw[3 + r * nbytes: 3 + (r + 1) * nbytes] for r in rows], 1)  # bytes x snps
    person = np.arange(n_people)
    codes = (blocks[person // 4] >> (2 * (person % 4))[:, None]) & 3  # people x snps
    lookup = np.array([2.0, np.nan, 1.0, 0.0])  # 00 hom A1, 01 missing, 10 het, 11 hom A2
    return lookup[codes]


def write_subset(out_dir: Path, first: int, count: int) -> tuple[Path, Path]:
    """PLINK panel rows [first, first+count) and the matching fastGWA rows."""
    out_dir.mkdir(parents=True, exist_ok=True)
    fam = Path(f"{PANEL}.fam").read_text()
    n_people = len(fam.splitlines())
    nbytes = (n_people + 3) // 4
    bim = Path(f"{PANEL}.bim").read_text().splitlines()[first:first + count]
    raw = Path(f"{PANEL}.bed").read_bytes()
    prefix = out_dir / "panel"
    Path(f"{prefix}.bed").write_bytes(raw[:3] + raw[3 + first * nbytes: 3 + (first + count) * nbytes])
    Path(f"{prefix}.bim").write_text("\n".join(bim) + "\n")
    Path(f"{prefix}.fam").write_text(fam)
    snps = {line.split()[1] for line in bim}
    with gzip.open(SUMSTATS, "rt") as fh:
        header = fh.readline()
        rows = [line for line in fh if line.split()[1] in snps]
    ss = out_dir / "sumstats.fastGWA"
    ss.write_text(header + "".join(rows))
    return prefix, ss

"""Small real inputs for tests of varfx and of plugins.

The bundled ``varfx/example_data/`` (UK Biobank height chr22 summary statistics and the 1000
Genomes chr22 panel) is cut into slices small enough for a unit test.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

# the PLINK writer lives beside the reader (a stage, `simulate --truth motif`, writes its
# panel with it); importable from here as before
from ..io.plink import write_plink  # noqa: F401

EXAMPLE_DATA = Path(__file__).resolve().parents[1] / "example_data"  # package data
PANEL_NAME = "1000G_eur_chr22"
SUMSTATS_NAME = "ukb_height_chr22.fastGWA.gz"


def read_bed_dosages(prefix, n_people: int, rows) -> np.ndarray:
    """Dosage of the .bim A1 allele for the given SNP rows (people x len(rows)), NaN missing.

    Deliberately simple and independent of :mod:`varfx.io.plink` (tests check one
    against the other).
    """
    nbytes = (n_people + 3) // 4
    raw = np.fromfile(f"{prefix}.bed", dtype=np.uint8)
    assert raw[:3].tolist() == [0x6C, 0x1B, 0x01]
    blocks = np.stack([raw[3 + r * nbytes: 3 + (r + 1) * nbytes] for r in rows], 1)  # bytes x snps
    person = np.arange(n_people)
    codes = (blocks[person // 4] >> (2 * (person % 4))[:, None]) & 3  # people x snps
    lookup = np.array([2.0, np.nan, 1.0, 0.0])  # 00 hom A1, 01 missing, 10 het, 11 hom A2
    return lookup[codes]


def write_subset(out_dir, first: int, count: int, panel=None, sumstats=None) -> tuple[Path, Path]:
    """Write PLINK panel rows ``[first, first+count)`` and the matching fastGWA rows.

    Returns ``(plink prefix, sumstats path)``; defaults to the bundled example data.
    """
    panel = Path(panel) if panel else EXAMPLE_DATA / PANEL_NAME
    sumstats = Path(sumstats) if sumstats else EXAMPLE_DATA / SUMSTATS_NAME
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    prefix = write_panel_rows(panel, out_dir / "panel", range(first, first + count))
    snps = {line.split()[1] for line in Path(f"{prefix}.bim").read_text().splitlines()}
    with gzip.open(sumstats, "rt") as fh:
        header = fh.readline()
        rows = [line for line in fh if line.split()[1] in snps]
    ss = out_dir / "sumstats.fastGWA"
    ss.write_text(header + "".join(rows))
    return prefix, ss


def write_panel_rows(panel, out_prefix, rows) -> Path:
    """Write the variants ``rows`` (increasing .bim line numbers) of a PLINK panel: in a
    SNP-major .bed each variant is one block of bytes, copied as it is."""
    panel, out_prefix = Path(panel), Path(out_prefix)
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    fam = Path(f"{panel}.fam").read_text()
    nbytes = (len(fam.splitlines()) + 3) // 4
    bim = Path(f"{panel}.bim").read_text().splitlines()
    raw = Path(f"{panel}.bed").read_bytes()
    Path(f"{out_prefix}.bed").write_bytes(raw[:3] + b"".join(raw[3 + i * nbytes: 3 + (i + 1) * nbytes] for i in rows))
    Path(f"{out_prefix}.bim").write_text("".join(bim[i] + "\n" for i in rows))
    Path(f"{out_prefix}.fam").write_text(fam)
    return out_prefix


def thinned_panel_halves(panel, work, thin: int = 1) -> tuple[Path, Path, Path]:
    """``(panel, half_a, half_b)``: the PLINK panel with every ``thin``-th variant kept
    (written under ``work`` when ``thin > 1``) and its even and odd people as two
    panels, the GWAS population and an LD reference that is not the GWAS sample (the
    out-of-sample set-up of benchmarks/simulate.py and benchmarks/ld_glm.py)."""
    panel, work = Path(panel), Path(work)
    n_people = len(Path(f"{panel}.fam").read_text().splitlines())
    if thin > 1:
        n_snps = len(Path(f"{panel}.bim").read_text().splitlines())
        panel = write_panel_rows(panel, work / "thin", range(0, n_snps, thin))
    return (panel, write_people_subset(panel, work / "A", np.arange(0, n_people, 2)),
            write_people_subset(panel, work / "B", np.arange(1, n_people, 2)))


def write_people_subset(panel, out_prefix, people) -> Path:
    """Write the PLINK panel ``panel`` restricted to the ``people`` rows of its .fam.

    Every variant is kept (same .bim); the genotypes are decoded with
    :func:`read_bed_dosages` and packed again, so the new .bed is independent of
    :mod:`varfx.io.plink`.  Used to simulate from one half of a panel and fit with the
    other (an LD reference that is not the GWAS sample)."""
    panel = Path(panel)
    fam = Path(f"{panel}.fam").read_text().splitlines()
    bim = Path(f"{panel}.bim").read_text()
    people = np.asarray(people, dtype=np.int64)
    dos = read_bed_dosages(panel, len(fam), range(len(bim.splitlines())))[people]  # people x snps
    return write_bed(out_prefix, dos, bim, [fam[i] for i in people])


def write_bed(out_prefix, dosages, bim_text: str, fam_lines) -> Path:
    """Write a PLINK .bed/.bim/.fam set from ``dosages`` (people x snps, dosage of the
    .bim A1 allele, NaN missing), packed by hand (independent of :mod:`varfx.io.plink`)."""
    out_prefix = Path(out_prefix)
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    dos = np.asarray(dosages)
    code = np.full(dos.shape, 1, dtype=np.uint8)  # 01 missing
    code[dos == 2] = 0
    code[dos == 1] = 2
    code[dos == 0] = 3
    n = dos.shape[0]
    pad = np.full(((4 - n % 4) % 4, dos.shape[1]), 0, dtype=np.uint8)
    code = np.concatenate([code, pad]).reshape(-1, 4, dos.shape[1])  # bytes x 4 x snps
    packed = (code[:, 0] | code[:, 1] << 2 | code[:, 2] << 4 | code[:, 3] << 6).astype(np.uint8)
    Path(f"{out_prefix}.bed").write_bytes(bytes([0x6C, 0x1B, 0x01]) + packed.T.tobytes())
    Path(f"{out_prefix}.bim").write_text(bim_text)
    Path(f"{out_prefix}.fam").write_text("\n".join(fam_lines) + "\n")
    return out_prefix


def two_chromosome_glm_simulation(tmp, *, track_seed: int = 0, sim_seed: int = 1):
    """A 2-chromosome simulation with a GLM truth over a bigWig and a BED track, ingested
    and precomputed under ``tmp``: 3000 variants of the bundled chr22 panel, the second
    half relabelled chromosome 21 (so one chromosome trains and chromosome 22 can be held
    out); ``simulate --truth glm --h2 0.2 --n 200000`` (seed ``sim_seed``) over tracks
    drawn with ``track_seed``.  Returns ``(sim_dir, dataset_dir)``.  Used by the
    transformer's convergence test and its learning-rate benchmark."""
    from click.testing import CliRunner

    from varfx.cli import cli

    from .features import write_bed, write_bigwig

    def run(args):
        r = CliRunner().invoke(cli, [str(a) for a in args])
        if r.exit_code != 0:
            raise RuntimeError(f"varfx {' '.join(map(str, args))}: {r.output}")

    tmp = Path(tmp)
    prefix, _ = write_subset(tmp / "in", 2000, 3000)
    bim = open(f"{prefix}.bim").read().splitlines()
    half = len(bim) // 2
    bim = [("21" + line[line.index("\t"):]) if i >= half else line for i, line in enumerate(bim)]
    open(f"{prefix}.bim", "w").write("\n".join(bim) + "\n")
    bp = np.array([int(line.split()[3]) for line in bim])
    lo, hi = int(bp.min()) - 2000, int(bp.max()) + 2000
    rng = np.random.default_rng(track_seed)
    vals = np.full(hi, np.nan)
    vals[lo:hi] = rng.gamma(2.0, 1.0, hi - lo)
    write_bigwig(tmp / "signal.bw", {"chr21": vals, "chr22": vals})
    n_peaks = (hi - lo) // 4000
    write_bed(tmp / "peaks.bed", sorted((c, int(s), int(s) + 400) for c in ("chr21", "chr22")
                                        for s in rng.integers(lo, hi, n_peaks)))
    (tmp / "m.tsv").write_text("name\tpath\nsignal\tsignal.bw\npeaks\tpeaks.bed\n")
    sim, ds = tmp / "sim", tmp / "ds"
    run(["simulate", "--ld", prefix, "--truth", "glm", "--annotations", tmp / "m.tsv", "--feature-window", 32,
         "--h2", 0.2, "--n", 200000, "--seed", sim_seed, "--block-kb", 1000, "-o", sim, "--json"])
    run(["ingest", "--sumstats", sim / "sumstats.fastGWA.gz", "--ld", prefix, "--annotations", tmp / "m.tsv",
         "--feature-window", 32, "-o", ds, "--json"])
    # in-sample (simulated from this panel): the small-panel correction would only discard information
    run(["precompute-ld", ds, "--window-kb", 1000, "--flank-kb", 0, "--ld-correction", "none", "--json"])
    return sim, ds

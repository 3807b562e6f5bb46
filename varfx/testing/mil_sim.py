"""A simulated GWAS whose causal variants are marked by DNA sequence, for testing
multiple-instance fine-mapping end to end (and for the tutorial's worked example).

The truth is built in four steps, each simple enough to check by eye:

1. **Genome**: chromosomes of uniformly random bases (a FASTA with its ``.fai``).
2. **Variants and LD**: each chromosome is a row of LD *blocks* (``block_bp`` long, a
   gap between blocks so blocks are independent).  Inside a block, ``n_founders``
   founder haplotypes carry random alleles; each panel haplotype copies one founder and
   switches to another at a few random points (recombination), so correlation is high
   between nearby variants and decays along the block.  The panel (``n_ref`` people) is
   written as PLINK ``.bed/.bim/.fam``; the reference allele is the FASTA base, the
   alternative another base that is not its complement (no strand-ambiguous pair).
3. **Causal variants and their sequence**: a fraction of blocks has one causal variant
   (a common one, near the block's middle).  Next to each causal variant the motifs are
   written into the genome, each at a random distance of ``motif_gap`` bases (3-39 by
   default: MIFM's measurement) on a random side; nothing else in the genome is near a
   motif except by chance (a 10-base motif occurs by chance once per ~1 Mb).
4. **Summary statistics**: ``z = sqrt(N) R b + e`` per block, ``e ~ N(0, R)``, with ``R``
   the panel's correlation (in-sample LD) and ``b`` the standardised effects (so the
   causal variant's expected ``|z|`` is ``effect_z``), written as a fastGWA table.

:func:`simulate_mil` writes everything to a directory and returns the paths and the
truth; it needs numpy and pysam (for the FASTA index) only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

ACGT = "ACGT"
#: the alternative allele drawn for each reference base: never its complement, so no
#: variant is strand-ambiguous (A/T or C/G) and ingest keeps every one
ALT_CHOICES = {"A": "CG", "C": "AT", "G": "AT", "T": "CG"}
MOTIFS = ("GATTACAGCC", "TGCCGGAACT")


@dataclass
class MilSimulation:
    """The paths written by :func:`simulate_mil` and the truth."""

    fasta: Path
    panel: Path  # PLINK prefix
    sumstats: Path  # fastGWA
    truth: Path  # TSV: SNP CHR BP causal block
    snp: np.ndarray
    chrom: np.ndarray
    bp: np.ndarray
    causal: np.ndarray  # bool per variant
    block: np.ndarray  # block id per variant
    z: np.ndarray


@dataclass
class _Panel:
    dosages: np.ndarray
    snp: np.ndarray
    chrom: np.ndarray
    bp: np.ndarray
    a1: np.ndarray
    a2: np.ndarray


def _block_haplotypes(rng, n_var, n_hap, n_founders, switches):
    """(n_var, n_hap) 0/1 haplotypes of one block: founders with random allele
    frequencies, copied with ``switches`` recombination points per haplotype on average."""
    freq = rng.uniform(0.1, 0.9, n_var)
    founders = (rng.random((n_founders, n_var)) < freq).astype(np.int8)
    hap = np.empty((n_var, n_hap), dtype=np.int8)
    for h in range(n_hap):
        cuts = np.sort(rng.integers(1, n_var, rng.poisson(switches)))
        bounds = np.concatenate([[0], cuts, [n_var]])
        for a, b in zip(bounds[:-1], bounds[1:]):
            hap[a:b, h] = founders[rng.integers(n_founders), a:b]
    # a little fresh mutation so that no two variants are identical by construction
    flip = rng.random(hap.shape) < 0.02
    return np.where(flip, 1 - hap, hap)


def simulate_mil(out, *, n_chroms: int = 8, blocks_per_chrom: int = 50, variants_per_block: int = 50,
                 block_bp: int = 15_000, gap_bp: int = 20_000, n_ref: int = 400, n_gwas: float = 100_000,
                 causal_fraction: float = 0.7, effect_z: float = 12.0, n_founders: int = 3,
                 switches: float = 1.0, motifs=MOTIFS, motif_gap=(3, 39), maf_min: float = 0.05,
                 seed: int = 0) -> MilSimulation:
    """Write a MIL simulation to ``out`` (see the module docstring); chromosomes 1..n_chroms."""
    import pysam

    rng = np.random.default_rng(seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n_hap = 2 * n_ref
    chrom_len = blocks_per_chrom * (block_bp + gap_bp) + gap_bp
    genome = {c: rng.integers(0, 4, chrom_len).astype(np.uint8) for c in range(1, n_chroms + 1)}
    rows = {k: [] for k in ("chrom", "bp", "block", "causal", "dosage")}
    z_all, block_id = [], 0
    for c in range(1, n_chroms + 1):
        seq = genome[c]
        for b in range(blocks_per_chrom):
            lo = gap_bp + b * (block_bp + gap_bp)
            # positions at least 100 bp apart, so a motif next to one variant is not
            # next to another (the motif window is 3-39 + 10 bases)
            slots = np.sort(rng.choice(block_bp // 100, variants_per_block, replace=False))
            bp = lo + slots * 100 + rng.integers(0, 50, variants_per_block) + 1  # 1-based
            hap = _block_haplotypes(rng, variants_per_block, n_hap, n_founders, switches)
            g = hap[:, :n_ref] + hap[:, n_ref:]
            p = g.mean(1) / 2
            ok = np.minimum(p, 1 - p) >= maf_min
            g, bp, p = g[ok], bp[ok], p[ok]
            m = len(bp)
            if m < 2:
                continue
            x = (g - g.mean(1, keepdims=True)) / g.std(1, keepdims=True)
            R = x @ x.T / n_ref
            causal = np.zeros(m, bool)
            b_std = np.zeros(m)
            if rng.random() < causal_fraction:
                mid = np.argsort(np.abs(np.arange(m) - m / 2))[: max(1, m // 3)]
                j = int(rng.choice(mid))
                causal[j] = True
                b_std[j] = rng.choice([-1.0, 1.0]) * effect_z / np.sqrt(n_gwas)
                pos0 = int(bp[j]) - 1  # 0-based
                sides = rng.permutation([-1, 1])
                for motif, side in zip(motifs, np.resize(sides, len(motifs))):
                    d = int(rng.integers(motif_gap[0], motif_gap[1] + 1))
                    start = pos0 + d if side > 0 else pos0 - d - len(motif) + 1
                    seq[start:start + len(motif)] = [ACGT.index(ch) for ch in motif]
            w, V = np.linalg.eigh(R)
            e = V @ (np.sqrt(np.clip(w, 0, None)) * rng.standard_normal(m))
            z_all.append(np.sqrt(n_gwas) * R @ b_std + e)
            rows["chrom"].append(np.full(m, c))
            rows["bp"].append(bp)
            rows["block"].append(np.full(m, block_id))
            rows["causal"].append(causal)
            rows["dosage"].append(g.astype(np.int8))
            block_id += 1
    chrom = np.concatenate(rows["chrom"])
    bp = np.concatenate(rows["bp"]).astype(np.int64)
    causal = np.concatenate(rows["causal"])
    block = np.concatenate(rows["block"])
    dos = np.concatenate(rows["dosage"])
    z = np.concatenate(z_all)
    ref = np.array([ACGT[genome[c][p - 1]] for c, p in zip(chrom, bp)])
    alt = np.array([ALT_CHOICES[r][rng.integers(2)] for r in ref])
    snp = np.array([f"rs{c}_{p}" for c, p in zip(chrom, bp)])

    fasta = out / "genome.fa"
    with open(fasta, "w") as fh:
        for c in range(1, n_chroms + 1):
            s = "".join(ACGT[i] for i in genome[c])
            fh.write(f">{c}\n")
            fh.writelines(s[i:i + 60] + "\n" for i in range(0, len(s), 60))
    pysam.faidx(str(fasta))
    # the dosage counts the alternative allele: it is a1, the effect allele of the GWAS
    from .data import write_plink

    panel = write_plink(out / "panel", _Panel(dos, snp, chrom, bp, alt, ref))
    freq = dos.mean(1) / 2
    se = 1.0 / np.sqrt(n_gwas * 2 * freq * (1 - freq))
    beta = z * se
    from scipy.special import log_ndtr

    logp = np.log(2.0) + log_ndtr(-np.abs(z))
    sumstats = out / "gwas.fastGWA"
    with open(sumstats, "w") as fh:
        fh.write("CHR\tSNP\tPOS\tA1\tA2\tN\tAF1\tBETA\tSE\tP\n")
        for i in range(len(z)):
            fh.write(f"{chrom[i]}\t{snp[i]}\t{bp[i]}\t{alt[i]}\t{ref[i]}\t{int(n_gwas)}\t{freq[i]:.6f}\t"
                     f"{float(beta[i])!r}\t{float(se[i])!r}\t{np.exp(logp[i]):.6g}\n")
    truth = out / "truth.tsv"
    with open(truth, "w") as fh:
        fh.write("SNP\tCHR\tBP\tcausal\tblock\n")
        for i in range(len(z)):
            fh.write(f"{snp[i]}\t{chrom[i]}\t{bp[i]}\t{int(causal[i])}\t{block[i]}\n")
    return MilSimulation(fasta=fasta, panel=panel, sumstats=sumstats, truth=truth, snp=snp, chrom=chrom, bp=bp,
                         causal=causal, block=block, z=z)

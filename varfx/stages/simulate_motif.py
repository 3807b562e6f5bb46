"""``varfx simulate --truth motif``: a GWAS whose causal variants are marked by DNA
sequence, for multiple-instance fine-mapping (docs/simulate.md; the demo's MIL part and
the tests of ``varfx bags`` / ``fit --objective mil`` run on it).

Unlike the other truths of ``varfx simulate`` it needs no panel: it writes its own
genome, panel and summary statistics, in four steps, each simple enough to check by eye:

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

:func:`simulate_mil` writes these files to a directory and returns the paths and the
truth (``varfx.testing.mil_sim`` re-exports it for the tests: the same draws for the same
seed); :func:`run_simulate_motif` is the stage: options checked, the directory written
atomically with a sites VCF of the variants and ``simulation.json``.  Only numpy, scipy
and pysam (for the FASTA index) are needed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import UserError

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
    from ..io.plink import PanelGenotypes, write_plink

    panel = write_plink(out / "panel", PanelGenotypes(dos, snp, chrom, bp, alt, ref))
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


# ------------------------------------------------------------------ the stage

SIMULATION_JSON = "simulation.json"
SITES_FILE = "variants.vcf"
#: the generator's outputs (simulation.json's "files")
FILES = {"sumstats": "gwas.fastGWA", "truth": "truth.tsv", "fasta": "genome.fa", "panel": "panel",
         "sites": SITES_FILE}
#: a motif must fit between a variant and its neighbour: variants are >= 51 bp apart and a
#: motif starts at most 39 bases away, so 12 bases keep it clear of the next variant
MOTIF_LEN = (6, 12)
DEFAULTS = {"n_chroms": 8, "blocks_per_chrom": 50, "variants_per_block": 50, "n_ref": 400, "causal_fraction": 0.7,
            "effect_z": 12.0, "n_gwas": 100_000.0, "seed": 0}


def check_motif_options(*, n_chroms, blocks_per_chrom, variants_per_block, n_ref, causal_fraction, effect_z, n_gwas,
                        motifs, block_bp=15_000) -> tuple:
    """The motifs as upper-case strings, or a one-line UserError naming the option."""
    def whole(name, value, lo, hi=None):
        ok = isinstance(value, (int, np.integer)) and value >= lo and (hi is None or value <= hi)
        if not ok:
            rng = f"from {lo} to {hi}" if hi is not None else f">= {lo}"
            raise UserError(f"option {name}: expected a whole number {rng}, got {value!r}")

    # chromosomes are named 1..n: ingest keeps autosomes only
    whole("--n-chroms", n_chroms, 1, 22)
    whole("--blocks-per-chrom", blocks_per_chrom, 1)
    # positions sit on a 100-bp grid of the block (so motifs of two variants never meet)
    whole("--variants-per-block", variants_per_block, 2, block_bp // 100)
    whole("--n-ref", n_ref, 10)
    for name, value, ok, what in (
            ("--causal-fraction", causal_fraction, lambda v: 0 < v <= 1, "a fraction in (0, 1]"),
            ("--effect-z", effect_z, lambda v: v > 0, "a positive number"),
            ("--n", n_gwas, lambda v: v > 0, "a positive number")):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and ok(value)):
            raise UserError(f"option {name}: expected {what}, got {value!r}")
    motifs = tuple(str(m).strip().upper() for m in motifs)
    if not motifs:
        raise UserError("option --motif: expected at least one motif")
    for m in motifs:
        if not (MOTIF_LEN[0] <= len(m) <= MOTIF_LEN[1]) or set(m) - set(ACGT):
            raise UserError(f"option --motif: expected {MOTIF_LEN[0]}-{MOTIF_LEN[1]} bases of A, C, G, T, "
                            f"got {m!r}")
    if len(set(motifs)) < len(motifs):
        raise UserError(f"option --motif: the motifs must differ, got {', '.join(motifs)}")
    return motifs


def write_sites_vcf(path, sim: MilSimulation, fasta) -> Path:
    """A sites-only VCF of the simulated variants (REF: the genome's base, ALT: the
    panel's other allele; ID the SNP id), what ``varfx score-vcf`` annotates."""
    import pysam

    bim = [line.split() for line in open(f"{sim.panel}.bim")]
    with pysam.FastaFile(str(fasta)) as fa:
        contigs = [(name, fa.get_reference_length(name)) for name in fa.references]
    with open(path, "w") as fh:
        fh.write("##fileformat=VCFv4.2\n##source=varfx simulate --truth motif\n")
        fh.writelines(f"##contig=<ID={name},length={length}>\n" for name, length in contigs)
        fh.write("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
        # .bim: chrom snp cm bp a1 a2 with a2 the reference (genome) base
        fh.writelines(f"{c}\t{bp}\t{snp}\t{a2}\t{a1}\t.\t.\t.\n" for c, snp, _, bp, a1, a2 in bim)
    return Path(path)


def run_simulate_motif(out, *, n_chroms=DEFAULTS["n_chroms"], blocks_per_chrom=DEFAULTS["blocks_per_chrom"],
                       variants_per_block=DEFAULTS["variants_per_block"], n_ref=DEFAULTS["n_ref"],
                       causal_fraction=DEFAULTS["causal_fraction"], effect_z=DEFAULTS["effect_z"],
                       n_gwas=DEFAULTS["n_gwas"], motifs=MOTIFS, seed=DEFAULTS["seed"]) -> dict:
    """Write a motif simulation to ``out`` (docs/simulate.md): the generator's files
    (:data:`FILES`), a sites VCF and ``simulation.json``; returns the summary written there.

    The directory is written whole or not at all; an existing directory is replaced only
    when it is an earlier varfx simulation."""
    from ..store import atomic_dir

    motifs = check_motif_options(n_chroms=n_chroms, blocks_per_chrom=blocks_per_chrom,
                                 variants_per_block=variants_per_block, n_ref=n_ref, causal_fraction=causal_fraction,
                                 effect_z=effect_z, n_gwas=n_gwas, motifs=motifs)
    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / SIMULATION_JSON).exists())):
        raise UserError(f"exists and is not a varfx simulation (no {SIMULATION_JSON}); refusing to replace it: "
                        "choose a new directory", path=out)
    with atomic_dir(out) as tmp:
        sim = simulate_mil(tmp, n_chroms=int(n_chroms), blocks_per_chrom=int(blocks_per_chrom),
                           variants_per_block=int(variants_per_block), n_ref=int(n_ref), n_gwas=float(n_gwas),
                           causal_fraction=float(causal_fraction), effect_z=float(effect_z), motifs=motifs,
                           seed=int(seed))
        write_sites_vcf(Path(tmp) / SITES_FILE, sim, sim.fasta)
        chi2 = sim.z * sim.z
        n_blocks = int(len(np.unique(sim.block)))
        summary = {
            "format": "varfx-simulation", "varfx_version": __version__, "out": str(out), "truth": "motif",
            "N": float(n_gwas), "seed": int(seed), "n_chroms": int(n_chroms),
            "blocks_per_chrom": int(blocks_per_chrom), "variants_per_block": int(variants_per_block),
            "n_ref": int(n_ref), "causal_fraction": float(causal_fraction), "effect_z": float(effect_z),
            "motifs": list(motifs), "motif_gap": [3, 39],
            "n_variants": int(len(sim.snp)), "n_blocks": n_blocks, "n_causal": int(sim.causal.sum()),
            "mean_chi2": float(chi2.mean()), "max_chi2": float(chi2.max()),
            "files": dict(FILES),
        }
        (Path(tmp) / SIMULATION_JSON).write_text(json.dumps(summary, indent=1) + "\n")
    return summary

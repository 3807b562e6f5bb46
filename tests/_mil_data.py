"""A tiny multi-chromosome dataset with bags for the MIL tests: a synthetic genotype
panel on chromosomes 1, 2, 3 and 6, summary statistics, and an annotations table whose
feature ``mark`` is 1 at the causal variant of each positive bag (and at a few random
variants elsewhere), beside two noise features; ``bags.h5`` written with ``write_bags``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

CHROMS = (1, 2, 3, 6)
PER_CHROM = 120
BAG_SIZE = 10


def build(directory: Path, *, seed: int = 0, bags_per_chrom: int = 8, write=True, causal_marked=1.0,
          rare=0.0, per_chrom=PER_CHROM):
    """Ingest the dataset under ``directory/ds``; returns ``(ds, causal)`` with ``causal``
    the dataset index of each positive bag's causal variant (bag order).

    ``causal_marked``: the share of causal variants whose ``mark`` is 1 (a weaker
    signal below 1); ``rare``: the frequency of a feature ``rare`` set at random
    everywhere (causal or not), which tells a 10-variant bag from a single variant
    (the bag-size confound) but says nothing about causality."""
    from click.testing import CliRunner

    from varfx.cli import cli
    from varfx.testing.formats import SyntheticPanel, synthetic_panel, write_plink

    rng = np.random.default_rng(seed)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    parts = [synthetic_panel(per_chrom, 40, seed=seed + 10 * k) for k in range(len(CHROMS))]
    panel = SyntheticPanel(
        dosages=np.concatenate([p.dosages for p in parts]),
        snp=np.array([f"rs{c}_{j}" for c in CHROMS for j in range(per_chrom)]),
        chrom=np.repeat(np.array(CHROMS, dtype=np.int64), per_chrom),
        bp=np.concatenate([p.bp for p in parts]), a1=np.concatenate([p.a1 for p in parts]),
        a2=np.concatenate([p.a2 for p in parts]))
    prefix = write_plink(directory / "panel", panel)
    m = panel.n_variants
    se = np.full(m, 0.01)
    beta = np.round(rng.normal(0, 0.01, m), 6)
    freq = np.round(rng.uniform(0.1, 0.9, m), 4)
    p = np.full(m, 0.5)
    ss = directory / "sumstats.fastGWA"
    ss.write_text("CHR\tSNP\tPOS\tA1\tA2\tN\tAF1\tBETA\tSE\tP\n" + "".join(
        f"{panel.chrom[j]}\t{panel.snp[j]}\t{panel.bp[j]}\t{panel.a1[j]}\t{panel.a2[j]}\t100000\t{freq[j]}\t"
        f"{beta[j]}\t{se[j]}\t{p[j]}\n" for j in range(m)))
    # bags: consecutive runs of BAG_SIZE variants, one causal member each
    mark = (rng.random(m) < 0.03).astype(float)  # a few marked variants that are not causal
    causal_rows, bag_rows = [], []
    for k in range(len(CHROMS)):
        for b in range(bags_per_chrom):
            lo = k * per_chrom + b * BAG_SIZE
            rows = np.arange(lo, lo + BAG_SIZE)
            c = int(rng.choice(rows))
            bag_rows.append(rows)
            causal_rows.append(c)
    in_bag = np.zeros(m, bool)
    for rows in bag_rows:
        in_bag[rows] = True
        mark[rows] = 0.0
    causal_rows_marked = causal_rows if causal_marked >= 1 else [c for c in causal_rows if rng.random() < causal_marked]
    mark[causal_rows_marked] = 1.0
    annot = directory / "annot.tsv"
    noise = rng.standard_normal((m, 2))
    extra = (rng.random(m) < rare).astype(float) if rare else None
    annot.write_text("CHR\tBP\tmark\tnoise1\tnoise2" + ("\trare" if rare else "") + "\n" + "".join(
        f"{panel.chrom[j]}\t{panel.bp[j]}\t{mark[j]}\t{noise[j, 0]:.4f}\t{noise[j, 1]:.4f}"
        + (f"\t{extra[j]}" if rare else "") + "\n" for j in range(m)))
    manifest = directory / "manifest.tsv"
    manifest.write_text(f"name\tpath\tkind\nt\t{annot}\ttable\n")
    ds = directory / "ds"
    r = CliRunner().invoke(cli, ["ingest", "--sumstats", str(ss), "--ld", str(prefix), "--annotations",
                                 str(manifest), "-o", str(ds), "--json"])
    assert r.exit_code == 0, r.output
    # dataset indices: ingest keeps every variant here, sorted by (chromosome, position)
    from varfx.store.dataset import open_dataset

    with open_dataset(ds) as h5:
        keys = list(zip(h5["variants"]["chrom"][:].tolist(), h5["variants"]["bp"][:].tolist()))
    index = {key: i for i, key in enumerate(keys)}
    assert len(index) == m, "ingest dropped variants"
    to_ds = np.array([index[(int(panel.chrom[j]), int(panel.bp[j]))] for j in range(m)])
    bags = [(to_ds[rows], int(panel.chrom[rows[0]])) for rows in bag_rows]
    causal = to_ds[np.array(causal_rows)]
    negatives = np.sort(to_ds[~in_bag])
    if write:
        write_test_bags(ds, bags, negatives)
    return ds, causal


def write_test_bags(ds, bags, negatives, fingerprint=None):
    """bags.h5 of ``bags`` ([(dataset indices, chromosome)]) and the negative pool."""
    from varfx.store.bags import Bag, BagSet, write_bags
    from varfx.store.dataset import open_dataset, stored_fingerprint

    with open_dataset(ds) as h5:
        chrom = h5["variants"]["chrom"][:]
        bp = h5["variants"]["bp"][:]
        fp = fingerprint or stored_fingerprint(h5)
    positives = [Bag(index=i, name=f"block{i}", chrom=c, start=int(bp[v].min()), end=int(bp[v].max()),
                     variants=np.asarray(v, np.int64)) for i, (v, c) in enumerate(bags)]
    negatives = np.asarray(negatives, np.int64)
    return write_bags(ds, BagSet(positives=positives, negatives=negatives, negative_chrom=chrom[negatives]), fp)


def read_fasta(path) -> dict:
    """``{contig: sequence}`` of a plain FASTA, read by hand (an independent check of
    what pysam's index serves)."""
    seqs, name = {}, None
    for line in open(path):
        if line.startswith(">"):
            name = line[1:].strip()
            seqs[name] = []
        else:
            seqs[name].append(line.strip())
    return {k: "".join(v) for k, v in seqs.items()}

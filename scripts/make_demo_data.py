"""Regenerate the demo's simulated feature tracks and its small VCF (varfx/example_data/).

    python scripts/make_demo_data.py [--out varfx/example_data]

The genotypes (1000 Genomes chr22) are real; the three feature tracks are simulated,
with a fixed seed, so that the demo has annotations with a known effect on the prior
(`varfx simulate --truth glm` draws the truth from them at demo time):

- ``demo_open.bed``: "open chromatin"-like intervals, 200 bp - 3 kb, about 8% of the
  region, clustered (a Poisson process of clusters of a few intervals each);
- ``demo_coding.bed``: "exon"-like intervals, 80 - 300 bp, about 3% of the region;
- ``demo_conservation.bw``: a smooth signal in [0, 1] in 500 bp bins (an AR(1) process
  through a logistic), higher inside the coding intervals;
- ``demo_annotations.tsv``: the manifest naming them (docs/features.md);
- ``demo_calls.vcf``: 400 chr22 records for `varfx score-vcf` — panel SNPs, new SNPs
  between them, a multi-allelic record, indels and a symbolic allele, and records beyond
  the tracks' coverage — in position order.

The output is deterministic: rerunning writes identical files.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

CHROM = "chr22"
CHROM_LENGTH = 51_304_566  # hg19
BIN = 500


def _region(bim: Path) -> tuple[int, int]:
    bp = np.loadtxt(bim, usecols=3, dtype=np.int64)
    # the tracks cover the panel's SNPs with 50 kb to spare, and no more: records of the
    # demo VCF past this end test score-vcf's "outside coverage" path
    return int(bp.min()) - 50_000, int(bp.max()) + 50_000


def _intervals(rng, lo, hi, n_clusters, per_cluster, spread, min_len, max_len):
    starts = []
    for centre in rng.uniform(lo, hi, n_clusters):
        k = rng.poisson(per_cluster) + 1
        starts.extend(centre + rng.normal(0, spread, k))
    starts = np.sort(np.clip(np.asarray(starts), lo, hi - max_len)).astype(np.int64)
    lengths = rng.integers(min_len, max_len + 1, len(starts))
    out, last_end = [], -1
    for s, length in zip(starts, lengths):
        s = max(int(s), last_end + 1)  # non-overlapping, sorted
        e = min(s + int(length), hi)
        if e > s:
            out.append((s, e))
            last_end = e
    return out


def _write_bed(path: Path, intervals, name: str) -> None:
    with open(path, "w") as fh:
        for i, (s, e) in enumerate(intervals):
            fh.write(f"{CHROM}\t{s}\t{e}\t{name}_{i}\n")


def _conservation(rng, lo, hi, coding):
    n = (hi - lo) // BIN
    x = np.empty(n)
    noise = rng.normal(0, 1, n)
    x[0] = noise[0]
    rho = 0.9  # correlation length of ~5 kb (10 bins)
    for i in range(1, n):
        x[i] = rho * x[i - 1] + np.sqrt(1 - rho**2) * noise[i]
    for s, e in coding:
        x[(s - lo) // BIN:(e - lo) // BIN + 1] += 2.0
    return 1.0 / (1.0 + np.exp(-(x - 1.0)))


def _write_bigwig(path: Path, lo: int, values) -> None:
    import pyBigWig

    bw = pyBigWig.open(str(path), "w")
    bw.addHeader([(CHROM, CHROM_LENGTH)], maxZooms=4)
    bw.addEntries(CHROM, lo, values=[float(round(v, 4)) for v in values], span=BIN, step=BIN)
    bw.close()


def _write_vcf(path: Path, bim: Path, rng, hi: int) -> None:
    cols = np.loadtxt(bim, dtype=str)
    bp = cols[:, 3].astype(np.int64)
    a1, a2 = cols[:, 4], cols[:, 5]
    pick = np.sort(rng.choice(len(bp), 300, replace=False))
    # AF of the ALT allele (the .bim A1) in the panel, as a real call set's INFO carries it
    from varfx.testing.data import read_bed_dosages

    n_people = sum(1 for _ in open(bim.with_suffix(".fam")))
    dos = read_bed_dosages(str(bim.with_suffix("")), n_people, pick)
    af = {int(i): float(np.nanmean(dos[:, j]) / 2) for j, i in enumerate(pick)}
    records = [(int(bp[i]), cols[i, 1], a2[i], a1[i], f"{af[int(i)]:.4f}") for i in pick]
    bases = np.array(list("ACGT"))
    for i in np.sort(rng.choice(len(bp) - 1, 80, replace=False)):  # new SNPs between panel SNPs
        pos = int((bp[i] + bp[i + 1]) // 2)
        if pos not in (r[0] for r in records):
            ref, alt = rng.choice(bases, 2, replace=False)
            records.append((pos, ".", str(ref), str(alt), f"{rng.beta(0.5, 2.0) / 2 + 0.005:.4f}"))
    i0, i1, i2 = (int(bp[pick[j]]) for j in (10, 20, 30))
    records += [(i0 + 7, ".", "A", "C,G", "0.1200,0.0300"),  # multi-allelic: one value per ALT
                (i1 + 7, ".", "AT", "A", "0.2000"),               # indel: "."
                (i1 + 9, ".", "G", "GCA", "0.0500"),              # indel
                (i2 + 7, ".", "C", "<DEL>", "0.0100")]            # symbolic allele
    for j in range(5):                                            # beyond the tracks' coverage
        records.append((hi + 5_000 * (j + 1), ".", "A", "G", "0.2500"))  # still inside chr22 (51.30 Mb)
    records.sort(key=lambda r: r[0])
    with open(path, "w") as fh:
        fh.write("##fileformat=VCFv4.2\n")
        fh.write(f"##contig=<ID={CHROM},length={CHROM_LENGTH},assembly=hg19>\n")
        fh.write("##INFO=<ID=DP,Number=1,Type=Integer,Description=\"Read depth (simulated)\">\n")
        fh.write("##INFO=<ID=AF,Number=A,Type=Float,Description=\"ALT allele frequency (1000 Genomes EUR, "
                 "or simulated for new sites)\">\n")
        fh.write("##source=scripts/make_demo_data.py (simulated calls at 1000 Genomes chr22 positions)\n")
        fh.write("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
        for pos, rsid, ref, alt, af in records:
            fh.write(f"{CHROM}\t{pos}\t{rsid}\t{ref}\t{alt}\t50\tPASS\tDP={int(rng.integers(10, 60))};AF={af}\n")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "varfx" / "example_data"))
    args = ap.parse_args(argv)
    out = Path(args.out)
    bim = out / "1000G_eur_chr22.bim"
    rng = np.random.default_rng(20261201)
    lo, hi = _region(bim)
    span = hi - lo
    open_iv = _intervals(rng, lo, hi, n_clusters=span // 60_000, per_cluster=2, spread=5_000,
                         min_len=200, max_len=3_000)
    coding = _intervals(rng, lo, hi, n_clusters=span // 15_000, per_cluster=1.5, spread=2_000,
                        min_len=80, max_len=300)
    _write_bed(out / "demo_open.bed", open_iv, "open")
    _write_bed(out / "demo_coding.bed", coding, "coding")
    _write_bigwig(out / "demo_conservation.bw", lo, _conservation(rng, lo, hi, coding))
    (out / "demo_annotations.tsv").write_text(
        # one column per track (the 0/1 overlap would nearly repeat a 64 bp coverage),
        # and per-base tracks for the transformer prior
        "name\tpath\tkind\twindow\toptions\n"
        "open\tdemo_open.bed\tbed\t2000\toverlap=false;track=true\n"
        "coding\tdemo_coding.bed\tbed\t\toverlap=false;track=true\n"
        "conservation\tdemo_conservation.bw\tbigwig\t\ttrack=true\n")
    _write_vcf(out / "demo_calls.vcf", bim, rng, hi)
    cover = sum(e - s for s, e in open_iv) / span, sum(e - s for s, e in coding) / span
    print(f"region {CHROM}:{lo}-{hi}; open {len(open_iv)} intervals ({cover[0]:.1%}), "
          f"coding {len(coding)} ({cover[1]:.1%}); wrote {out}")


if __name__ == "__main__":
    main()

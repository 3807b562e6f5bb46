"""Ingest benchmarks: how fast the inputs of ``varfx ingest`` are read.

    python benchmarks/ingest.py --json [--rows 1000000,10000000] [--formats fastGWA,gwas-ssf,bolt,gwas-vcf]
                                [--baseline COMMIT] [--only sumstats-parse] [--workdir DIR] [--keep]

Prints a JSON list of records, one per measurement (with ``--json``; else a table).

``sumstats-parse``: for each row count and format, a gzipped summary-statistics file is
generated in a temporary directory (random but realistic values: rsids, sorted
positions on chromosomes 1-22, A/C/G/T alleles, 6 significant digits, gzip level 1),
then :func:`varfx.io.sumstats.read_sumstats` reads it in a fresh Python process (so
imports, the page cache of that file excepted, and memory are its own).  Record:
``{"task": "sumstats-parse", "rows", "seconds", "rows_per_second", "format", "parser",
"file_mb", "peak_rss_mb"}``: ``seconds`` is the wall time of ``read_sumstats`` (the
minimum over ``--repeats`` runs), ``file_mb`` the gzipped size, ``peak_rss_mb`` the
child's maximum resident memory.  ``--baseline COMMIT`` also times the reader of an
earlier commit on the fastGWA files (``parser``: ``varfx@COMMIT``; 19e7a83 is the
vectorised numpy splitter that pyarrow replaced).  ``sumstats-filter`` records time
:func:`~varfx.io.sumstats.filter_sumstats` (autosomes, INFO, MAF, multi-allelic) on the
same rows.

Adding a benchmark: append a function ``fn(args, workdir) -> list[dict]`` to
:data:`BENCHMARKS` (give it a ``name`` attribute for ``--only``); records should carry
``task``, ``seconds`` and whatever else describes the measurement.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

# ----------------------------------------------------------------------------------------
# generated summary statistics

_HEADERS = {
    "fastGWA": "CHR\tSNP\tPOS\tA1\tA2\tN\tAF1\tBETA\tSE\tP\n",
    "gwas-ssf": "chromosome\tbase_pair_location\teffect_allele\tother_allele\tbeta\tstandard_error\t"
                "effect_allele_frequency\tp_value\trsid\tn\n",
    "bolt": "SNP\tCHR\tBP\tGENPOS\tALLELE1\tALLELE0\tA1FREQ\tINFO\tBETA\tSE\tP_BOLT_LMM_INF\n",
}
_VCF_HEAD = (
    "##fileformat=VCFv4.2\n"
    + "".join(f'##FORMAT=<ID={k},Number=A,Type=Float,Description="{k}">\n' for k in ("ES", "SE", "LP", "AF", "SS"))
    + "".join(f"##contig=<ID={c}>\n" for c in range(1, 23))
    + "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tSTUDY\n"
)


def write_sumstats(path: Path, rows: int, fmt: str = "fastGWA", seed: int = 0, chunk: int = 250_000) -> Path:
    """A gzipped summary-statistics file of ``rows`` variants in format ``fmt``."""
    rng = np.random.default_rng(seed)
    bases = np.array(list("ACGT"))
    per_chrom = np.bincount(rng.integers(0, 22, rows), minlength=22)
    chrom = np.repeat(np.arange(1, 23), per_chrom)
    bp = np.concatenate([np.sort(rng.choice(np.arange(10_000, 240_000_000, 7), k, replace=False)) for k in per_chrom])
    opener = (lambda p: gzip.open(p, "wt", compresslevel=1))
    with opener(path) as fh:
        fh.write(_VCF_HEAD if fmt == "gwas-vcf" else _HEADERS[fmt])
        for s in range(0, rows, chunk):
            e = min(rows, s + chunk)
            k = e - s
            i1 = rng.integers(0, 4, k)
            a1 = bases[i1]
            a2 = bases[(i1 + rng.integers(1, 4, k)) % 4]
            af = rng.uniform(0.001, 0.999, k)
            se = rng.uniform(0.002, 0.05, k)
            beta = rng.normal(0, 1, k) * se
            p = rng.uniform(0, 1, k)
            c, b = chrom[s:e], bp[s:e]
            if fmt == "fastGWA":
                lines = [f"{c_}\trs{i}\t{b_}\t{x}\t{y}\t450000\t{f:.6g}\t{be:.6g}\t{sd:.6g}\t{pp:.4g}\n"
                         for i, c_, b_, x, y, f, be, sd, pp in zip(range(s, e), c, b, a1, a2, af, beta, se, p)]
            elif fmt == "gwas-ssf":
                lines = [f"{c_}\t{b_}\t{x}\t{y}\t{be:.6g}\t{sd:.6g}\t{f:.6g}\t{pp:.4g}\trs{i}\t450000\n"
                         for i, c_, b_, x, y, f, be, sd, pp in zip(range(s, e), c, b, a1, a2, af, beta, se, p)]
            elif fmt == "bolt":
                lines = [f"rs{i}\t{c_}\t{b_}\t0\t{x}\t{y}\t{f:.6g}\t0.98\t{be:.6g}\t{sd:.6g}\t{pp:.4g}\n"
                         for i, c_, b_, x, y, f, be, sd, pp in zip(range(s, e), c, b, a1, a2, af, beta, se, p)]
            elif fmt == "gwas-vcf":
                lines = [f"{c_}\t{b_}\trs{i}\t{y}\t{x}\t.\tPASS\t.\tES:SE:LP:AF:SS\t"
                         f"{be:.6g}:{sd:.6g}:{-np.log10(max(pp, 1e-300)):.4g}:{f:.6g}:450000\n"
                         for i, c_, b_, x, y, f, be, sd, pp in zip(range(s, e), c, b, a1, a2, af, beta, se, p)]
            else:  # pragma: no cover
                raise ValueError(fmt)
            fh.write("".join(lines))
    return path


_CHILD = r"""
import json, resource, sys, time
import pyarrow.compute, pyarrow.csv  # imported before timing: the parse is measured, not the imports
from varfx.io.sumstats import filter_sumstats
path, fmt, repeats, baseline = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
if baseline:  # the reader of an earlier commit, saved as a module in this directory
    sys.path.insert(0, baseline)
    from baseline_sumstats import read_sumstats
else:
    from varfx.io.sumstats import read_sumstats
if fmt == "gwas-vcf":
    import pysam
n = 450000 if fmt == "bolt" else None
best = float("inf")
for _ in range(repeats):
    t = time.perf_counter()
    ss = read_sumstats(path, n=n)
    best = min(best, time.perf_counter() - t)
if baseline:
    ss.setdefault("info", ss["z"] * float("nan"))
t = time.perf_counter()
keep, counts = filter_sumstats(ss)
filt = time.perf_counter() - t
print(json.dumps({"rows": ss.n_variants, "format": ss.format, "seconds": best, "filter_seconds": filt,
                  "kept": int(keep.sum()), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _baseline_module(commit: str, workdir: Path) -> Path:
    """``varfx/io/sumstats.py`` of ``commit`` (read with ``git show``), saved as
    ``baseline_sumstats.py`` with absolute imports; returns its directory."""
    text = subprocess.run(["git", "-C", str(REPO), "show", f"{commit}:varfx/io/sumstats.py"], capture_output=True,
                          text=True, check=True).stdout
    text = text.replace("from ..errors import", "from varfx.errors import").replace(
        "from .plink import", "from varfx.io.plink import")
    d = workdir / f"baseline-{commit}"
    d.mkdir(exist_ok=True)
    (d / "baseline_sumstats.py").write_text(text)
    return d


def bench_sumstats_parse(args, workdir: Path) -> list[dict]:
    records = []
    parsers = [("pyarrow", "")]  # (label, baseline module dir); GWAS-VCF is read by pysam
    if args.baseline:
        parsers.append((f"varfx@{args.baseline}", str(_baseline_module(args.baseline, workdir))))
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for fmt in args.formats:
        for rows in args.rows:
            suffix = ".vcf.gz" if fmt == "gwas-vcf" else ".tsv.gz"
            path = workdir / f"sumstats_{fmt}_{rows}{suffix}"
            t = time.perf_counter()
            write_sumstats(path, rows, fmt)
            gen = time.perf_counter() - t
            size = path.stat().st_size / 1e6
            repeats = args.repeats if rows <= 2_000_000 else 1
            for parser, baseline in parsers:
                if baseline and fmt not in ("fastGWA",):
                    continue  # the baseline reads LDSC and fastGWA only
                out = subprocess.run([sys.executable, "-c", _CHILD, str(path), fmt, str(repeats), baseline], env=env,
                                     capture_output=True, text=True)
                if out.returncode != 0:
                    raise SystemExit(f"{parser} on {path}: {out.stderr.strip().splitlines()[-1:]}")
                r = json.loads(out.stdout.strip().splitlines()[-1])
                assert r["rows"] == rows, (r, rows)
                label = "pysam" if fmt == "gwas-vcf" else parser
                records.append({"task": "sumstats-parse", "rows": rows, "seconds": round(r["seconds"], 3),
                                "rows_per_second": round(rows / r["seconds"]), "format": r["format"],
                                "parser": label, "file_mb": round(size, 1), "peak_rss_mb": round(r["peak_rss_mb"])})
                if not baseline:
                    records.append({"task": "sumstats-filter", "rows": rows, "seconds": round(r["filter_seconds"], 3),
                                    "rows_per_second": round(rows / r["filter_seconds"]), "format": r["format"]})
                print(f"# {fmt} {rows:,} rows ({size:.0f} MB, generated in {gen:.0f} s): {label} "
                      f"{r['seconds']:.2f} s, {r['peak_rss_mb']:.0f} MB", file=sys.stderr)
            if not args.keep:
                path.unlink()
    return records


bench_sumstats_parse.name = "sumstats-parse"

#: Every benchmark: ``fn(args, workdir) -> list of records``.  Append yours here.
def bench_bigwig_extract(args, workdir: Path) -> list[dict]:
    """Features per second for bigWig extraction (benchmarks/features.py's measurement)
    at the same variant counts as --rows, on a generated base-level chr1 bigWig."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import features as fb

    bw = workdir / "chr1.bw"
    if not bw.exists():
        fb.write_chr1_bigwig(bw, seed=0)
    fb.ensure_builtin_sources()
    return [fb.bench_extract(bw, rows, args.window, seed=1) for rows in args.rows]


bench_sumstats_parse.name = "sumstats"
bench_bigwig_extract.name = "bigwig"
BENCHMARKS = [bench_sumstats_parse, bench_bigwig_extract]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="print the records as one JSON list on stdout")
    ap.add_argument("--rows", default="1000000,10000000", help="comma-separated row counts")
    ap.add_argument("--formats", default="fastGWA", help="comma-separated: fastGWA, gwas-ssf, bolt, gwas-vcf")
    ap.add_argument("--repeats", type=int, default=3, help="runs per file up to 2M rows (the minimum is kept)")
    ap.add_argument("--window", type=int, default=256, help="bigWig window (bp) per variant")
    ap.add_argument("--only", default=None, help="run only the benchmarks with these names (comma-separated)")
    ap.add_argument("--workdir", default=None, help="where to write the generated files (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the generated files")
    ap.add_argument("--baseline", default=None, metavar="COMMIT",
                    help="also time varfx/io/sumstats.py of this git commit (e.g. 19e7a83, the numpy splitter)")
    args = ap.parse_args(argv)
    args.rows = [int(float(x)) for x in args.rows.split(",") if x.strip()]
    args.formats = [x.strip() for x in args.formats.split(",") if x.strip()]
    only = set(args.only.split(",")) if args.only else None
    records = []
    with tempfile.TemporaryDirectory(prefix="varfx-bench-", dir=args.workdir) as d:
        for bench in BENCHMARKS:
            if only and getattr(bench, "name", bench.__name__) not in only:
                continue
            records += bench(args, Path(d))
    if args.json:
        print(json.dumps(records))
    else:
        for r in records:
            print("  ".join(f"{k}={v}" for k, v in r.items()))


if __name__ == "__main__":
    main()

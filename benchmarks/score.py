"""score-vcf throughput: records per second and peak memory of ``varfx score-vcf``.

    python benchmarks/score.py --json [--records 100000,1000000] [--models glm,seqcnn]
                               [--threads 0[,1,2]] [--reference] [--previous] [--batch 10000]
                               [--workdir DIR] [--keep]

Prints one JSON object (with ``--json``; else one line per run).

Set-up (once, in a temporary directory): 300 chr22 variants of the bundled example data
are ingested with a bigWig track (gamma-distributed values at every base of a 5 Mb
region around them, per-base track and window mean, ``--feature-window 32``) and the
FASTA of that region (random bases, the .bim A2 allele at each variant); a GLM prior is
fitted on it (2 epochs) and a ``seqcnn`` prior with its default options (window 512; one
epoch: the weights do not change the cost).  For each record count a sorted VCF of SNVs
spread uniformly over the region is written (REF the FASTA base, an INFO ``AF``, one
sample's GT), plain text.

Each run is ``python -m varfx score-vcf MODEL VCF -o OUT`` in a child process of its own
(so the imports, caches and peak memory of one run do not leak into the next), with
``OMP_NUM_THREADS`` set to ``--omp`` (default 1: on the reference machine's 2 cores,
shared with other jobs, a second torch thread made seqcnn slower, not faster).
``--threads`` takes a comma-separated list: each VCF is scored once per value, the
values one after the other (so that their ratio is measured under the same load).
``--reference`` adds, for seqcnn, runs with the network's reference eval path
(``varfx.nn.seqcnn.FAST_EVAL`` off, 256 variants per forward, malloc's defaults: what
score-vcf ran before the fast path), ``--previous`` runs of the fast path as it was before
the first layers were shared between overlapping windows and freed memory reused
(window by window, malloc's defaults), each right after the fast run of the same VCF and
threads.
A record: ``{"model", "path", "threads", "records", "seconds", "records_per_second", "cpu_seconds",
"records_per_cpu_second", "wall_seconds", "peak_rss_mb"}``: ``seconds`` is the scoring
time the command reports (``seconds`` of its summary: records read, scored, written,
bgzipped and indexed; the model load and the mean F over the dataset excluded),
``cpu_seconds`` the CPU time of that part (all threads; on a shared machine records per
CPU second vary less than records per second), ``wall_seconds`` the whole command's,
``peak_rss_mb`` the child's maximum resident memory (``ru_maxrss`` from ``os.wait4``).
The object is ``{"runs": [records], "rss_ratio": {model: peak at the largest count over
peak at the smallest, over the fast runs at the first --threads value}, "goals",
"settings", "machine", "setup_seconds"}``; ``path`` is ``fast``, ``previous`` or ``reference``
(GLM runs: ``fast``), ``threads`` the run's ``--threads``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
REGION_BP = 5_000_000
GOALS = {"glm_records_per_second": 50_000, "seqcnn_records_per_second": 2_000, "rss_ratio_max": 1.10}


def _varfx(args, cwd, env=None):
    r = subprocess.run([sys.executable, "-m", "varfx", *[str(a) for a in args]], cwd=cwd, capture_output=True,
                       text=True, env=env)
    if r.returncode != 0:
        raise SystemExit(f"varfx {' '.join(map(str, args[:2]))} failed:\n{r.stdout}\n{r.stderr}")
    return r.stdout


def setup(work: Path, models) -> dict:
    """The dataset, its region (chrom 22, [lo, hi)) and the fitted models."""
    sys.path.insert(0, str(REPO))
    from varfx.testing.data import write_subset
    from varfx.testing.features import write_bigwig, write_fasta

    prefix, ss = write_subset(work / "in", 0, 300)
    bim = [line.split() for line in open(f"{prefix}.bim")]
    bp = np.array([int(b[3]) for b in bim])
    lo = int(bp.min()) - 1000
    hi = max(int(bp.max()) + 1000, lo + REGION_BP)
    rng = np.random.default_rng(0)
    vals = np.full(hi, np.nan, dtype=np.float32)
    vals[lo:hi] = rng.gamma(2.0, 1.0, hi - lo)
    write_bigwig(work / "signal.bw", {"chr22": vals})
    seq = np.frombuffer(b"ACGT", dtype=np.uint8)[rng.integers(0, 4, hi)]
    for b in bim:
        if len(b[5]) == 1:
            seq[int(b[3]) - 1] = ord(b[5])
    write_fasta(work / "ref.fa", {"chr22": seq.tobytes().decode()})
    del seq, vals
    (work / "manifest.tsv").write_text(f"name\tpath\nsignal\t{work / 'signal.bw'}\n")
    ds = work / "ds"
    _varfx(["ingest", "--sumstats", ss, "--ld", prefix, "--annotations", work / "manifest.tsv", "--fasta",
            work / "ref.fa", "--feature-window", 32, "-o", ds, "--json"], work)
    _varfx(["precompute-ld", ds, "--window-kb", 500, "--flank-kb", 100, "--json"], work)
    out = {"ds": str(ds), "lo": lo, "hi": hi, "models": {}}
    fit = ["--alpha", "learn", "--sigma2", 1, "--holdout-chroms", "none"]
    if "glm" in models:
        _varfx(["fit", ds, "--prior", "glm", *fit, "--epochs", 2, "-o", work / "glm"], work)
        out["models"]["glm"] = str(work / "glm")
    if "seqcnn" in models:
        _varfx(["fit", ds, "--prior", "seqcnn", *fit, "--epochs", 1, "-o", work / "seqcnn"], work)
        out["models"]["seqcnn"] = str(work / "seqcnn")
    return out


def write_vcf(path: Path, n: int, lo: int, hi: int, fasta: Path, seed: int = 1) -> Path:
    """``n`` sorted SNV records uniformly over ``[lo, hi)`` of chromosome 22 (positions
    may repeat: a VCF may hold two records at one position), REF the base of ``fasta``."""
    import pysam

    with pysam.FastaFile(str(fasta)) as fa:
        ref = np.frombuffer(fa.fetch("chr22").encode(), dtype="S1")
    rng = np.random.default_rng(seed)
    head = ("##fileformat=VCFv4.2\n##contig=<ID=22,length=51304566>\n"
            '##INFO=<ID=AF,Number=A,Type=Float,Description="ALT frequency">\n'
            '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
            "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\ts1\n")
    # all positions drawn and sorted at once (8 MB for 10^6): drawing each chunk over the
    # whole region and clipping it at the previous chunk's last position put 80% of a
    # 10^6-record VCF at one position (which the per-position scoring of DNA networks
    # then scored once); a VCF of up to 200,000 records is the same as before
    everywhere = np.sort(rng.integers(lo + 300, hi - 300, n))
    with open(path, "w") as fh:
        fh.write(head)
        for a in range(0, n, 200_000):
            k = min(n, a + 200_000) - a
            pos = everywhere[a:a + k]
            r = ref[pos - 1].astype(str)
            alt = np.where(r == "A", "G", "A")
            af = rng.uniform(0.001, 0.5, k)
            fh.write("".join(f"22\t{p}\t.\t{x}\t{y}\t.\tPASS\tAF={f:.4f}\tGT\t0|1\n"
                             for p, x, y, f in zip(pos.tolist(), r.tolist(), alt.tolist(), af.tolist())))
    return path


#: the child of a --reference run: varfx's CLI as it ran a DNA network before the fast
#: path (the reference eval path, fed 256 variants at a time, malloc's defaults)
REFERENCE_MAIN = ("import varfx.nn.seqcnn as s; s.FAST_EVAL = False; import varfx.stages.score_vcf as v; "
                  "v.DNA_CHUNK = 256; v._reuse_freed_memory = lambda: False; from varfx.cli import main; main()")
#: the child of a --previous run: the fast path as it was before the shared first layers
#: and the reuse of freed memory (issue 10's first fast path, window by window)
PREVIOUS_MAIN = ("import varfx.nn.seqcnn as s; s.SeqCNNModule._shared_block_input = lambda self, *a: None; "
                 "import varfx.stages.score_vcf as v; v._reuse_freed_memory = lambda: False; "
                 "from varfx.cli import main; main()")
CHILD_MAIN = {"reference": REFERENCE_MAIN, "previous": PREVIOUS_MAIN}


def run_one(model: Path, vcf: Path, out: Path, *, threads: int, batch: int, omp: int,
            path: str = "fast") -> dict:
    """One ``varfx score-vcf`` in a child process: its summary, wall time and peak RSS
    (``path``: ``fast``, the code as it is; ``reference`` or ``previous``, see CHILD_MAIN)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(omp), "PYTHONPATH": str(REPO)}
    entry = ["-c", CHILD_MAIN[path]] if path != "fast" else ["-m", "varfx"]
    cmd = [sys.executable, *entry, "score-vcf", str(model), str(vcf), "-o", str(out), "--json",
           "--threads", str(threads), "--batch", str(batch)]
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as so, tempfile.TemporaryFile() as se:
        p = subprocess.Popen(cmd, stdout=so, stderr=se, env=env)
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        so.seek(0)
        se.seek(0)
        stdout, stderr = so.read().decode(), se.read().decode()
    if p.returncode != 0:
        raise SystemExit(f"score-vcf failed ({p.returncode}):\n{stderr}")
    summary = json.loads(stdout.strip().splitlines()[-1])
    return {"summary": summary, "wall_seconds": wall, "peak_rss_mb": usage.ru_maxrss / 1024}


def _step(args: list) -> dict:
    """Run a step of the set-up in a child process (``--step``): the parent stays small, so
    that no child inherits its peak memory.  (A child's ``ru_maxrss`` counts the memory
    of the process it was started from, as it stood at ``exec``: a parent that had held the
    5 Mb reference as Python strings gave every run the same 567 MB peak.)"""
    r = subprocess.run([sys.executable, __file__, "--step", *[str(a) for a in args]], capture_output=True,
                       text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    if r.returncode != 0:
        raise SystemExit(f"step {args[0]} failed:\n{r.stderr}")
    return json.loads(r.stdout)


def main(argv=None):
    if argv is None and len(sys.argv) > 2 and sys.argv[1] == "--step":
        work = Path(sys.argv[3])
        if sys.argv[2] == "setup":
            print(json.dumps(setup(work, sys.argv[4].split(","))))
        else:
            s = json.loads((work / "setup.json").read_text())
            n = int(sys.argv[4])
            print(json.dumps({"vcf": str(write_vcf(work / f"in{n}.vcf", n, s["lo"], s["hi"], work / "ref.fa"))}))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    ap.add_argument("--records", default="100000,1000000", help="comma-separated record counts")
    ap.add_argument("--models", default="glm,seqcnn", help="comma-separated: glm, seqcnn")
    ap.add_argument("--threads", default="0", help="score-vcf --threads, comma-separated values each run in "
                    "turn (0: torch's default)")
    ap.add_argument("--reference", action="store_true", help="also run seqcnn with the network's reference "
                    "eval path (FAST_EVAL off), for the speed-up under the same load")
    ap.add_argument("--previous", action="store_true", help="also run seqcnn as the fast path was before the "
                    "shared first layers and the reuse of freed memory, for their speed-up under the same load")
    ap.add_argument("--omp", type=int, default=1, help="OMP_NUM_THREADS of each run (1: on 2 cores shared with other jobs a second torch thread was slower, measured)")
    ap.add_argument("--batch", type=int, default=10000, help="score-vcf --batch")
    ap.add_argument("--workdir", default=None, help="where to write the generated files (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the generated files (with --workdir)")
    args = ap.parse_args(argv)
    counts = [int(float(x)) for x in args.records.split(",") if x.strip()]
    threads = [int(x) for x in args.threads.split(",") if x.strip()]
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    for m in models:
        if m not in ("glm", "seqcnn"):
            ap.error(f"--models: unknown model {m!r} (expected glm, seqcnn)")
    runs = []
    with tempfile.TemporaryDirectory(prefix="varfx-bench-score-", dir=args.workdir) as d:
        work = Path(d)
        if args.keep and args.workdir:
            work = Path(args.workdir) / "score-bench"
            work.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        s = _step(["setup", work, ",".join(models)])
        (work / "setup.json").write_text(json.dumps(s))
        setup_s = time.perf_counter() - t0
        for n in counts:
            vcf = Path(_step(["vcf", work, n])["vcf"])
            paths = ["fast"] + ["previous"] * args.previous + ["reference"] * args.reference
            for m, t, path in [(m, t, path) for m in models for t in threads
                               for path in (paths if m == "seqcnn" else ["fast"])]:
                r = run_one(s["models"][m], vcf, work / f"out_{m}_{n}.vcf.gz", threads=t,
                            batch=args.batch, omp=args.omp, path=path)
                sm = r["summary"]
                if sm["records"] != n or sm["scored"] != n:
                    raise SystemExit(f"{m} at {n} records: scored {sm['scored']} of {sm['records']}")
                runs.append({"model": m, "path": path, "threads": t, "records": n,
                             "seconds": round(sm["seconds"], 3),
                             "records_per_second": round(n / sm["seconds"]),
                             "cpu_seconds": round(sm["cpu_seconds"], 3),
                             "records_per_cpu_second": round(n / sm["cpu_seconds"]),
                             "wall_seconds": round(r["wall_seconds"], 3),
                             "peak_rss_mb": round(r["peak_rss_mb"], 1)})
                if not args.json:
                    print("  ".join(f"{k}={v}" for k, v in runs[-1].items()), file=sys.stderr)
                os.unlink(work / f"out_{m}_{n}.vcf.gz")
            os.unlink(vcf)
    ratio = {}
    for m in models:
        rs = sorted((r for r in runs if r["model"] == m and r["path"] == "fast" and r["threads"] == threads[0]),
                    key=lambda r: r["records"])
        if len(rs) > 1:
            ratio[m] = round(rs[-1]["peak_rss_mb"] / rs[0]["peak_rss_mb"], 3)
    result = {"runs": runs, "rss_ratio": ratio, "goals": GOALS, "setup_seconds": round(setup_s, 1),
              "settings": {"threads": threads, "reference": args.reference, "previous": args.previous,
                           "omp_num_threads": args.omp, "batch": args.batch,
                           "region_bp": REGION_BP, "feature_window": 32},
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "platform": platform.platform()}}
    print(json.dumps(result) if args.json else json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

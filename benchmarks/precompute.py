#!/usr/bin/env python
"""precompute-ld benchmarks: seconds per window against its size, and Dask workers.

    python benchmarks/precompute.py --json [--sizes 1000,2000,4000,8000] [--repeats 2]
        [--window-kb 2000] [--flank-kb 250] [--speedup-repeats 1] [--skip-speedup] [--workdir DIR]

The data set is the bundled 1000 Genomes EUR chr22 panel (15,938 SNPs, 378 people) with
the UK Biobank height summary statistics of chr22, ingested once into a temporary
directory.  Every process runs with one BLAS thread (``OMP_NUM_THREADS=1`` unless set).

``window-cost`` records: one window of ``n_plus`` consecutive variants (the middle third
its core), computed in this process exactly as a precompute-ld worker does
(:func:`varfx.stages.precompute._compute_window`: the LD from the genotypes, the
eigendecomposition and the factors, with the default LD correction resolved for this
panel, and the part file written); ``seconds`` is the minimum over ``--repeats``.
``{"task": "window-cost", "n_plus", "n_core", "k", "seconds", "repeats"}``.

``window-cost-fit``: the least-squares power law ``seconds = a * n_plus ** b`` through
those points in log-log, ``{"task", "a", "b", "b_last", "max_rel_residual", "sizes"}``;
``b_last`` is the slope between the two largest sizes: at ``n_plus`` of a few thousand
the eigendecomposition of the core (``b`` -> 3) takes over.

``dask-speedup``: the whole stage (``run_precompute``: plan, windows, commit of
windows.h5) on the same data set with ``--window-kb``/``--flank-kb``, with a local
process pool of 1 worker (``--workers 1``) and with 1 and 2 local Dask workers
(a ``LocalCluster`` started beforehand, so that its start-up is not timed; the
scheduler is reached through its tcp address as a remote one would be), each the
minimum over ``--speedup-repeats`` runs, alternating.  ``{"task": "dask-speedup",
"windows", "pool_1_s", "dask_1_s", "dask_2_s", "speedup_2_over_1", "dask_1_over_pool_1",
"cpus"}``.  On a machine shared with other jobs only the ratios measured within one
run mean anything, and with two cores ``speedup_2_over_1`` is bounded by 2 minus what
the others use.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def ingest_chr22(workdir: Path) -> Path:
    from click.testing import CliRunner

    from varfx.cli import cli
    from varfx.testing.data import EXAMPLE_DATA, PANEL_NAME, SUMSTATS_NAME

    ds = workdir / "chr22"
    if not (ds / "dataset.h5").exists():
        r = CliRunner().invoke(cli, ["ingest", "--sumstats", str(EXAMPLE_DATA / SUMSTATS_NAME),
                                     "--ld", str(EXAMPLE_DATA / PANEL_NAME), "-o", str(ds), "--json"])
        if r.exit_code != 0:
            raise SystemExit(f"ingest failed: {r.output}")
    return ds


def window_cost(ds: Path, sizes, repeats: int, workdir: Path) -> list[dict]:
    import h5py

    from varfx.stages import precompute as pc
    from varfx.store.windows import WindowSpec

    with h5py.File(ds / "dataset.h5", "r") as h5:
        chrom = h5["variants"]["chrom"][:].astype(np.int64)
        bp = h5["variants"]["bp"][:].astype(np.int64)
        n_ref = int(h5.attrs.get("n_ref", 0))
    pc._worker_init(str(ds))
    parts = workdir / "cost.parts"
    parts.mkdir(exist_ok=True)
    # warm-up: the first window pays for imports and first-touch of the panel
    warm = np.arange(min(50, len(bp)))
    pc._compute_window(WindowSpec(index=0, chrom=int(chrom[0]), start=int(bp[0]), end=int(bp[warm[-1]]) + 1,
                                  core_idx=warm, plus_idx=warm), 1e-3, str(parts), n_ref, None)
    out = []
    for n_plus in sizes:
        if n_plus > len(bp):
            raise SystemExit(f"--sizes: {n_plus} is more than the {len(bp)} variants of the panel")
        lo = (len(bp) - n_plus) // 2  # the middle of chr22
        plus = np.arange(lo, lo + n_plus)
        core = plus[n_plus // 3: n_plus // 3 + max(1, n_plus // 3)]
        spec = WindowSpec(index=0, chrom=int(chrom[lo]), start=int(bp[core[0]]), end=int(bp[core[-1]]) + 1,
                          core_idx=core, plus_idx=plus)
        corr = pc.resolve_correction("auto", n_ref, n_plus)
        trunc = {k: corr[k] for k in ("max_rank", "var_share", "flank_r_min") if k in corr}
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            pc._compute_window(spec, 1e-3, str(parts), n_ref, trunc)
            times.append(time.perf_counter() - t0)
        with h5py.File(parts / "w000000.h5", "r") as h5:
            k = int(h5["window"].attrs["k"])
        out.append({"task": "window-cost", "n_plus": int(n_plus), "n_core": int(len(core)), "k": k,
                    "ld_correction": corr["method"], "seconds": min(times), "repeats": repeats})
    # the fit varfx plan uses too (varfx/linalg/costs.py); b_last, the slope between the
    # two largest sizes, is where the eigendecomposition's n^3 takes over from the n^2 of
    # the LD and G (only at a few thousand variants): the one to extrapolate with
    from varfx.linalg.costs import fit_power_law

    fit = fit_power_law([r["n_plus"] for r in out], [r["seconds"] for r in out])
    out.append({"task": "window-cost-fit", **fit, "sizes": [int(s) for s in sizes]})
    return out


def dask_speedup(ds: Path, window_kb: float, flank_kb: float, repeats: int, workdir: Path) -> dict:
    import logging

    import distributed

    from varfx.stages.precompute import run_precompute

    def timed(**kw):
        d = workdir / "speed"
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir()
        shutil.copy(ds / "dataset.h5", d / "dataset.h5")
        t0 = time.perf_counter()
        s = run_precompute(d, window_kb=window_kb, flank_kb=flank_kb, progress=False, **kw)
        return time.perf_counter() - t0, s["windows"]

    best = {"pool_1": [], "dask_1": [], "dask_2": []}
    clusters = {n: distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                            dashboard_address=None, silence_logs=logging.ERROR) for n in (1, 2)}
    try:
        for _ in range(repeats):
            t, windows = timed(workers=1)
            best["pool_1"].append(t)
            for n in (1, 2):
                t, _ = timed(dask_scheduler=clusters[n].scheduler_address)
                best[f"dask_{n}"].append(t)
    finally:
        for c in clusters.values():
            c.close()
    m = {k: min(v) for k, v in best.items()}
    return {"task": "dask-speedup", "windows": windows, "window_kb": window_kb, "flank_kb": flank_kb,
            "pool_1_s": m["pool_1"], "dask_1_s": m["dask_1"], "dask_2_s": m["dask_2"],
            "speedup_2_over_1": m["dask_1"] / m["dask_2"], "dask_1_over_pool_1": m["dask_1"] / m["pool_1"],
            "repeats": repeats, "cpus": os.cpu_count()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print a JSON list of records")
    ap.add_argument("--sizes", default="1000,2000,4000,8000", help="window sizes n_plus (variants)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--window-kb", type=float, default=2000)
    ap.add_argument("--flank-kb", type=float, default=250)
    ap.add_argument("--speedup-repeats", type=int, default=1)
    ap.add_argument("--skip-speedup", action="store_true", help="only the window costs (no dask needed)")
    ap.add_argument("--workdir", help="keep the ingested data set here (default: a temporary directory)")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    tmp = None
    if args.workdir:
        workdir = Path(args.workdir)
        workdir.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="varfx-bench-precompute-")
        workdir = Path(tmp.name)
    try:
        ds = ingest_chr22(workdir)
        records = window_cost(ds, sizes, args.repeats, workdir)
        if not args.skip_speedup:
            records.append(dask_speedup(ds, args.window_kb, args.flank_kb, args.speedup_repeats, workdir))
    finally:
        if tmp is not None:
            tmp.cleanup()
    if args.json:
        print(json.dumps(records, indent=1))
    else:
        for r in records:
            print("  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()))


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Benchmark of feature extraction and of the features store.

    python benchmarks/features.py [--json] [--variants 1000000,10000000] [--window 256]
        [--store-variants 100000] [--workdir DIR] [--keep] [--seed S]

``bigwig-extract``: a base-level bigWig covering chr1 (248,956,422 bp, one random value
per base, float32: the worst case for compression and the layout of conservation tracks
such as phyloP) is written with pyBigWig; for each size, that many uniformly random
positions on chr1, sorted (as a dataset is), are read with the ``bigwig`` feature source
exactly as ``write_features`` reads them: blocks of 16,384 variants, each giving the
``(n, window)`` per-base values and the per-variant mean.  ``seconds`` is the wall time
of the extraction alone; ``features_per_second = variants * window / seconds`` counts
per-base values, ``variants_per_second`` windows.

``store``: ``write_features`` for ``--store-variants`` random positions in the first
30 Mb of chr1 with a bigWig track (the random file above), a BED track (100,000
intervals of 50-2,000 bp, ``track=true``), the architecture features and a FASTA
(random sequence with soft-masked stretches and N runs); the records give the time and
the stored bytes of each dataset (HDF5 storage size after gzip), and those bytes per
million variants (``bytes_per_million``).

Records are printed one JSON object per line, or as one JSON list with ``--json``.
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

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CHR1 = 248_956_422


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def write_chr1_bigwig(path: Path, seed: int) -> float:
    import pyBigWig

    t = time.time()
    rng = np.random.default_rng(seed)
    bw = pyBigWig.open(str(path), "w")
    bw.addHeader([("chr1", CHR1)], maxZooms=0)
    step = 10_000_000
    for s in range(0, CHR1, step):
        n = min(step, CHR1 - s)
        bw.addEntries("chr1", s, values=rng.random(n, dtype=np.float32).astype(np.float64), span=1, step=1)
    bw.close()
    return time.time() - t


def bench_extract(bw_path: Path, n: int, window: int, seed: int) -> dict:
    from varfx.features.sources import BigWigSource
    from varfx.features.store import BLOCK_ROWS

    rng = np.random.default_rng(seed)
    pos = np.sort(rng.integers(1, CHR1 + 1, n))
    chrom = np.ones(n, dtype=np.int64)
    src = BigWigSource()
    check = 0.0
    t = time.perf_counter()
    for a in range(0, n, BLOCK_ROWS):
        scalar, track = src.extract(bw_path, chrom[a:a + BLOCK_ROWS], pos[a:a + BLOCK_ROWS], window=window,
                                    track_window=window)
        check += float(scalar[:, 0].sum())
    dt = time.perf_counter() - t
    mean = check / n
    return {"task": "bigwig-extract", "variants": n, "window": window, "seconds": round(dt, 3),
            "features_per_second": round(n * window / dt), "variants_per_second": round(n / dt),
            "mean_value": round(mean, 4)}


def bench_store(bw_path: Path, workdir: Path, n: int, window: int, seed: int) -> list[dict]:
    import h5py

    from varfx.features.manifest import ManifestEntry
    from varfx.features.store import write_features
    from varfx.testing.features import write_bed

    rng = np.random.default_rng(seed + 1)
    span = 30_000_000
    bases = np.frombuffer(b"ACGT", dtype=np.uint8)[rng.integers(0, 4, span)].copy()
    for s in rng.integers(0, span - 5000, 200):
        bases[s:s + int(rng.integers(100, 5000))] = ord("N")
    for s in rng.integers(0, span - 5000, 2000):
        sl = slice(s, s + int(rng.integers(100, 3000)))
        bases[sl] = bases[sl] | 0x20 * (bases[sl] != ord("N"))  # soft-masked
    fa = workdir / "chr1_30mb.fa"
    with open(fa, "wb") as fh:
        fh.write(b">chr1\n")
        for i in range(0, span, 60):
            fh.write(bases[i:i + 60].tobytes() + b"\n")
    import pysam

    pysam.faidx(str(fa))
    starts = np.sort(rng.integers(0, span, 100_000))
    bed = write_bed(workdir / "peaks.bed", [("chr1", int(a), int(a + rng.integers(50, 2000))) for a in starts])
    pos = np.sort(rng.integers(window, span - window, n))
    chrom = np.ones(n, dtype=np.int64)
    freq = rng.uniform(0.01, 0.99, n)
    entries = [ManifestEntry("track", "bigwig", bw_path), ManifestEntry("peaks", "bed", bed, options={"track": True}),
               ManifestEntry("arch", "architecture", None), ManifestEntry("sequence", "fasta", fa)]
    out = workdir / "features.h5"
    t = time.perf_counter()
    with h5py.File(out, "w") as f5:
        summary = write_features(f5.create_group("features"), chrom, pos, entries, window=window,
                                 variants={"freq": freq})
        dt = time.perf_counter() - t
        recs = [{"task": "store", "variants": n, "window": window, "seconds": round(dt, 3),
                 "scalar_columns": len(summary["scalar_columns"]), "window_tracks": summary["window_tracks"],
                 "file_bytes": None}]
        g = f5["features"]
        for name in ("scalar", "window", "sequence"):
            ds = g[name]
            size = int(ds.id.get_storage_size())
            recs.append({"task": "store-size", "dataset": f"features/{name}", "variants": n, "window": window,
                         "shape": list(ds.shape), "dtype": str(ds.dtype), "bytes": size,
                         "bytes_per_million": round(size * 1_000_000 / n),
                         "uncompressed_bytes_per_million": round(int(np.prod(ds.shape[1:])) * ds.dtype.itemsize
                                                                 * 1_000_000)})
        if "window" in g:
            # the two tracks apart: random values (incompressible) vs BED 0/1 coverage
            for j, tname in enumerate(summary["window_tracks"]):
                tmp = workdir / f"one_{j}.h5"
                with h5py.File(tmp, "w") as f1:
                    d1 = f1.create_dataset("w", data=g["window"][:, :, j:j + 1], chunks=(1024, window, 1),
                                           compression="gzip", compression_opts=4, shuffle=True)
                    size = int(d1.id.get_storage_size())
                recs.append({"task": "store-size", "dataset": f"features/window[{tname}]", "variants": n,
                             "window": window, "dtype": str(g["window"].dtype), "bytes": size,
                             "bytes_per_million": round(size * 1_000_000 / n)})
                tmp.unlink()
    recs[0]["file_bytes"] = os.path.getsize(out)
    recs[0]["file_bytes_per_million"] = round(os.path.getsize(out) * 1_000_000 / n)
    return recs


def ensure_builtin_sources():
    """Register the built-in feature sources if the plugin manager lacks them."""
    import varfx.default_plugins.features as mod
    from varfx import plugins

    pm = plugins.get_plugin_manager()
    if not pm.is_registered(mod):
        pm.register(mod, name="varfx.default_plugins.features")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="print the records as one JSON list")
    ap.add_argument("--variants", default="1000000,10000000", help="comma-separated numbers of variant positions")
    ap.add_argument("--window", type=int, default=256)
    ap.add_argument("--store-variants", type=int, default=100_000, help="0: skip the store benchmark")
    ap.add_argument("--workdir", default=None, help="where to write the bigWig (default: a temporary directory)")
    ap.add_argument("--keep", action="store_true", help="keep the generated files")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    ensure_builtin_sources()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="varfx-bench-features-"))
    work.mkdir(parents=True, exist_ok=True)
    records = []
    try:
        bw = work / "chr1_random.bw"
        if not bw.exists():
            log(f"writing {bw} (chr1, one random value per base)")
            dt = write_chr1_bigwig(bw, args.seed)
            records.append({"task": "write-bigwig", "bases": CHR1, "seconds": round(dt, 3),
                            "bytes": os.path.getsize(bw)})
            log(json.dumps(records[-1]))
        for n in [int(x) for x in args.variants.split(",") if x.strip()]:
            rec = bench_extract(bw, n, args.window, args.seed)
            records.append(rec)
            log(json.dumps(rec))
        if args.store_variants:
            for rec in bench_store(bw, work, args.store_variants, args.window, args.seed):
                records.append(rec)
                log(json.dumps(rec))
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(records, indent=1) if args.json else "\n".join(json.dumps(r) for r in records))


if __name__ == "__main__":
    main()

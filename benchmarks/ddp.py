"""Windows per second per process of `varfx fit` under torchrun, 1 against N processes.

    OMP_NUM_THREADS=1 python benchmarks/ddp.py [--processes 1,2] [--priors constant,transformer]
           [--snps 3000] [--epochs 4] [--batch-windows 4] [--loader-workers 0] [--device cpu]
           [--dataset DIR]

Builds (unless ``--dataset``) a dataset of ``--snps`` consecutive chr22 variants of the
bundled 1000 Genomes panel and UK Biobank height with the bundled demo annotations,
windows of 250 kb with 100 kb flanks,
then for each prior and each process count runs

    torchrun --standalone --nproc_per_node K -m varfx fit DS --optimizer adamw --alpha 0
        --sigma2 1 --holdout-chroms none --epochs E --batch-windows B --log-jsonl LOG ...

(``--device cuda`` adds ``--device cuda``: one GPU per process; gloo on CPU, nccl on
CUDA).  The time is taken from the fit's own log (``seconds`` of each ``epoch_end``
record: since its training loop started), over epochs 2..E, so process start-up, the
set-up and the first epoch's warm-up are left out; every step includes the rank's read
of its share of the batch (each rank reads its own windows when K > 1) and the
all-reduces; ``read_fraction`` is the part of that time rank 0 spent waiting for its
windows (``read_seconds`` of the log: reading them itself, or waiting for the loader's
processes; 0 for one process without loader workers, which holds every window).
``windows_per_s`` is the training windows of those epochs over that time;
``windows_per_s_per_process`` divides it by K; ``scaling`` is windows/s of K processes
over windows/s of one, measured in the same run of this script.  Every process runs with
``OMP_NUM_THREADS=1``.  Prints one JSON object.

``transformer`` is the default small one (``-p dropout=0``, so that the processes' fits
agree); ``transformer-384`` and ``transformer-1536`` are the paper's small and full-size
ones (as in ``benchmarks/fit.py``), for a GPU run; the dataset is ingested with the
bundled demo annotations (per-base tracks in 64-bp windows, which the transformer
reads).  On a machine with G GPUs:
``python benchmarks/ddp.py --device cuda --processes 1,G --priors transformer-384,transformer-1536``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PRIORS = {"constant": [], "transformer": ["--prior", "transformer", "-p", "dropout=0"],
          # the paper's small and full-size transformers (benchmarks/fit.py), for a GPU run
          "transformer-384": ["--prior", "transformer", "-p", "dropout=0", "-p", "width=384", "-p", "depth=2",
                              "-p", "tower=1"],
          "transformer-1536": ["--prior", "transformer", "-p", "dropout=0", "-p", "width=1536", "-p", "depth=2",
                               "-p", "tower=1"]}


def build(directory: Path, snps: int) -> Path:
    from varfx.testing.data import EXAMPLE_DATA, write_subset

    prefix, ss = write_subset(directory / "in", 2000, snps)
    ds = directory / "ds"
    # the bundled demo annotations: the transformer reads per-base tracks
    for cmd in (["ingest", "--sumstats", str(ss), "--ld", str(prefix), "-o", str(ds),
                 "--annotations", str(EXAMPLE_DATA / "demo_annotations.tsv"), "--feature-window", "64"],
                ["precompute-ld", str(ds), "--window-kb", "250", "--flank-kb", "100"]):
        subprocess.run([sys.executable, "-m", "varfx", *cmd], check=True, capture_output=True)
    return ds


def fit(ds: Path, prior: str, k: int, args, work: Path) -> dict:
    out, log = work / f"m-{prior}-{k}", work / f"log-{prior}-{k}.jsonl"
    cmd = ["torchrun", "--standalone", "--nproc_per_node", str(k), "-m", "varfx", "fit", str(ds),
           "--optimizer", "adamw", "--alpha", "0", "--sigma2", "1", "--holdout-chroms", "none",
           "--epochs", str(args.epochs), "--batch-windows", str(args.batch_windows),
           "--loader-workers", str(args.loader_workers), "--checkpoint-every", "0", "--log-jsonl", str(log),
           "-o", str(out), *PRIORS[prior]]
    if args.device != "cpu":
        cmd += ["--device", args.device]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{res.stderr[-3000:]}")
    records = [json.loads(line) for line in log.read_text().splitlines()]
    ends = {r["epoch_end"]: r["seconds"] for r in records if "epoch_end" in r}
    reads = {r["epoch_end"]: r["read_seconds"] for r in records if "epoch_end" in r}
    windows = sum(r["windows"] for r in records if "step" in r and r["epoch"] > 1)
    meta = json.loads((out / "model.json").read_text())
    seconds = ends[args.epochs] - ends[1]
    return {"prior": prior, "processes": k, "train_windows": meta["n_train_windows"],
            "timed_epochs": args.epochs - 1, "seconds": round(seconds, 4),
            "read_fraction": round((reads[args.epochs] - reads[1]) / seconds, 4),
            "windows_per_s": round(windows / seconds, 3), "windows_per_s_per_process": round(windows / seconds / k, 3),
            "final_train_loss": meta["curve"][-1]["train_loss"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--processes", default="1,2")
    ap.add_argument("--priors", default="constant,transformer")
    ap.add_argument("--snps", type=int, default=3000)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--batch-windows", type=int, default=4)
    ap.add_argument("--loader-workers", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dataset", default=None)
    args = ap.parse_args()
    if args.epochs < 2:
        ap.error("--epochs: at least 2 (the first is not timed)")
    if shutil.which("torchrun") is None:
        raise SystemExit("torchrun is not on PATH")
    counts = [int(x) for x in args.processes.split(",")]
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        ds = Path(args.dataset) if args.dataset else build(work, args.snps)
        runs = [fit(ds, prior, k, args, work) for prior in args.priors.split(",") for k in counts]
    for r in runs:
        base = next(x for x in runs if x["prior"] == r["prior"] and x["processes"] == counts[0])
        r["scaling"] = round(r["windows_per_s"] / base["windows_per_s"], 3)
    print(json.dumps({"task": "ddp", "device": args.device, "omp_num_threads": 1, "cpu_count": os.cpu_count(),
                      "load_average": [round(x, 2) for x in os.getloadavg()], "batch_windows": args.batch_windows,
                      "loader_workers": args.loader_workers, "runs": runs}))


if __name__ == "__main__":
    main()

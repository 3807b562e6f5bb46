"""Multiple-instance fine-mapping on a simulation with known causal variants: which
training choices let a sequence CNN find them?

    python benchmarks/mil_simulation.py --json [--seeds 0] [--epochs 40]
           [--configs NAME,...] [--window 128] [--threads 2] [--keep DIR]

The simulation (:func:`varfx.testing.mil_sim.simulate_mil`): a random genome with two
10-bp motifs planted 3-39 bp from each causal variant, a simulated genotype panel with
LD blocks (in-sample LD), summary statistics from the causal effects.  Pipeline:
``ingest --fasta``, ``precompute-ld``, ``bags`` (defaults), then ``fit --prior seqcnn``
with each config, chromosomes 6, 7, 8 held out, and ``evaluate --truth``: the held-out
within-bag AUROC of causal variants against their LD neighbours (r^2 >= 0.5), beside
the |z| ranking of the same pairs, and causal variants against negatives.

Configs (``-O`` options of the ``mil`` objective; see docs/fine-mapping.md):
``max``: max pooling from a random start, one single-variant negative per bag;
``instance``: every member of a positive bag labelled positive (uniform weights), single
negatives; ``instance_matched``: the same with size-matched negatives; ``instance_pip``:
members weighted by their single-effect posterior from |z|, matched negatives;
``warmup``: uniform instance labels for the first half of the epochs, then max pooling,
single negatives; ``matched``: max pooling with size-matched negatives, no warm-up;
``warmup_uniform``: the warm-up with uniform weights, matched negatives;
``lse_anneal``: log-sum-exp pooling annealed from r = 1 to 100, matched negatives;
``default``: the defaults (a pip-weighted warm-up for half the epochs, then max pooling,
matched negatives; ``default_lr1e-3``: at learning rate 1e-3; ``default_single``: with
single-variant negatives); ``full_batch``: the
defaults with every bag in one step; ``seqcnn_full``: not MIL but the same network
trained on the exact likelihood (objective ``full``, one window per step), its log f
ranking each bag.  Prints a JSON list, one record per config.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

U = ["-O", "instance_weights=uniform"]
CONFIGS = {
    "max": ["-O", "pool=max", "-O", "negatives=single", "-O", "warmup_epochs=0"],
    "instance": ["-O", "label=instance", "-O", "negatives=single", "-O", "warmup_epochs=0", *U],
    "instance_matched": ["-O", "label=instance", "-O", "negatives=matched", "-O", "warmup_epochs=0", *U],
    "instance_pip": ["-O", "label=instance", "-O", "negatives=matched", "-O", "warmup_epochs=0"],
    "warmup": ["-O", "pool=max", "-O", "negatives=single", "-O", "warmup_epochs=HALF", *U],
    "matched": ["-O", "pool=max", "-O", "negatives=matched", "-O", "warmup_epochs=0"],
    "warmup_uniform": ["-O", "pool=max", "-O", "negatives=matched", "-O", "warmup_epochs=HALF", *U],
    "lse_anneal": ["-O", "pool=lse", "-O", "r=1", "-O", "anneal=100", "-O", "negatives=matched",
                   "-O", "warmup_epochs=0"],
    "default": [],
    "default_single": ["-O", "negatives=single"],
    "default_lr1e-3": ["--lr", "1e-3"],
    "full_batch": ["--batch-windows", "0"],
    # not MIL: the same network fitted to the exact likelihood of the summary statistics
    # (f from sequence), 1 window per step, sigma^2 = 1 as simulated (LD score regression
    # gives a negative intercept with these strong in-sample effects); ranked within bags by its log f
    "seqcnn_full": ["--objective", "full", "--batch-windows", "1", "--sigma2", "1"],
}


def run(args):
    from click.testing import CliRunner

    from varfx.cli import cli

    r = CliRunner().invoke(cli, [str(a) for a in args])
    if r.exit_code != 0:
        raise SystemExit(f"varfx {' '.join(map(str, args))} failed:\n{r.output}")
    return r


def prepare(tmp: Path, seed: int, window: int):
    from varfx.testing.mil_sim import simulate_mil

    sim = simulate_mil(tmp / "sim", seed=seed)
    ds = tmp / "ds"
    run(["ingest", "--sumstats", sim.sumstats, "--ld", sim.panel, "--fasta", sim.fasta, "--feature-window", 32,
         "-o", ds, "--json"])
    run(["precompute-ld", ds, "--json"])
    bags = json.loads(run(["bags", ds]).stdout)
    return sim, ds, bags


def fit_and_evaluate(tmp, sim, ds, name, extra, epochs, window, seed):
    extra = [a.replace("HALF", str(epochs // 2)) for a in extra]
    model = tmp / f"m_{name}_{seed}"
    t0 = time.perf_counter()
    objective = [] if "--objective" in extra else ["--objective", "mil"]
    run(["fit", ds, "--prior", "seqcnn", *objective, "-p", f"window={window}", *extra,
         "--epochs", epochs, "--seed", seed, "-o", model])
    seconds = time.perf_counter() - t0
    ev = json.loads(run(["evaluate", model, ds, "--truth", sim.truth, "--json"]).stdout)
    keys = ("auroc_within_bags", "auroc_within_bags_abs_z", "top1_within_bags", "top1_chance",
            "auroc_causal_vs_negatives", "n_bags", "n_pairs")
    return {k: ev.get(k) for k in keys} | {"fit_seconds": round(seconds, 1)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--window", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--keep", default=None, help="keep the simulation and models in this directory")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    out = []
    for seed in (int(s) for s in a.seeds.split(",")):
        ctx = tempfile.TemporaryDirectory() if a.keep is None else None
        tmp = Path(ctx.name if ctx else a.keep) / f"seed{seed}"
        tmp.mkdir(parents=True, exist_ok=True)
        sim, ds, bags = prepare(tmp, seed, a.window)
        print(json.dumps({"seed": seed, "bags": bags}), file=sys.stderr, flush=True)
        for name in a.configs.split(","):
            rec = {"seed": seed, "config": name, "options": CONFIGS[name], "epochs": a.epochs,
                   **fit_and_evaluate(tmp, sim, ds, name, CONFIGS[name], a.epochs, a.window, seed)}
            out.append(rec)
            print(json.dumps(rec), file=sys.stderr, flush=True)
        if ctx:
            ctx.cleanup()
    print(json.dumps(out, indent=None if a.json else 2))


if __name__ == "__main__":
    main()

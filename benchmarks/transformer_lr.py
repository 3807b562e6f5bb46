"""Which learning rate and batch size let the default transformer prior learn?

    python benchmarks/transformer_lr.py --json [--seeds 1,2] [--epochs 100]
           [--configs "1e-4:1,1e-3:1,1e-2:0"] [--width 64] [--threads 1]
    python benchmarks/transformer_lr.py --json --demo-dir DEMO [--seeds 0,1] [--width 16]
           [--configs "1e-2:0:40,1e-2:4:40,default"]

``--demo-dir DEMO`` measures on the outputs of one ``varfx demo -o DEMO`` run instead
(its dataset, truth and constant-prior model ``models/constant-full``; the windows whose
core starts in 22:40000000- held out, as the demo holds them out): each config
``LR:BATCH_WINDOWS:EPOCHS`` (or ``default``: every AdamW option at the fit's default)
fits the transformer with the full likelihood, and the record has the held-out
log-likelihood gain over the constant prior with its paired jackknife SE
(``evaluate`` comparison mode), the RMSE of log f against the truth and the seconds.

A two-chromosome simulation per seed (3000 variants of the bundled chr22 panel, the
second half relabelled chromosome 21; a GLM truth over a bigWig and a BED track, as
tests/test_transformer_convergence.py builds it), chromosome 22 held out.  Each config
``LR:BATCH_WINDOWS`` fits the transformer prior (default size unless ``--width``) with
AdamW at that peak learning rate and windows per step (0 = all), early stopping with
``--patience 10`` on the held-out windows, and records the held-out RMSE of log f
against the truth, the epochs run and the seconds.  The constant prior and the GLM
(the truth's own model class) are the floor and the ceiling.  Prints a JSON list.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path



def run(args):
    from click.testing import CliRunner

    from varfx.cli import cli

    r = CliRunner().invoke(cli, [str(a) for a in args])
    if r.exit_code != 0:
        raise SystemExit(r.output)
    return r


def simulation(tmp: Path, seed: int):
    from varfx.testing.data import two_chromosome_glm_simulation

    return two_chromosome_glm_simulation(tmp, track_seed=seed, sim_seed=seed)


def held_out(tmp, sim, ds, name, args):
    model = tmp / name
    t0 = time.perf_counter()
    run(["fit", ds, *args, "--sigma2", 1, "--holdout-chroms", "22", "-o", model])
    seconds = time.perf_counter() - t0
    ev = json.loads(run(["evaluate", model, ds, "--chroms", "22", "--truth", sim / "truth.tsv", "--json"]).stdout)
    meta = json.loads((model / "model.json").read_text())
    return {"rmse_log_f": ev["rmse_log_f"], "epochs": meta.get("epochs_done"),
            "best_epoch": meta.get("best_epoch"), "seconds": round(seconds, 1)}


DEMO_HOLDOUT = "22:40000000-"  # varfx/stages/demo.py's HOLDOUT_REGION


def demo_runs(a):
    """The --demo-dir measurement (see the module's docstring)."""
    import sys

    demo = Path(a.demo_dir)
    ds, truth, const = demo / "dataset", demo / "simulation" / "truth.tsv", demo / "models" / "constant-full"
    out = []
    with tempfile.TemporaryDirectory() as d:
        for seed in (int(s) for s in a.seeds.split(",")):
            for cfg in a.configs.split(","):
                args = ["--prior", "transformer", "--seed", seed, "--threads", a.threads]
                if a.width:
                    args += ["-p", f"width={a.width}"]
                if cfg != "default":
                    lr, bw, ep = cfg.split(":")
                    args += ["--lr", lr, "--batch-windows", bw, "--epochs", ep]
                model = Path(d) / f"m_{seed}_{cfg.replace(':', '_')}"
                t0 = time.perf_counter()
                run(["fit", ds, *args, "--holdout-chroms", "none", "--holdout-region", DEMO_HOLDOUT, "-o", model])
                seconds = time.perf_counter() - t0
                ev = json.loads(run(["evaluate", const, model, ds, "--truth", truth, "--json"]).stdout)
                net = next(m for m in ev["models"] if m["model"] == str(model))
                cst = next(m for m in ev["models"] if m["model"] == str(const))
                meta = json.loads((model / "model.json").read_text())
                rec = {"seed": seed, "config": cfg, "lr": meta["lr"], "batch_windows": meta["batch_windows"],
                       "epochs": meta["epochs"], "epochs_done": meta.get("epochs_done"),
                       "best_epoch": meta.get("best_epoch"), "updates": meta.get("optimizer_updates"),
                       # the constant prior is the first model given: diff_vs_first is paired with it
                       "dll_vs_constant": net["diff_vs_first"], "dll_vs_constant_se": net["diff_vs_first_se"],
                       "rmse_log_f": net["rmse_log_f"], "rmse_log_f_constant": cst["rmse_log_f"],
                       "seconds": round(seconds, 1)}
                out.append(rec)
                print(json.dumps(rec), flush=True, file=sys.stderr)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--demo-dir", default=None, help="measure on this `varfx demo -o` directory's outputs")
    ap.add_argument("--seeds", default="1,2")
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--configs", default="1e-4:1,1e-3:1,1e-2:0")
    ap.add_argument("--width", type=int, default=0, help="transformer width (0: the prior's default)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    if a.demo_dir:
        print(json.dumps(demo_runs(a), indent=None if a.json else 2))
        return
    out = []
    for seed in (int(s) for s in a.seeds.split(",")):
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            sim, ds = simulation(tmp, seed)
            for name, args in (("constant", ["--prior", "constant"]), ("glm", ["--prior", "glm"])):
                out.append({"seed": seed, "prior": name, **held_out(tmp, sim, ds, name, args)})
            for cfg in a.configs.split(","):
                lr, bw = cfg.split(":")
                net = ["--prior", "transformer", "--lr", lr, "--batch-windows", bw, "--patience", 10,
                       "--epochs", a.epochs, "--seed", 0]
                if a.width:
                    net += ["-p", f"width={a.width}"]
                rec = {"seed": seed, "prior": "transformer", "lr": float(lr), "batch_windows": int(bw),
                       **held_out(tmp, sim, ds, f"tr_{lr}_{bw}", net)}
                out.append(rec)
                print(json.dumps(rec), flush=True, file=__import__("sys").stderr)
    print(json.dumps(out, indent=None if a.json else 2))


if __name__ == "__main__":
    main()

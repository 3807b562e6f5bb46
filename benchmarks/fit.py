"""Seconds per window step of `varfx fit`, split into prior forward, linear algebra
(the exact reduced-form loss and its gradient) and prior backward.

    python benchmarks/fit.py --json [--sizes 4000,12000] [--device cpu|cuda]
           [--transformer-cap 512] [--repeats 3] [--linalg-dtype float32] [--amp]

One synthetic window per size: ``n+`` variants with 5 per-base tracks in a 256-bp
window and 10 scalar features, ``n = n+ / 3`` core variants, ``k = n`` (a full-rank
LD spectrum: the worst case for the linear algebra).  Priors: constant, GLM, the default
small transformer, the paper's small (width 384) and full-size (width 1536, ~52M
parameters) transformers.  A transformer forward over ``n+`` variants scales linearly
in ``n+``; on a CPU the large models are timed on ``--transformer-cap`` variants and
scaled to ``n+`` (the record says ``"extrapolated": true``).  Prints a JSON list.

Each record also has the floating-point work of the step, which does not depend on the
machine: ``network_gflop`` (forward + backward, counted by
``torch.utils.flop_counter.FlopCounterMode``, including the re-forward of checkpointed
chunks; the timed variants are one chunk, which the transformer does not checkpoint, so
a step over several chunks does about 35/26 of the scaled count) and ``linalg_gflop`` (the matrix products counted the same way, plus the
Cholesky, ``k^3 / 3``, and the triangular solve, ``n+ k^2``, which the counter does not
see).  On a GPU a first untimed step warms up the kernels (``--warmup``), and the time
is the minimum over ``--repeats`` steps.  ``--amp`` runs the network under bfloat16
autocast as ``varfx fit --amp`` does; ``--linalg-dtype`` is ``fit --dtype``.

Network throughput (``--throughput PRIORS``, default ``transformer-default``; ``""``
skips it): the prior's forward + backward in training mode (checkpointed chunks and
their re-forward included, as a fit runs it) on ``--throughput-variants`` variants
(default 1,024) after one untimed warm-up step, repeated ``--throughput-repeats`` times;
each step is timed between two 2048 x 2048 float32 GEMMs timed in the same process, so
the record gives the achieved GFLOP/s (FLOPs counted by ``FlopCounterMode``) beside the
machine's GEMM rate of that moment, and their ratio ``gemm_share`` (per repeat, and the
median; the counter is taught the oneDNN products the transformer calls on a CPU,
``transformer_kernels.register_flop_counts``, so the count does not depend on the
kernel), which a shared machine's load changes much less than either rate.  Each repeat
also records ``minor_faults``, the page faults of the step (``getrusage``): a step that
allocates fresh pages pays for each (varfx/nn/transformer_kernels.keep_freed_memory).
On a CPU the record names the host (``cpu``: the model, its data caches): the share
differs between hosts of one kind (docs/benchmarks.md, round 8).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

import numpy as np
import torch

from varfx.default_plugins.priors import ConstantPrior, GLMPrior, TransformerPrior
from varfx.default_plugins.solvers import CholeskySolver

PRIORS = [
    ("constant", ConstantPrior, {}),
    ("glm", GLMPrior, {}),
    ("transformer-default", TransformerPrior, {}),
    ("transformer-384", TransformerPrior, {"width": 384, "depth": 2, "tower": 1}),
    ("transformer-1536", TransformerPrior, {"width": 1536, "depth": 2, "tower": 1}),
]


def _sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def _flops(fn) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    from varfx.nn.transformer_kernels import register_flop_counts

    register_flop_counts()  # the oneDNN products the transformer calls on a CPU
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return float(counter.get_total_flops())


def bench(n_plus, name, cls, opts, device, cap, dtype=torch.float64, repeats=1, warmup=0, amp=False):
    best, flops = None, None
    for r in range(warmup + repeats):
        # the work of a step is the same every time: count it once
        rec = _bench_once(n_plus, name, cls, opts, device, cap, dtype, amp, count_flops=flops is None)
        flops = flops or {k: rec[k] for k in ("network_gflop", "linalg_gflop")}
        if r >= warmup and (best is None or rec["step_s"] < best["step_s"]):
            best = rec
    best.update(flops, repeats=repeats)
    return best


def _bench_once(n_plus, name, cls, opts, device, cap, dtype, amp, count_flops=True):
    rng = np.random.default_rng(0)
    n = n_plus // 3
    G = torch.tensor(rng.standard_normal((n_plus, n)) / np.sqrt(n), dtype=dtype, device=device)
    z = torch.tensor(rng.standard_normal(n), dtype=dtype, device=device)
    s2 = torch.tensor(2.5e-6, dtype=dtype, device=device)
    m = n_plus if not name.startswith("transformer") or device != "cpu" else min(n_plus, cap)
    batch = {"freq": torch.tensor(rng.uniform(0.05, 0.5, m), device=device),
             "features": torch.tensor(rng.standard_normal((m, 10)), device=device),
             "window": torch.tensor(rng.standard_normal((m, 256, 5)), dtype=torch.float16, device=device)}
    module = cls(**opts).module({"init_f": 1e-6, "n_features": 10, "n_tracks": 5, "window": 256}).to(device)
    module.train()
    params = sum(p.numel() for p in module.parameters())
    solver = CholeskySolver()
    autocast = torch.autocast(device_type=str(device).split(":")[0], dtype=torch.bfloat16, enabled=amp)
    _sync(device)
    t0 = time.perf_counter()
    with autocast:
        log_f = module(batch)
    _sync(device)
    t1 = time.perf_counter()
    if m < n_plus:  # the rest of the window's variants: same cost per variant
        log_f = log_f.repeat(int(np.ceil(n_plus / m)))[:n_plus]
    f = torch.exp(log_f.detach().to(dtype)).requires_grad_(True)
    loss = solver.loss(G, z, f, s2)
    loss.backward()
    _sync(device)
    t2 = time.perf_counter()
    (log_f * (f.grad * f.detach()).to(log_f.dtype)).sum().backward()
    _sync(device)
    t3 = time.perf_counter()
    scale = n_plus / m

    def network_step():
        module.zero_grad(set_to_none=True)
        with autocast:
            out = module(batch)
        out.float().sum().backward()

    def linalg_step():
        ff = f.detach().clone().requires_grad_(True)
        solver.loss(G, z, ff, s2).backward()

    k = n
    rec = {"prior": name, "parameters": params, "n_plus": n_plus, "n": n, "k": k, "device": str(device),
           "linalg_dtype": str(dtype).replace("torch.", ""), "amp": amp,
           "forward_s": (t1 - t0) * scale, "linalg_s": t2 - t1, "backward_s": (t3 - t2) * scale,
           "extrapolated": m < n_plus, "timed_variants": m}
    if count_flops:
        rec["network_gflop"] = _flops(network_step) * scale / 1e9
        rec["linalg_gflop"] = (_flops(linalg_step) + k ** 3 / 3 + n_plus * k * k) / 1e9
    rec["step_s"] = rec["forward_s"] + rec["linalg_s"] + rec["backward_s"]
    rec["linalg_fraction"] = rec["linalg_s"] / rec["step_s"]
    return rec


def gemm_gflops(device="cpu", n=2048, repeats=4) -> float:
    """GFLOP/s of an ``n x n`` float32 matrix product on ``device`` (one untimed first)."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    a @ b
    _sync(device)
    t = time.perf_counter()
    for _ in range(repeats):
        a @ b
    _sync(device)
    return 2 * n ** 3 * repeats / (time.perf_counter() - t) / 1e9


def cpu_description() -> dict:
    """The CPU model and its data caches (Linux; empty fields elsewhere): the share of
    the GEMM rate a step reaches differs between hosts of one kind (0.39 on the hosts of
    round 7, 0.47-0.50 on an AMD EPYC with 32 MiB of L3: docs/benchmarks.md, round 8), so
    a record says which host it comes from."""
    import platform

    model = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    caches = {}
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            level = (index / "level").read_text().strip()
            kind = (index / "type").read_text().strip()
            if kind != "Instruction":
                caches[f"L{level}"] = (index / "size").read_text().strip()
        except OSError:
            continue
    return {"model": model, "caches": caches, "logical_cpus": os.cpu_count()}


def throughput(name, cls, opts, device, variants, repeats, amp=False):
    """The network's training step (forward + backward) in GFLOP/s beside the GEMM rate."""
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    batch = {"freq": torch.tensor(rng.uniform(0.05, 0.5, variants), device=device),
             "features": torch.tensor(rng.standard_normal((variants, 10)), device=device),
             "window": torch.tensor(rng.standard_normal((variants, 256, 5)), dtype=torch.float16, device=device)}
    module = cls(**opts).module({"init_f": 1e-6, "n_features": 10, "n_tracks": 5, "window": 256}).to(device)
    module.train()
    autocast = torch.autocast(device_type=str(device).split(":")[0], dtype=torch.bfloat16, enabled=amp)

    def step():
        module.zero_grad(set_to_none=True)
        with autocast:
            out = module(batch)
        out.float().sum().backward()
        _sync(device)

    gflop = _flops(step) / 1e9  # the same work every step (this call also warms up)
    step()  # warm-up: first-call allocations and kernel selection are not the steady state
    runs = []
    for _ in range(repeats):
        before = gemm_gflops(device)
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t = time.perf_counter()
        step()
        seconds = time.perf_counter() - t
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
        gemm = (before + gemm_gflops(device)) / 2
        runs.append({"step_s": seconds, "gflop_per_s": gflop / seconds, "gemm_gflop_per_s": gemm,
                     "gemm_share": gflop / seconds / gemm, "minor_faults": faults})
    shares = sorted(r["gemm_share"] for r in runs)
    return {"task": "network-throughput", "prior": name, "device": str(device), "amp": amp,
            "cpu": cpu_description() if str(device) == "cpu" else None,
            "threads": torch.get_num_threads(), "variants": variants, "chunk": getattr(module, "chunk", None),
            "network_gflop": gflop, "repeats": runs, "gemm_share_median": shares[len(shares) // 2],
            "gflop_per_s_best": max(r["gflop_per_s"] for r in runs)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--throughput", default="transformer-default",
                    help="priors whose training step is measured in GFLOP/s beside a float32 GEMM ('' for none)")
    ap.add_argument("--throughput-variants", type=int, default=1024)
    ap.add_argument("--throughput-repeats", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--sizes", default="4000,12000")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--transformer-cap", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps first (default: 1 on cuda, 0 on cpu)")
    ap.add_argument("--linalg-dtype", choices=["float64", "float32"], default="float64")
    ap.add_argument("--amp", action="store_true", help="bfloat16 autocast for the network")
    ap.add_argument("--priors", default=",".join(p[0] for p in PRIORS))
    ap.add_argument("--loader-dataset", default=None,
                    help="also fit a prior on this precomputed dataset with 0 and 2 loader "
                         "workers and report the fraction of time the trainer waited for windows")
    ap.add_argument("--loader-prior", default="constant", help="the prior of the loader measurement")
    ap.add_argument("--loader-prior-option", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--loader-epochs", type=int, default=3)
    args = ap.parse_args()
    wanted = set(args.priors.split(","))
    out = []
    for n_plus in [int(s) for s in args.sizes.split(",")]:
        for name, cls, opts in PRIORS:
            if name in wanted:
                warmup = args.warmup if args.warmup is not None else int(str(args.device).startswith("cuda"))
                out.append(bench(n_plus, name, cls, opts, args.device, args.transformer_cap,
                                 dtype=getattr(torch, args.linalg_dtype), repeats=args.repeats, warmup=warmup,
                                 amp=args.amp))
                if not args.json:
                    print(out[-1])
    for name, cls, opts in PRIORS:
        if name in set(filter(None, args.throughput.split(","))):
            out.append(throughput(name, cls, opts, args.device, args.throughput_variants, args.throughput_repeats,
                                  amp=args.amp))
            if not args.json:
                print(out[-1])
    if args.loader_dataset:
        import tempfile

        from varfx.stages.fit import run_fit

        for workers in (0, 2):
            with tempfile.TemporaryDirectory() as d:
                r = run_fit(args.loader_dataset, d, prior=args.loader_prior,
                            prior_options=tuple(args.loader_prior_option), alpha=0.0, holdout_chroms=[],
                            epochs=args.loader_epochs, batch_windows=4, loader_workers=workers, progress=False)
            out.append({"task": "fit-loader", "prior": args.loader_prior, "prior_options": args.loader_prior_option,
                        "loader_workers": workers, "seconds": r["seconds"], "epochs": args.loader_epochs,
                        "loader_wait_fraction": r["loader_wait_fraction"], "windows": r["train_windows"]})
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()

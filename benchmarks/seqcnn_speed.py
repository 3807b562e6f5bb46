"""Forward+backward seconds per 1000 variants of the default seqcnn prior, one CPU thread.

    PYTHONPATH=. python benchmarks/seqcnn_speed.py [--variants 1000] [--repeats 3]

With ``--memory`` it instead runs one training forward + backward and prints the peak
resident memory it added (``-p chunk=N`` sets the checkpointed chunk):

    PYTHONPATH=. python benchmarks/seqcnn_speed.py --memory --variants 10000
    PYTHONPATH=. python benchmarks/seqcnn_speed.py --memory --variants 3000 -p chunk=100000

With ``--compare`` it times the eval forward (no gradients, as scoring runs it) of the
fast inference path against the reference path (``FAST_EVAL`` off), interleaved in one
process: ``--rounds`` rounds, each timing both paths on the same ``--variants`` variants
in pieces of each ``--pieces`` size, in alternating order; per path and piece size the
best round and the median, the median of the per-round ratios, and the largest
difference between the two paths' outputs (random weights and BatchNorm statistics):

    PYTHONPATH=. python benchmarks/seqcnn_speed.py --compare --variants 1024 --pieces 64,128,256 [--json]
"""
import argparse
import json
import statistics
import time

import torch

from varfx.plugins import lookup


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--variants", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--memory", action="store_true", help="peak memory of one training step instead")
    ap.add_argument("--compare", action="store_true", help="fast vs reference eval forward, interleaved")
    ap.add_argument("--pieces", default="128", help="--compare: comma-separated variants per forward call")
    ap.add_argument("--rounds", type=int, default=7, help="--compare: interleaved rounds")
    ap.add_argument("--json", action="store_true", help="--compare: one JSON object on stdout")
    ap.add_argument("-p", "--prior-option", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cls = lookup("priors", "seqcnn")
    prior = cls(**cls.parse_options(args.prior_option))
    module = prior.module({"init_f": 1.0}).train()
    L = prior.sequence_length()
    gen = torch.Generator().manual_seed(0)
    batch = {"sequence": torch.randint(0, 5, (args.variants, L), generator=gen, dtype=torch.uint8),
             "alt": torch.randint(0, 4, (args.variants,), generator=gen, dtype=torch.uint8),
             "freq": torch.full((args.variants,), 0.3, dtype=torch.float64)}
    n_params = sum(p.numel() for p in module.parameters())
    if args.compare:
        return compare(module, batch, args, n_params)
    if args.memory:
        import resource

        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t = time.perf_counter()
        module(batch).sum().backward()
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(f"{args.variants} variants, chunk {module.chunk}: peak memory +{(after - before) / 1024:.0f} MB, "
              f"{time.perf_counter() - t:.1f} s")
        return
    module(batch).sum().backward()  # warm-up
    times = []
    for _ in range(args.repeats):
        module.zero_grad()
        t = time.perf_counter()
        module(batch).sum().backward()
        times.append(time.perf_counter() - t)
    module.eval()
    with torch.no_grad():
        t = time.perf_counter()
        module(batch)
        ev = time.perf_counter() - t
    per = 1000 / args.variants
    print(f"parameters {n_params}; sequence length {L}; threads {args.threads}")
    print(f"train forward+backward: {min(times) * per:.3f} s per 1000 variants (best of {args.repeats}; "
          f"all: {', '.join(f'{x * per:.3f}' for x in times)})")
    print(f"eval forward (both strands): {ev * per:.3f} s per 1000 variants")


def compare(module, batch, args, n_params):
    """Fast vs reference eval forward, interleaved (see the module docstring)."""
    import varfx.nn.seqcnn as seqcnn

    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        # random weights and statistics: the last layer starts at zero, BatchNorm at (0, 1)
        for p in module.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=gen))
        for mod in module.modules():
            if isinstance(mod, torch.nn.BatchNorm1d):
                mod.running_mean.uniform_(-0.5, 0.5, generator=gen)
                mod.running_var.uniform_(0.5, 2.0, generator=gen)
    module.eval()
    pieces = [int(x) for x in args.pieces.split(",")]
    seq, M = batch["sequence"], args.variants

    def timed(fast, piece):
        seqcnn.FAST_EVAL = fast
        t = time.perf_counter()
        out = [module({"sequence": seq[a:a + piece]}) for a in range(0, M, piece)]
        dt = time.perf_counter() - t
        seqcnn.FAST_EVAL = True
        return dt, torch.cat(out)

    times = {(f, p): [] for f in (True, False) for p in pieces}
    diff = 0.0
    with torch.inference_mode():
        for p in pieces:  # warm-up (mkldnn primitives, allocator)
            timed(True, p), timed(False, p)
        for r in range(args.rounds):
            for p in pieces:
                order = (True, False) if r % 2 == 0 else (False, True)
                outs = {}
                for f in order:
                    dt, outs[f] = timed(f, p)
                    times[(f, p)].append(dt)
                scale = float(outs[False].abs().max())
                diff = max(diff, float((outs[True] - outs[False]).abs().max()) / scale)
    per = 1000 / M
    rows = []
    for p in pieces:
        fast, ref = times[(True, p)], times[(False, p)]
        rows.append({"piece": p, "fast_ms_per_1000": round(min(fast) * per * 1000, 1),
                     "reference_ms_per_1000": round(min(ref) * per * 1000, 1),
                     "fast_median_ms_per_1000": round(statistics.median(fast) * per * 1000, 1),
                     "reference_median_ms_per_1000": round(statistics.median(ref) * per * 1000, 1),
                     "speedup_median": round(statistics.median(r / f for r, f in zip(ref, fast)), 3)})
    result = {"variants": M, "rounds": args.rounds, "threads": args.threads, "parameters": n_params,
              "max_relative_difference": diff, "pieces": rows}
    if args.json:
        print(json.dumps(result))
        return
    print(f"parameters {n_params}; {M} variants; threads {args.threads}; {args.rounds} interleaved rounds; "
          f"largest |fast - reference| / max |reference| = {diff:.2e}")
    for row in rows:
        print(f"piece {row['piece']:5d}: fast {row['fast_ms_per_1000']:.0f} ms per 1000 variants (median "
              f"{row['fast_median_ms_per_1000']:.0f}), reference {row['reference_ms_per_1000']:.0f} (median "
              f"{row['reference_median_ms_per_1000']:.0f}); speed-up (median of rounds) {row['speedup_median']:.2f}x")


if __name__ == "__main__":
    main()

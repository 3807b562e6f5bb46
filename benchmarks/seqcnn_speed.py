"""Forward+backward seconds per 1000 variants of the default seqcnn prior, one CPU thread.

    PYTHONPATH=. python benchmarks/seqcnn_speed.py [--variants 1000] [--repeats 3]

With ``--memory`` it instead runs one training forward + backward and prints the peak
resident memory it added (``-p chunk=N`` sets the checkpointed chunk):

    PYTHONPATH=. python benchmarks/seqcnn_speed.py --memory --variants 10000
    PYTHONPATH=. python benchmarks/seqcnn_speed.py --memory --variants 3000 -p chunk=100000
"""
import argparse
import time

import torch

from varfx.plugins import lookup


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--variants", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--memory", action="store_true", help="peak memory of one training step instead")
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


if __name__ == "__main__":
    main()

"""Forward+backward seconds per 1000 variants of the default seqcnn prior, one CPU thread.

    PYTHONPATH=. python benchmarks/seqcnn_speed.py [--variants 1000] [--repeats 3]
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
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    prior = lookup("priors", "seqcnn")()
    module = prior.module({"init_f": 1.0}).train()
    L = prior.sequence_length()
    gen = torch.Generator().manual_seed(0)
    batch = {"sequence": torch.randint(0, 5, (args.variants, L), generator=gen, dtype=torch.uint8),
             "alt": torch.randint(0, 4, (args.variants,), generator=gen, dtype=torch.uint8),
             "freq": torch.full((args.variants,), 0.3, dtype=torch.float64)}
    n_params = sum(p.numel() for p in module.parameters())
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

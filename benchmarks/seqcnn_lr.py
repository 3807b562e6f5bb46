"""Which learning rate learns a planted motif with the seqcnn prior (docs/seqcnn.md).

Per seed: 400 random training and 200 held-out sequences of the prior's input length;
half carry one random 10-bp motif 3-39 bp from the variant (either side).  The default
network is trained with instance-level binary cross-entropy (AdamW, no weight decay,
batch 64) and the held-out AUROC is printed after every ``--report``-th epoch.

    PYTHONPATH=. python benchmarks/seqcnn_lr.py --lrs 1e-4,1e-3,3e-3,1e-2,3e-2 --seeds 0,1,2 --epochs 10
"""
import argparse
import json
import time

import numpy as np
import torch

from varfx.plugins import lookup


def planted(n, L, rng, motif):
    codes = rng.integers(0, 4, (n, L)).astype(np.uint8)
    y = np.zeros(n)
    y[: n // 2] = 1
    c = L // 2
    for i in range(n // 2):
        d = rng.integers(3, 40) * rng.choice([-1, 1])
        s = c + d if d > 0 else c + d - len(motif)
        codes[i, s:s + len(motif)] = motif
    return torch.tensor(codes), torch.tensor(y, dtype=torch.float32)


def auroc(score, y):
    from scipy.stats import rankdata

    r = rankdata(score)
    n1 = y.sum()
    n0 = len(y) - n1
    return (r[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)


def run(lr, epochs, seed, options, batch=64, n=400):
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    prior = lookup("priors", "seqcnn")(**options)
    L = prior.sequence_length()
    motif = rng.integers(0, 4, 10).astype(np.uint8)
    x, y = planted(n, L, rng, motif)
    xt, yt = planted(200, L, rng, motif)
    m = prior.module({"init_f": 1.0})
    opt = torch.optim.AdamW(m.parameters(), lr=lr, weight_decay=0)
    out = []
    for _ in range(epochs):
        m.train()
        perm = torch.randperm(n)
        for b in range(0, n, batch):
            i = perm[b:b + batch]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(m({"sequence": x[i]}).float(), y[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
        m.eval()
        with torch.no_grad():
            s = m({"sequence": xt}).numpy()
        out.append(round(float(auroc(s, yt.numpy())), 3))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lrs", default="1e-4,1e-3,3e-3,1e-2,3e-2")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--report", type=int, default=5, help="print the AUROC of every N-th epoch")
    ap.add_argument("-p", "--prior-option", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()
    torch.set_num_threads(1)
    options = lookup("priors", "seqcnn").parse_options(args.prior_option)
    for lr in (float(v) for v in args.lrs.split(",")):
        for seed in (int(v) for v in args.seeds.split(",")):
            t = time.perf_counter()
            curve = run(lr, args.epochs, seed, options)
            print(json.dumps({"lr": lr, "seed": seed, "auroc": curve[args.report - 1::args.report],
                              "seconds": round(time.perf_counter() - t, 1)}), flush=True)


if __name__ == "__main__":
    main()

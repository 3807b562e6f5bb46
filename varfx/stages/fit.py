"""``varfx fit``: train a prior by minimising an objective over the dataset's windows.

The loss of a step is the objective summed over a batch of training windows and
divided by the number of core variants in the batch (so learning rates do not depend
on the window size).  Adam with a cosine-decayed learning rate; the state (prior,
optimiser, schedule, epoch, curve) is checkpointed atomically after every epoch and
``varfx fit`` with the same MODEL_DIR resumes from it.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import UserError
from ..store import write_json_atomic
from .model import CHECKPOINT, MODEL_FORMAT, MODEL_JSON, MODEL_VERSION, load_checkpoint, save_checkpoint
from .precompute import load_windows, open_dataset


SMALL_WINDOW = 3000  # n+ at or below which --threads 0 uses one thread


def ldsr_intercept(windows, z_all, n_all, N, n_iter=3):
    """sigma^2 as the intercept of LD score regression (ldsc-style weights).

    Regress ``chi2 = Z^2`` on the (bias-corrected) LD score ``l`` of each core
    variant: ``E[chi2] = N h2 l / M + sigma^2``, weighted by ``1 / (l (1 + N h2 l / M)^2)``
    (down-weighting high-LD variants, whose chi2 are correlated, and the
    heteroskedasticity of chi2), re-weighted ``n_iter`` times with the current h2.
    Returns ``(intercept, h2)``.
    """
    idx = np.concatenate([w.core_idx for w in windows])
    l = np.concatenate([w.ld_score for w in windows]).astype(np.float64)
    chi2 = z_all[idx] ** 2
    ok = np.isfinite(chi2) & np.isfinite(l)
    l, chi2 = np.maximum(l[ok], 1.0), chi2[ok]
    M = len(l)
    if M < 10:
        raise UserError(f"too few variants ({M}) to estimate --sigma2 by LD score regression; pass --sigma2")
    h2 = max((chi2.mean() - 1.0) / (N * l.mean() / M), 0.0)
    for _ in range(n_iter):
        w = 1.0 / (l * (1.0 + N * h2 * l / M) ** 2)
        X = np.stack([np.ones_like(l), l], 1)
        coef = np.linalg.solve(X.T @ (w[:, None] * X), X.T @ (w * chi2))
        intercept, slope = coef
        h2 = max(slope * M / N, 0.0)
    return float(intercept), float(h2)


def _select(windows, holdout):
    train = [w for w in windows if w.chrom not in holdout and w.k > 0]
    val = [w for w in windows if w.chrom in holdout and w.k > 0]
    return train, val


def _loss(objective, windows, log_f, s2):
    import torch

    total = 0.0
    for w in windows:
        idx = torch.as_tensor(w.plus_idx, device=log_f.device)
        total = total + objective.window_loss(w, torch.exp(log_f[idx]).to(w.G.dtype), s2)
    return total


def run_fit(dataset, out, *, prior="constant", objective="full", solver="cholesky", prior_options=(),
            solver_options=(), objective_options=(), alpha=0.7, sigma2=None, holdout_chroms=(6, 7, 8), epochs=100, lr=0.05,
            batch_windows=0, seed=0, device="cpu", dtype="float64", threads=0, progress=True) -> dict:
    import torch

    from ..plugins import lookup
    from ..ui import progress as make_progress
    from .model import build_prior, variant_batch

    if epochs < 1:
        raise UserError(f"option --epochs: expected at least 1, got {epochs}")
    if not lr > 0:
        raise UserError(f"option --lr: expected a positive number, got {lr}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("option --device cuda: no CUDA device is available")
    torch.manual_seed(seed)

    prior_cls = lookup("priors", prior)
    obj_cls = lookup("objectives", objective)
    prior_opts = prior_cls.parse_options(prior_options)
    if "alpha" in prior_cls.options and "alpha" not in prior_opts:
        prior_opts["alpha"] = float(alpha)
    solver_obj = None
    solver_opts = {}
    if obj_cls.uses_solver:
        solver_cls = lookup("solvers", solver)
        solver_opts = solver_cls.parse_options(solver_options)
        solver_obj = solver_cls(**solver_opts)
    objective_opts = obj_cls.parse_options(objective_options)
    objective_obj = obj_cls(solver=solver_obj, **objective_opts)

    holdout = set(holdout_chroms or ())
    windows, wattrs = load_windows(dataset, dtype=dtype, device=device)
    train, val = _select(windows, holdout)
    if not train:
        raise UserError(
            f"no training windows: the dataset has chromosomes {wattrs['all_chroms']} and "
            f"--holdout-chroms holds out {sorted(holdout)}", path=dataset)
    if threads > 0:
        torch.set_num_threads(threads)
    elif device == "cpu" and max(w.n_plus for w in windows) <= SMALL_WINDOW:
        # Small windows: intra-op threads cost more than they give (measured 2x slower
        # with 2 threads on 36 chr22 windows of n+ ~ 600, and ~30x slower when another
        # process loads the cores, because idle OpenMP threads spin).
        torch.set_num_threads(1)
    N = wattrs["N"]
    with open_dataset(dataset) as h5:
        z_all = h5["variants"]["z"][:]
        n_all = h5["variants"]["n"][:]
        batch = variant_batch(h5, dtype="float64", device=device)
        freq = h5["variants"]["freq"][:]
    if prior_opts.get("alpha", 0) != 0 and not np.all(np.isfinite(freq)):
        raise UserError(
            f"{int((~np.isfinite(freq)).sum())} variants have no allele frequency in the dataset; "
            "the frequency factor needs them (use --alpha 0)", path=dataset)

    if sigma2 is None:
        sigma2_value, h2_ldsr = ldsr_intercept(train, z_all, n_all, N)
        sigma2_source = "ldsr-intercept"
        if not sigma2_value > 0:
            raise UserError(f"LD score regression gave a non-positive intercept ({sigma2_value:.3g}); pass --sigma2")
    else:
        sigma2_value, sigma2_source = float(sigma2), "option"
        _, h2_ldsr = ldsr_intercept(train, z_all, n_all, N)
    s2 = torch.tensor(sigma2_value / N, dtype=getattr(torch, dtype), device=device)

    M_train = int(sum(w.n for w in train))
    if "h2_per_snp" in obj_cls.options and not objective_obj.config["h2_per_snp"]:
        objective_obj.config["h2_per_snp"] = max(h2_ldsr, 1e-3) / M_train
    per_snp = max(h2_ldsr, 1e-3) / M_train
    if prior_opts.get("alpha", 0):
        p = np.clip(freq, 1e-6, 1 - 1e-6)
        per_snp /= float(np.mean((p * (1 - p)) ** prior_opts["alpha"]))
    module = build_prior({"name": prior, "options": prior_opts}, {"init_f": per_snp}).to(device)
    opt = torch.optim.Adam(module.parameters(), lr=lr)
    bw = batch_windows if batch_windows > 0 else len(train)
    steps_per_epoch = math.ceil(len(train) / bw)
    total_steps = epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total_steps) / total_steps)))

    config = {
        "dataset": str(Path(dataset).resolve()),
        "prior": {"name": prior, "options": prior_opts},
        "objective": {"name": objective, "options": objective_opts},
        "solver": {"name": solver, "options": solver_opts} if solver_obj is not None else None,
        "sigma2": sigma2_value, "sigma2_source": sigma2_source, "N": N,
        "holdout_chroms": sorted(holdout), "epochs": epochs, "lr": lr, "batch_windows": batch_windows,
        "seed": seed, "dtype": dtype,
    }
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start_epoch, curve = 0, []
    ckpt = load_checkpoint(out)
    if ckpt is not None:
        old = json.loads(ckpt["config"])
        if old != config:
            diff = sorted(k for k in set(old) | set(config) if old.get(k) != config.get(k))
            raise UserError(f"has a checkpoint from a different fit (differs in: {', '.join(diff)}); use another -o", path=out)
        module.load_state_dict(ckpt["prior"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        start_epoch = int(ckpt["epoch"])
        curve = json.loads(ckpt["curve"])

    def write_meta(done: bool):
        meta = {"format": MODEL_FORMAT, "format_version": MODEL_VERSION, "varfx_version": __version__,
                **config, "n_train_windows": len(train), "n_val_windows": len(val),
                "n_train_variants": M_train, "h2_ldsr": h2_ldsr, "finished": done,
                "epochs_done": len(curve), "curve": curve,
                "n_parameters": int(sum(p.numel() for p in module.parameters()))}
        write_json_atomic(out / MODEL_JSON, meta)
        return meta

    def checkpoint(epoch):
        save_checkpoint(out, {"prior": module.state_dict(), "optimizer": opt.state_dict(),
                              "scheduler": sched.state_dict(), "epoch": epoch,
                              "curve": json.dumps(curve), "config": json.dumps(config)})

    t0 = time.perf_counter()
    with make_progress(disable=not progress) as bar:
        task = bar.add_task("fit", total=epochs, completed=start_epoch, status="")
        for epoch in range(start_epoch, epochs):
            gen = torch.Generator().manual_seed(seed * 100003 + epoch)
            order = torch.randperm(len(train), generator=gen).tolist()
            ep_loss, ep_n = 0.0, 0
            module.train()
            for s in range(0, len(order), bw):
                wb = [train[i] for i in order[s:s + bw]]
                n_core = sum(w.n for w in wb)
                opt.zero_grad(set_to_none=True)
                log_f = module(batch)
                loss = _loss(objective_obj, wb, log_f, s2) / n_core
                if not torch.isfinite(loss):
                    raise UserError(f"the loss became {loss.item()} at epoch {epoch + 1}; try a smaller --lr")
                loss.backward()
                opt.step()
                sched.step()
                ep_loss += loss.item() * n_core
                ep_n += n_core
            rec = {"epoch": epoch + 1, "train_loss": ep_loss / ep_n}
            if val:
                module.eval()
                with torch.no_grad():
                    log_f = module(batch)
                    rec["val_loss"] = float(_loss(objective_obj, val, log_f, s2)) / sum(w.n for w in val)
            curve.append(rec)
            checkpoint(epoch + 1)
            write_meta(False)
            bar.update(task, advance=1, status=f"loss {rec['train_loss']:.6f}" + (f" val {rec['val_loss']:.6f}" if val else ""))
    meta = write_meta(True)
    with torch.no_grad():
        log_f = module(batch).detach().cpu().numpy()
    core = np.concatenate([w.core_idx for w in train])
    return {
        "model_dir": str(out), "prior": prior, "objective": objective, "solver": solver if solver_obj else None,
        "epochs": epochs, "resumed_from_epoch": start_epoch, "train_windows": len(train), "val_windows": len(val),
        "sigma2": sigma2_value, "sigma2_source": sigma2_source, "final_train_loss": curve[-1]["train_loss"],
        **({"final_val_loss": curve[-1]["val_loss"]} if val else {}),
        "h2_train": float(np.exp(log_f[core]).sum()), "seconds": round(time.perf_counter() - t0, 3),
        "n_parameters": meta["n_parameters"],
    }

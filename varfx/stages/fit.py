"""``varfx fit``: train a prior by minimising an objective over the dataset's windows.

The loss of a step is the objective summed over a batch of training windows and
divided by the number of core variants in the batch (so learning rates do not depend
on the window size).  AdamW with a linear warm-up and cosine decay, gradient
accumulation and clipping, early stopping on the validation loss.  The whole state
(prior, optimiser, schedule, epoch and step, probe counter, curve) is checkpointed
atomically every ``checkpoint_every`` steps and after every epoch; ``varfx fit`` with
the same MODEL_DIR resumes exactly where it stopped (the order of the windows in an
epoch depends only on the seed and the epoch), so an interrupted and resumed run ends
at the same parameters as an uninterrupted one on CPU.
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
from .model import MODEL_FORMAT, MODEL_JSON, MODEL_VERSION, load_checkpoint, save_checkpoint
from .precompute import WindowBatches, load_windows, open_dataset


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


class _Distributed:
    """Data parallelism over torch.distributed when launched by ``torchrun``.

    With ``WORLD_SIZE`` > 1 in the environment, the process group is initialised (gloo
    on CPU, nccl on CUDA); each rank evaluates every world-th window of a batch and the
    gradients and losses are summed over ranks before the update.  Only rank 0 writes
    checkpoints, model.json and logs.  With one process everything is a no-op.
    """

    def __init__(self, device):
        import os

        import torch.distributed as td

        self.td = td
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.owns_group = False
        self.cuda = str(device).startswith("cuda")
        if self.world > 1 and self.cuda:
            import torch

            # one GPU per process: torchrun sets LOCAL_RANK; "cuda" then means this GPU
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        if self.world > 1 and not td.is_initialized():
            td.init_process_group("nccl" if self.cuda else "gloo")
            self.owns_group = True
        self.is_main = self.rank == 0

    def share(self, windows):
        return windows[self.rank::self.world] if self.world > 1 else windows

    def sum_value(self, value) -> float:
        import torch

        v = float(value.detach()) if torch.is_tensor(value) else float(value)
        if self.world == 1:
            return v
        # nccl reduces GPU tensors only
        t = torch.tensor([v], dtype=torch.float64, device="cuda" if self.cuda else "cpu")
        self.td.all_reduce(t)
        return float(t[0])

    def sum_grads(self, module):
        import torch

        if self.world == 1:
            return
        for p in module.parameters():
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            self.td.all_reduce(p.grad)

    def close(self):
        if self.owns_group:
            self.td.barrier()
            self.td.destroy_process_group()


def _to(window, device):
    """A window read by a loader worker (CPU tensors), on the training device."""
    if str(device) != "cpu":
        window.G, window.z = window.G.to(device), window.z.to(device)
        window.extra = {k: (v.to(device) if hasattr(v, "to") else v) for k, v in window.extra.items()}
    return window


def _select(windows, holdout):
    train = [w for w in windows if w.chrom not in holdout and w.k > 0]
    val = [w for w in windows if w.chrom in holdout and w.k > 0]
    return train, val


def _loss(objective, windows, module, batch, s2, amp=False, rows=None):
    """Sum of the objective over ``windows``; the prior is evaluated only on the
    variants those windows touch (their ``(i)+`` union), not on the whole genome.

    ``amp``: the prior's forward runs under autocast (bfloat16); its output is cast back
    before the linear algebra, which always runs in the training dtype.  ``rows``:
    ``(lo, tracks)``, the per-base tracks of variants ``lo, lo+1, ...`` read by a loader
    when ``batch`` does not hold them."""
    import contextlib

    import torch

    if not windows:
        return 0.0
    union = np.unique(np.concatenate([w.plus_idx for w in windows]))
    dev = batch["freq"].device
    sub = {k: v[torch.as_tensor(union, device=dev)] for k, v in batch.items()}
    if rows is not None:
        lo, tracks = rows
        sub["window"] = tracks[torch.as_tensor(union - lo)].to(dev)
    ctx = torch.autocast(dev.type, dtype=torch.bfloat16) if amp else contextlib.nullcontext()
    with ctx:
        log_f = module(sub)
    log_f = log_f.to(torch.float64)
    total = 0.0
    for w in windows:
        pos = torch.as_tensor(np.searchsorted(union, w.plus_idx), device=dev)
        total = total + objective.window_loss(w, torch.exp(log_f[pos]).to(w.G.dtype), s2)
    return total


def run_fit(dataset, out, *, prior="constant", objective="full", solver="cholesky", prior_options=(),
            solver_options=(), objective_options=(), alpha=0.7, sigma2=None, holdout_chroms=(6, 7, 8), epochs=100, lr=0.05,
            batch_windows=0, accumulate=1, warmup=0.05, clip=1.0, weight_decay=0.0, patience=0,
            checkpoint_every=50, log_jsonl=None, dry_run=False, seed=0, device="cpu", dtype="float64",
            threads=0, loader_workers=0, amp=False, progress=True) -> dict:
    import torch

    from ..plugins import lookup
    from ..ui import progress as make_progress
    from .model import build_prior, predict_log_f, prior_context, track_rows, variant_batch

    if epochs < 1:
        raise UserError(f"option --epochs: expected at least 1, got {epochs}")
    if not lr > 0:
        raise UserError(f"option --lr: expected a positive number, got {lr}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("option --device cuda: no CUDA device is available")
    torch.manual_seed(seed)
    dist = _Distributed(device)

    prior_cls = lookup("priors", prior)
    obj_cls = lookup("objectives", objective)
    prior_opts = prior_cls.parse_options(prior_options)
    if "alpha" in prior_cls.options and "alpha" not in prior_opts:
        prior_opts["alpha"] = alpha if alpha == "learn" else float(alpha)
    solver_obj = None
    solver_opts = {}
    if obj_cls.uses_solver:
        solver_cls = lookup("solvers", solver)
        solver_opts = solver_cls.parse_options(solver_options)
        solver_obj = solver_cls(**solver_opts)
    objective_opts = obj_cls.parse_options(objective_options)
    objective_obj = obj_cls(solver=solver_obj, **objective_opts)

    holdout = set(holdout_chroms or ())
    if loader_workers > 0:
        # plan with metadata; the training windows' factors are read per batch by the
        # loader's worker processes (held-out windows are read once, for validation)
        windows, wattrs = load_windows(dataset, dtype=dtype, device=device, meta_only=True)
        train, _ = _select(windows, holdout)
        val, _ = load_windows(dataset, chroms=sorted(holdout), dtype=dtype, device=device) if holdout else ([], None)
        val = [w for w in val if w.k > 0]
    else:
        windows, wattrs = load_windows(dataset, dtype=dtype, device=device)
        train, val = _select(windows, holdout)
    if not train:
        raise UserError(
            f"no training windows: the dataset has chromosomes {wattrs['all_chroms']} and "
            f"--holdout-chroms holds out {sorted(holdout)}", path=dataset)
    if threads > 0:
        torch.set_num_threads(threads)
    elif device == "cpu" and max(w.n_plus for w in windows) <= SMALL_WINDOW and loader_workers == 0:
        # Small windows: intra-op threads cost more than they give (measured 2x slower
        # with 2 threads on 36 chr22 windows of n+ ~ 600, and ~30x slower when another
        # process loads the cores, because idle OpenMP threads spin).
        torch.set_num_threads(1)
    N = wattrs["N"]
    with open_dataset(dataset) as h5:
        z_all = h5["variants"]["z"][:]
        n_all = h5["variants"]["n"][:]
        # with a loader the per-base tracks stay on disk: each batch reads its rows
        batch = variant_batch(h5, dtype="float64", device=device, tracks=loader_workers == 0)
        track_shape = None
        if loader_workers > 0 and "features" in h5 and "window" in h5["features"]:
            track_shape = tuple(h5["features"]["window"].shape)
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
    alpha0 = prior_opts.get("alpha", 0)
    if alpha0:
        from ..nn.priors import ALPHA_START

        a = ALPHA_START if alpha0 == "learn" else alpha0
        p = np.clip(freq, 1e-6, 1 - 1e-6)
        per_snp /= float(np.mean((p * (1 - p)) ** a))
    context = prior_context(batch, per_snp, track_shape)
    module = build_prior({"name": prior, "options": prior_opts}, context).to(device)
    inputs = {k: context[k] for k in ("n_features", "n_tracks", "window")}
    n_params = int(sum(p.numel() for p in module.parameters()))
    bw = batch_windows if batch_windows > 0 else len(train)
    steps_per_epoch = math.ceil(len(train) / bw)
    accumulate = max(1, int(accumulate))
    total_updates = max(1, math.ceil(epochs * steps_per_epoch / accumulate))
    warmup_updates = int(round(warmup * total_updates)) if warmup < 1 else int(warmup)

    if dry_run:
        max_np = max(w.n_plus for w in train)
        max_k = max(w.k for w in train)
        itemsize = 8 if dtype == "float64" else 4
        # per window: G (n+ x k) and, in the exact solver, G^T F G and its factor (k x k),
        # the triangular solve L^-1 G^T (k x n+) in the backward; times the windows of a step.
        per_window = itemsize * (2 * max_np * max_k + 2 * max_k * max_k + 4 * max_np)
        return {
            "dry_run": True, "train_windows": len(train), "val_windows": len(val),
            "train_variants": M_train, "val_variants": int(sum(w.n for w in val)),
            "max_n_plus": max_np, "max_k": max_k, "parameters": n_params,
            "windows_per_step": bw, "steps_per_epoch": steps_per_epoch, "optimizer_updates": total_updates,
            "memory_per_step_mb": round(per_window * bw / 2**20, 2),
            "windows_in_memory_mb": round(sum(itemsize * (w.n_plus * w.k + w.k * w.n) for w in windows) / 2**20, 2),
            "sigma2": sigma2_value, "sigma2_source": sigma2_source,
        }

    opt = torch.optim.AdamW(module.parameters(), lr=lr, weight_decay=weight_decay)

    def lr_factor(u):
        # linear warm-up over the first updates, then cosine decay to 0
        if u < warmup_updates:
            return (u + 1) / warmup_updates
        span = max(1, total_updates - warmup_updates)
        return 0.5 * (1 + math.cos(math.pi * min(u - warmup_updates, span) / span))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)

    config = {
        "dataset": str(Path(dataset).resolve()),
        "prior": {"name": prior, "options": prior_opts},
        "objective": {"name": objective, "options": objective_opts},
        "solver": {"name": solver, "options": solver_opts} if solver_obj is not None else None,
        "sigma2": sigma2_value, "sigma2_source": sigma2_source, "N": N,
        "holdout_chroms": sorted(holdout), "epochs": epochs, "lr": lr, "batch_windows": batch_windows,
        "accumulate": accumulate, "warmup": warmup, "clip": clip, "weight_decay": weight_decay,
        "patience": patience, "seed": seed, "dtype": dtype, "inputs": inputs, "amp": bool(amp),
    }
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    state = {"epoch": 0, "step": 0, "updates": 0, "ep_loss": 0.0, "ep_n": 0, "best_val": math.inf,
             "bad_epochs": 0, "stopped_early": False}
    curve: list[dict] = []
    ckpt = load_checkpoint(out)
    resumed_from = None
    if ckpt is not None:
        old = json.loads(ckpt["config"])
        if old != config:
            diff = sorted(k for k in set(old) | set(config) if old.get(k) != config.get(k))
            raise UserError(f"has a checkpoint from a different fit (differs in: {', '.join(diff)}); use another -o", path=out)
        module.load_state_dict(ckpt["prior"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        state = json.loads(ckpt["state"])
        curve = json.loads(ckpt["curve"])
        if solver_obj is not None and hasattr(solver_obj, "_calls"):
            solver_obj._calls = int(state.get("solver_calls", 0))
        resumed_from = {"epoch": state["epoch"], "step": state["step"]}

    def write_meta(done: bool):
        if not dist.is_main:
            return None
        meta = {"format": MODEL_FORMAT, "format_version": MODEL_VERSION, "varfx_version": __version__,
                **config, "n_train_windows": len(train), "n_val_windows": len(val),
                "n_train_variants": M_train, "h2_ldsr": h2_ldsr, "finished": done,
                "stopped_early": state["stopped_early"], "epochs_done": len(curve), "curve": curve,
                "n_parameters": n_params}
        write_json_atomic(out / MODEL_JSON, meta)
        return meta

    def checkpoint():
        if not dist.is_main:
            return
        if solver_obj is not None and hasattr(solver_obj, "_calls"):
            state["solver_calls"] = int(solver_obj._calls)
        save_checkpoint(out, {"prior": module.state_dict(), "optimizer": opt.state_dict(),
                              "scheduler": sched.state_dict(), "state": json.dumps(state),
                              "curve": json.dumps(curve), "config": json.dumps(config)})

    log_fh = open(log_jsonl, "a") if (log_jsonl and dist.is_main) else None

    def log(rec):
        if log_fh is not None:
            log_fh.write(json.dumps(rec) + "\n")
            log_fh.flush()

    t0 = time.perf_counter()
    waited = 0.0
    run_windows, val_text = 0, ""  # windows trained on in this run (the rate on the bar)
    n_val = sum(w.n for w in val)
    try:
        with make_progress(disable=not (progress and dist.is_main)) as bar:
            task = bar.add_task("fit", total=epochs * steps_per_epoch,
                                completed=state["epoch"] * steps_per_epoch + state["step"], status="")
            while state["epoch"] < epochs and not state["stopped_early"]:
                epoch = state["epoch"]
                # The order of an epoch depends only on (seed, epoch): a resumed run
                # replays it and skips the steps already taken.
                gen = torch.Generator().manual_seed(seed * 100003 + epoch)
                order = torch.randperm(len(train), generator=gen).tolist()
                module.train()
                if loader_workers > 0:
                    plan = [dist.share([train[i].index for i in order[st * bw:(st + 1) * bw]])
                            for st in range(state["step"], steps_per_epoch)]
                    batches = iter(WindowBatches(dataset, plan, dtype, tracks=track_shape is not None)
                                   .loader(loader_workers))
                while state["step"] < steps_per_epoch:
                    st = state["step"]
                    wb = [train[i] for i in order[st * bw:(st + 1) * bw]]
                    n_core = sum(w.n for w in wb)
                    if loader_workers > 0:
                        t_wait = time.perf_counter()
                        mine, rows = next(batches)
                        mine = [_to(w, device) for w in mine]
                        waited += time.perf_counter() - t_wait
                    else:
                        mine, rows = dist.share(wb), None
                    t_step = time.perf_counter()
                    # data parallel: each rank takes every world-th window of the batch;
                    # the gradients are summed over ranks, so the update is the same as
                    # one process taking the whole batch
                    local = _loss(objective_obj, mine, module, batch, s2, amp, rows) / n_core
                    if torch.is_tensor(local) and local.requires_grad:
                        (local / accumulate).backward()
                    loss = dist.sum_value(local)
                    if not math.isfinite(loss):
                        raise UserError(f"the loss became {loss} at epoch {epoch + 1}; try a smaller --lr")
                    state["ep_loss"] += loss * n_core
                    state["ep_n"] += n_core
                    state["step"] += 1
                    last_of_epoch = state["step"] == steps_per_epoch
                    if state["step"] % accumulate == 0 or last_of_epoch:
                        dist.sum_grads(module)
                        if clip > 0:
                            torch.nn.utils.clip_grad_norm_(module.parameters(), clip)
                        opt.step()
                        sched.step()
                        opt.zero_grad(set_to_none=True)
                        state["updates"] += 1
                    log({"epoch": epoch + 1, "step": state["step"], "loss": loss,
                         "lr": opt.param_groups[0]["lr"], "windows": len(wb),
                         "windows_per_s": len(wb) / max(time.perf_counter() - t_step, 1e-9)})
                    run_windows += len(wb)
                    rate = run_windows / max(time.perf_counter() - t0, 1e-9)
                    bar.update(task, advance=1, status=f"epoch {epoch + 1} loss {loss:.5f} "
                                                       f"{rate:.3g} windows/s{val_text}")
                    if checkpoint_every and state["step"] % checkpoint_every == 0 and not last_of_epoch:
                        checkpoint()
                rec = {"epoch": epoch + 1, "train_loss": state["ep_loss"] / state["ep_n"]}
                if val:
                    module.eval()
                    with torch.no_grad():
                        vs = dist.share(val)
                        vrows = None
                        if track_shape is not None and vs:
                            lo = min(int(w.plus_idx.min()) for w in vs)
                            with open_dataset(dataset) as h5:
                                vrows = (lo, track_rows(h5, lo, max(int(w.plus_idx.max()) for w in vs) + 1))
                        rec["val_loss"] = dist.sum_value(_loss(objective_obj, vs, module, batch, s2, amp, vrows)) / n_val
                    if rec["val_loss"] < state["best_val"]:
                        state["best_val"], state["bad_epochs"] = rec["val_loss"], 0
                    else:
                        state["bad_epochs"] += 1
                        if patience and state["bad_epochs"] >= patience:
                            state["stopped_early"] = True
                curve.append(rec)
                if "val_loss" in rec:
                    val_text = f" (val {rec['val_loss']:.5f})"
                log({"epoch_end": epoch + 1, **rec})
                state.update(epoch=epoch + 1, step=0, ep_loss=0.0, ep_n=0)
                checkpoint()
                write_meta(False)
    finally:
        if log_fh is not None:
            log_fh.close()
    meta = write_meta(True) or {"n_parameters": n_params}
    dist.close()
    with open_dataset(dataset) as h5:
        log_f = predict_log_f(module, h5, device=device, batch=batch)
    core = np.concatenate([w.core_idx for w in train])
    return {
        "model_dir": str(out), "prior": prior, "objective": objective, "solver": solver if solver_obj else None,
        "epochs": len(curve), "stopped_early": state["stopped_early"],
        "resumed_from": f"epoch {resumed_from['epoch'] + 1} step {resumed_from['step']}" if resumed_from else "-",
        "train_windows": len(train), "val_windows": len(val),
        "sigma2": sigma2_value, "sigma2_source": sigma2_source, "final_train_loss": curve[-1]["train_loss"],
        **({"final_val_loss": curve[-1]["val_loss"]} if val else {}),
        "h2_train": float(np.exp(log_f[core]).sum()), "seconds": round(time.perf_counter() - t0, 3),
        "loader_wait_fraction": round(waited / max(time.perf_counter() - t0, 1e-9), 4) if loader_workers else None,
        "n_parameters": meta["n_parameters"],
    }

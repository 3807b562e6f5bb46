"""``varfx fit``: train a prior by minimising an objective over the dataset's windows.

Thin orchestration of :mod:`varfx.train`: the set-up (plugins, options, windows,
sigma^2, context), the choice of optimiser, resuming from a checkpoint, and model.json.

``--optimizer auto`` fits a prior with few parameters (:attr:`varfx.api.Prior.small`:
constant, GLM) to the maximum with full-batch L-BFGS (:mod:`varfx.train.lbfgs`) when
its windows are in memory and the solver is exact, unless an AdamW-only option
(``--epochs``, ``--lr``, ``--batch-windows``, ...) asks for mini-batch training; every
other prior trains with mini-batch AdamW (:mod:`varfx.train.loop`) at the prior's
default learning rate.  ``varfx fit`` with the same MODEL_DIR resumes where it stopped.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import UserError
from ..store import write_json_atomic
from ..store.dataset import open_dataset, stored_fingerprint
from ..store.model import MODEL_FORMAT, MODEL_JSON, MODEL_VERSION
from ..train import checkpoint as ck
from ..train.distributed import Distributed, QuietStop
from ..train.lbfgs import CHECKPOINT_KEYS as LBFGS_KEYS
from ..train.lbfgs import GTOL, MAX_ITER
from ..train.loop import CHECKPOINT_KEYS as ADAMW_KEYS
from ..train.setup import SMALL_WINDOW, ldsr_intercept, select  # noqa: F401 - re-exported names

# what AdamW uses when not given (None in run_fit's signature means "not given", so
# --optimizer auto can tell an explicit request for mini-batch training)
ADAMW_DEFAULTS = {"epochs": 100, "batch_windows": 0, "accumulate": 1, "warmup": 0.05, "clip": 1.0,
                  "weight_decay": 0.0, "patience": 0}
OPTIMIZERS = ("auto", "lbfgs", "adamw")
#: --patience of a network prior on a likelihood objective with held-out windows, when not given
NETWORK_PATIENCE = 10


def choose_optimizer(optimizer, setup, adamw_given, lbfgs_given, loader_workers):
    """(optimizer, why) from ``--optimizer`` and what the prior, solver and options allow."""
    if optimizer not in OPTIMIZERS:
        raise UserError(f"option --optimizer: expected one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
    exact = setup.solver is None or setup.solver.exact
    if getattr(getattr(setup, "objective", None), "batch_unit", "window") == "bag":
        return _bag_optimizer(optimizer, setup, lbfgs_given)
    if optimizer == "lbfgs":
        if adamw_given:
            raise UserError(f"option --{adamw_given[0].replace('_', '-')} is for --optimizer adamw, "
                            "not lbfgs (which runs to --gtol or --max-iter)")
        if loader_workers > 0:
            raise UserError("--optimizer lbfgs needs the windows in memory (--loader-workers 0)")
        if not exact:
            raise UserError(f"--optimizer lbfgs needs an exact solver (solver {setup.solver_name!r} draws "
                            "fresh probes every call, which a line search cannot use)")
        return "lbfgs", "requested"
    if optimizer == "adamw":
        if lbfgs_given:
            raise UserError(f"option --{lbfgs_given[0].replace('_', '-')} is for --optimizer lbfgs, not adamw")
        return "adamw", "requested"
    if lbfgs_given and not adamw_given:
        return choose_optimizer("lbfgs", setup, adamw_given, lbfgs_given, loader_workers)
    if not setup.prior_cls.small:
        return "adamw", f"prior {setup.prior_name!r} is a network"
    if adamw_given:
        return "adamw", f"--{adamw_given[0].replace('_', '-')} given"
    if loader_workers > 0:
        return "adamw", "windows read by a loader"
    if not exact:
        return "adamw", f"solver {setup.solver_name!r} is stochastic"
    return "lbfgs", f"prior {setup.prior_name!r} has few parameters and the windows are in memory"


def _bag_optimizer(optimizer, setup, lbfgs_given):
    """Bag objectives train with AdamW: their loss is not an exact full-batch likelihood
    (negatives are drawn afresh every epoch, a warm-up or an annealed pooling changes the
    loss during the fit), which is what L-BFGS's line search needs."""
    name = setup.objective.name
    why = (f"is for exact full-batch likelihoods; objective {name!r} trains on bags with negatives drawn "
           "afresh every epoch (use --optimizer adamw)")
    if optimizer == "lbfgs":
        raise UserError(f"--optimizer lbfgs {why}")
    if lbfgs_given:
        raise UserError(f"option --{lbfgs_given[0].replace('_', '-')} is for --optimizer lbfgs, which {why}")
    if optimizer == "adamw":
        return "adamw", "requested"
    return "adamw", (f"objective {name!r} trains on bags: negatives are drawn afresh every epoch, so its loss is "
                     "no fixed full-batch likelihood for L-BFGS")


def run_fit(dataset, out, *, prior="constant", objective="full", solver=None, prior_options=(),
            solver_options=(), objective_options=(), alpha="auto", sigma2=None, holdout_chroms=None,
            optimizer="auto", epochs=None, lr=None, gtol=None, max_iter=None, batch_windows=None, accumulate=None,
            warmup=None, clip=None, weight_decay=None, patience=None, checkpoint_every=50, log_jsonl=None,
            dry_run=False, seed=0, device="cpu", dtype="float64", threads=0, loader_workers=0, amp=False,
            progress=True, fasta=None, holdout_regions=()) -> dict:
    import torch

    adamw = {"epochs": epochs, "batch_windows": batch_windows, "accumulate": accumulate, "warmup": warmup,
             "clip": clip, "weight_decay": weight_decay, "patience": patience}
    adamw_given = [k for k, v in adamw.items() if v is not None] + (["lr"] if lr is not None else [])
    lbfgs_given = [k for k, v in (("gtol", gtol), ("max_iter", max_iter)) if v is not None]
    # batch size and patience are settled once the objective and the prior are known
    unset = {k for k in ("batch_windows", "patience") if adamw[k] is None}
    adamw = {k: (ADAMW_DEFAULTS[k] if v is None else v) for k, v in adamw.items()}
    if adamw["epochs"] < 1:
        raise UserError(f"option --epochs: expected at least 1, got {adamw['epochs']}")
    if lr is not None and not lr > 0:
        raise UserError(f"option --lr: expected a positive number, got {lr}")
    gtol = GTOL if gtol is None else float(gtol)
    max_iter = MAX_ITER if max_iter is None else int(max_iter)
    if not gtol > 0 or max_iter < 1:
        raise UserError(f"options --gtol and --max-iter: expected positive values, got {gtol} and {max_iter}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("option --device cuda: no CUDA device is available")
    torch.manual_seed(seed)
    dist = Distributed(device)
    try:
        result = _run(dist, dataset, out, prior=prior, objective=objective, solver=solver, prior_options=prior_options,
                      solver_options=solver_options, objective_options=objective_options, alpha=alpha, sigma2=sigma2,
                      holdout_chroms=holdout_chroms, optimizer=optimizer, lr=lr, gtol=gtol, max_iter=max_iter,
                      checkpoint_every=checkpoint_every, log_jsonl=log_jsonl, dry_run=dry_run, seed=seed,
                      dtype=dtype, threads=threads, loader_workers=loader_workers, amp=amp, progress=progress,
                      fasta=fasta, holdout_regions=holdout_regions, adamw=adamw, adamw_given=adamw_given,
                      lbfgs_given=lbfgs_given, unset=unset)
        dist.close()  # (a dry run returns before the fit's own close)
        return result
    except QuietStop:
        # another rank's failure, printed by rank 0 (or by the failing rank itself)
        dist.wait_then_exit()
        raise SystemExit(1) from None
    except (UserError, OSError, FloatingPointError) as exc:
        # a failure of this rank alone, outside the points where the ranks meet: leave
        # its message for the others, which then stop quietly
        dist.publish(exc)
        raise


def _run(dist, dataset, out, *, prior, objective, solver, prior_options, solver_options, objective_options, alpha,
         sigma2, holdout_chroms, optimizer, lr, gtol, max_iter, checkpoint_every, log_jsonl, dry_run, seed, dtype,
         threads, loader_workers, amp, progress, fasta, holdout_regions, adamw, adamw_given, lbfgs_given,
         unset) -> dict:
    from ..train.setup import note, prepare
    from ..ui import progress as make_progress
    from ..store.variants import predict_log_f

    device = dist.device  # cuda:LOCAL_RANK under torchrun on GPUs
    setup, error = None, None
    try:
        setup = prepare(dataset, prior=prior, objective=objective, solver=solver, prior_options=prior_options,
                        solver_options=solver_options, objective_options=objective_options, alpha=alpha,
                        sigma2=sigma2, holdout_chroms=holdout_chroms, device=device, dtype=dtype, threads=threads,
                        loader_workers=loader_workers, seed=seed, fasta=fasta, holdout_regions=holdout_regions,
                        world=dist.world)
    except UserError as exc:
        error = exc
    # every rank reads its own share of the store: a rank-specific failure stops all here
    dist.agree(error)
    bag_fit = setup.objective.batch_unit == "bag"
    if bag_fit:
        # an objective whose phases depend on --epochs (mil's warm-up) refuses them now,
        # before anything is written (the loop calls it again for every epoch)
        setup.objective.start_epoch(0, adamw["epochs"])
    opt_name, opt_why = choose_optimizer(optimizer, setup, adamw_given, lbfgs_given, loader_workers)
    lr_value = float(lr) if lr is not None else float(setup.prior_cls.default_lr)
    if "batch_windows" in unset:
        # one update per epoch (every unit in one step) suits a few large windows; an
        # objective over many small units (bags) asks for mini-batches
        adamw["batch_windows"] = int(setup.objective.default_batch_units)
        per_epoch = getattr(setup.prior_cls, "default_updates_per_epoch", 0)
        if per_epoch and not bag_fit:
            # a network prior: a fixed number of updates per epoch (docs/benchmarks.md,
            # "Defaults of network priors")
            from ..train.loop import batch_for_updates

            adamw["batch_windows"] = batch_for_updates(len(setup.train), per_epoch)
    if "patience" in unset and not setup.prior_cls.small and setup.val and not bag_fit:
        # a network fitted to a likelihood overfits its training windows without early
        # stopping (docs/benchmarks.md, "The transformer prior's default learning rate");
        # a bag objective's warm-up changes its loss mid-fit, so it stops early only when asked
        adamw["patience"] = NETWORK_PATIENCE
    if dist.is_main and not dry_run:
        for message in setup.notes:
            note(message)
    module, train, val = setup.module, setup.train, setup.val
    n_params = int(sum(p.numel() for p in module.parameters()))
    # bag fits: the distinct variants of the training bags and negative pool
    M_train = setup.context.n_train_variants if bag_fit else setup.n_train_variants
    holdout = setup.holdout

    if dry_run and bag_fit:
        from ..train.loop import plan

        n_units = len(setup.objective.epoch_units(train, 0, seed))
        bw, steps, updates, _ = plan(n_units, adamw["epochs"], adamw["batch_windows"],
                                     max(1, adamw["accumulate"]), adamw["warmup"])
        return {"dry_run": True, "optimizer": opt_name, "optimizer_reason": opt_why, **setup.bag_counts,
                "units_per_epoch": n_units, "parameters": n_params, "bags_per_step": bw,
                "steps_per_epoch": steps, "optimizer_updates": updates, "sigma2": None,
                "sigma2_source": setup.sigma2_source}
    if dry_run:
        from ..linalg.costs import setup_fit_plan
        from ..train.loop import plan

        bw, steps, updates, _ = plan(len(train), adamw["epochs"], adamw["batch_windows"],
                                     max(1, adamw["accumulate"]), adamw["warmup"])
        max_np = max(w.n_plus for w in train)
        max_k = max(w.k for w in train)
        itemsize = 8 if dtype == "float64" else 4
        # per window: G (n+ x k) and, in the exact solver, G^T F G and its factor (k x k),
        # the triangular solve L^-1 G^T (k x n+) in the backward; times the windows of a step.
        per_window = itemsize * (2 * max_np * max_k + 2 * max_k * max_k + 4 * max_np)
        if opt_name == "lbfgs":
            bw, steps, updates = len(train), 1, max_iter
        return {
            "dry_run": True, "optimizer": opt_name, "optimizer_reason": opt_why,
            "train_windows": len(train), "val_windows": len(val),
            "train_variants": M_train, "val_variants": setup.n_val_variants,
            "max_n_plus": max_np, "max_k": max_k, "parameters": n_params,
            "windows_per_step": bw, "steps_per_epoch": steps, "optimizer_updates": updates,
            "memory_per_step_mb": round(per_window * bw / 2**20, 2),
            "windows_in_memory_mb": setup.windows_mb,
            "sigma2": setup.sigma2, "sigma2_source": setup.sigma2_source,
            # the time and memory varfx plan gives for this fit (docs/scale.md)
            "plan": setup_fit_plan(setup, objective, opt_name, adamw["epochs"], bw, dist.world, device, dtype),
        }

    config = {
        "dataset": str(Path(dataset).resolve()),
        "prior": {"name": prior, "options": setup.prior_opts},
        # after setup: the options the objective actually used (ldsr's h2_per_snp)
        "objective": {"name": objective, "options": dict(setup.objective.config)},
        "solver": {"name": setup.solver_name, "options": setup.solver_opts} if setup.solver is not None else None,
        "sigma2": setup.sigma2, "sigma2_source": setup.sigma2_source, "ldsr_intercept": setup.ldsr_intercept,
        "N": setup.N,
        "holdout_chroms": holdout, "holdout_regions": setup.holdout_regions,
        "optimizer": opt_name, "seed": seed, "dtype": dtype,
        "inputs": setup.context.inputs(), "amp": bool(amp), "alpha_source": setup.alpha_source,
    }
    if bag_fit:
        # what `varfx score` and a distillation's teachers check: the output is a logit,
        # and the fit belongs to this dataset (its content fingerprint)
        with open_dataset(dataset) as h5:
            fingerprint = stored_fingerprint(h5)
        config.update(prior_output=setup.objective.prior_output,
                      dataset_sha256=fingerprint["sha256"] if fingerprint else None)
    if setup.fasta is not None:
        # the FASTA the prior read (the dataset's or --fasta): a resume must read the same
        config["fasta"] = setup.fasta
    if opt_name == "adamw":
        config.update(epochs=adamw["epochs"], lr=lr_value, batch_windows=adamw["batch_windows"],
                      accumulate=max(1, int(adamw["accumulate"])), warmup=adamw["warmup"], clip=adamw["clip"],
                      weight_decay=adamw["weight_decay"], patience=adamw["patience"])
    else:
        config.update(gtol=gtol, max_iter=max_iter)

    out = Path(out)
    created = not out.exists()
    log_created = bool(log_jsonl) and not Path(log_jsonl).exists()
    log_fh = None
    try:
        if dist.is_main:
            # only rank 0 touches the model directory (it need not exist on other nodes)
            out.mkdir(parents=True, exist_ok=True)
        if log_jsonl and dist.is_main:
            # an unwritable log fails here, and the directory just made goes with it
            log_fh = open(log_jsonl, "a")

        def read_checkpoint():
            ckpt = ck.read_checkpoint(out, keys=LBFGS_KEYS if opt_name == "lbfgs" else ADAMW_KEYS)
            if ckpt is not None:
                try:
                    old = json.loads(ckpt["config"])
                except (TypeError, ValueError):
                    raise UserError("checkpoint has an unreadable config; use another -o",
                                    path=out / ck.CHECKPOINT) from None
                if old != config:
                    diff = sorted(k for k in set(old) | set(config) if old.get(k) != config.get(k))
                    raise UserError(f"has a checkpoint from a different fit (differs in: {', '.join(diff)}); "
                                    "use another -o", path=out)
                ck.check_prior_state(ckpt["prior"], module, out / ck.CHECKPOINT, prior)
            return ckpt

        # read by rank 0 and sent to the others (whatever world size wrote it: nothing in
        # it is per rank)
        ckpt = dist.from_main(read_checkpoint)
        if ckpt is not None:
            module.load_state_dict(ckpt["prior"])

        def log(rec):
            if log_fh is not None:
                log_fh.write(json.dumps(rec) + "\n")
                log_fh.flush()

        def write_meta(done, curve, record):
            if not dist.is_main:
                return None
            meta = {"format": MODEL_FORMAT, "format_version": MODEL_VERSION, "varfx_version": __version__,
                    **config, "optimizer_reason": opt_why, "n_train_windows": len(train),
                    "n_val_windows": len(val), "n_train_variants": M_train, "h2_ldsr": setup.h2_ldsr,
                    "notes": setup.notes, "finished": done, **record, "epochs_done": len(curve),
                    "curve": curve, "n_parameters": n_params, **setup.bag_counts, "world_size": dist.world}
            write_json_atomic(out / MODEL_JSON, meta)
            return meta

        t0 = time.perf_counter()
        with make_progress(disable=not (progress and dist.is_main)) as bar:
            if opt_name == "lbfgs":
                from ..train.lbfgs import run_lbfgs

                result = run_lbfgs(setup, out, config, dist, ckpt, gtol=gtol, max_iter=max_iter,
                                   checkpoint_every=checkpoint_every, amp=amp, log=log,
                                   write_meta=write_meta, bar=bar)
            else:
                from ..train.loop import run_adamw

                result = run_adamw(setup, out, config, dist, ckpt, epochs=adamw["epochs"], lr=lr_value,
                                   batch_windows=adamw["batch_windows"],
                                   accumulate=max(1, int(adamw["accumulate"])), warmup=adamw["warmup"],
                                   clip=adamw["clip"], weight_decay=adamw["weight_decay"],
                                   patience=adamw["patience"], checkpoint_every=checkpoint_every, seed=seed,
                                   amp=amp, loader_workers=loader_workers, log=log, write_meta=write_meta,
                                   bar=bar)
    except (UserError, OSError, FloatingPointError, QuietStop):
        # nothing new left behind: a fit that failed (a diverging loss, an unwritable
        # log) would fail the same way if resumed, so the directory it created goes
        if created and dist.is_main and out.is_dir():
            shutil.rmtree(out, ignore_errors=True)
        if log_created and log_fh is not None:
            log_fh.close()
            log_fh = None
            Path(log_jsonl).unlink(missing_ok=True)
        raise
    except BaseException:
        # interrupted (Ctrl-C, a signal): keep what can be resumed, drop an empty start
        if created and dist.is_main and out.is_dir() and not (out / ck.CHECKPOINT).exists():
            shutil.rmtree(out, ignore_errors=True)
        raise
    finally:
        if log_fh is not None:
            log_fh.close()
    curve, record = result["curve"], result["record"]
    meta = write_meta(True, curve, record) or {"n_parameters": n_params}
    dist.close()
    if bag_fit:
        return _bag_summary(setup, out, prior, objective, opt_name, curve, record, result, meta, lr_value, t0)
    with open_dataset(dataset) as h5:
        log_f = predict_log_f(module, h5, device=device, batch=setup.batch)
    core = np.concatenate([w.core_idx for w in train])
    summary = {
        "model_dir": str(out), "prior": prior, "objective": objective, "solver": setup.solver_name,
        "optimizer": opt_name, "epochs": len(curve), "stopped_early": record.get("stopped_early", False),
        "resumed_from": result["resumed_from"] or "-",
        "train_windows": len(train), "val_windows": len(val),
        **({"buffer_windows": setup.n_buffer_windows} if setup.holdout_regions else {}),
        "sigma2": setup.sigma2, "sigma2_source": setup.sigma2_source, "ldsr_intercept": setup.ldsr_intercept,
        "final_train_loss": curve[-1]["train_loss"],
        **({"final_val_loss": curve[-1]["val_loss"]} if val else {}),
        "h2_train": float(np.exp(log_f[core]).sum()), "seconds": round(time.perf_counter() - t0, 3),
        "loader_wait_fraction": round(result["waited"] / max(time.perf_counter() - t0, 1e-9), 4)
        if loader_workers else None,
        "n_parameters": meta["n_parameters"],
    }
    if opt_name == "lbfgs":
        summary.update(stop_reason=record["stop_reason"], grad_norm=record["grad_norm"],
                       iterations=record["iterations"])
    else:
        summary["lr"] = lr_value
    return summary


def _bag_summary(setup, out, prior, objective, opt_name, curve, record, result, meta, lr_value, t0) -> dict:
    """The summary of a fit on bags: bags instead of windows, no sigma^2 or h2."""
    return {
        "model_dir": str(out), "prior": prior, "objective": objective, "optimizer": opt_name,
        "epochs": len(curve), "stopped_early": record.get("stopped_early", False),
        "resumed_from": result["resumed_from"] or "-", **setup.bag_counts,
        "final_train_loss": curve[-1]["train_loss"],
        **({"final_val_loss": curve[-1]["val_loss"]} if "val_loss" in curve[-1] else {}),
        "seconds": round(time.perf_counter() - t0, 3), "n_parameters": meta["n_parameters"], "lr": lr_value,
    }

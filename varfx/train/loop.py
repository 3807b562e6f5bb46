"""The mini-batch AdamW loop (networks, and any prior when asked for).

The loss of a step is the objective summed over a batch of training units and divided
by the number of variants in the batch (so learning rates do not depend on the batch
size).  AdamW with a linear warm-up and cosine decay (:mod:`.schedule`), gradient
accumulation and clipping, early stopping on the validation loss with the best
epoch's weights restored at the end.  The whole state (prior, optimiser, schedule,
epoch and step, solver state, curve, best weights) is checkpointed atomically every
``checkpoint_every`` steps and after every epoch; a resumed fit replays the epoch order
(it depends only on the seed and the epoch), so an interrupted and resumed run ends at
the same parameters as an uninterrupted one on CPU.

The units of an epoch come from the objective (:meth:`varfx.api.Objective.epoch_units`:
the windows; for a bag objective the positive bags plus negatives drawn from
``(seed, epoch)``), and :meth:`~varfx.api.Objective.start_epoch` sets the objective's
phase (a warm-up, an annealed pooling) from ``(epoch, epochs)``, so both replay on
resume.  Validation uses :meth:`~varfx.api.Objective.eval_loss`.

A prior on the module's parameters (``penalty()``, :mod:`.penalty`) enters each step
with the batch's share of it, ``penalty / nll_scale * batch / epoch`` (``batch`` and
``epoch``: :meth:`~varfx.api.Objective.batch_size` of the step's and of the epoch's
units), added on rank 0 only; an epoch's steps sum to one penalty, so the epoch's
``train_loss`` is the MAP objective per variant.  Validation losses leave it out.
"""

from __future__ import annotations

import json
import math
import time

from ..errors import UserError
from . import checkpoint as ck
from .penalty import penalty_record, penalty_term
from .schedule import make_scheduler, warmup_updates

CHECKPOINT_KEYS = ("prior", "optimizer", "scheduler", "state", "curve", "config")


def batch_for_updates(n_units: int, updates_per_epoch: int) -> int:
    """Units per step that give at most ``updates_per_epoch`` optimiser updates an epoch
    (one unit per step when there are fewer units): a network prior's default
    ``--batch-windows``, so that the number of updates of a fit depends on ``--epochs``,
    not on how many windows the dataset has."""
    return max(1, math.ceil(n_units / max(1, int(updates_per_epoch))))


def plan(n_units: int, epochs: int, batch_windows: int, accumulate: int, warmup: float):
    """(units per step, steps per epoch, optimiser updates in all, warm-up updates)."""
    bw = batch_windows if batch_windows > 0 else n_units
    steps_per_epoch = math.ceil(n_units / bw)
    total = max(1, math.ceil(epochs * steps_per_epoch / accumulate))
    return bw, steps_per_epoch, total, warmup_updates(warmup, total)


def guarded_loss(setup, units, log_f_of, where):
    """The batch's loss; a solver's refusal (non-finite or indefinite inputs) becomes a
    one-line error naming the unit."""
    try:
        return setup.objective.batch_loss(units, log_f_of, setup.s2)
    except FloatingPointError:
        fail_non_finite(setup, units, log_f_of, math.nan, where)


def scalar(value) -> float:
    """A loss (0-d tensor, with or without a graph, or a float) as a float."""
    return float(value.detach()) if hasattr(value, "detach") else float(value)


def fail_non_finite(setup, units, log_f_of, loss, where):
    """Name the first unit whose loss is not finite (or the batch when each is)."""
    for unit, value in zip(units, setup.objective.unit_losses(units, log_f_of, setup.s2)):
        if not math.isfinite(value):
            raise UserError(f"the loss of {setup.objective.unit_name(unit)} became {value} {where}; "
                            "try a smaller --lr")
    raise UserError(f"the loss became {loss} {where}; try a smaller --lr")


def run_adamw(setup, out, config, dist, ckpt, *, epochs, lr, batch_windows, accumulate, warmup, clip,
              weight_decay, patience, checkpoint_every, seed, amp, loader_workers, log, write_meta, bar):
    import torch

    from ..store.dataset import open_dataset
    from ..store.variants import track_rows
    from ..store.windows import WindowBatches

    module, objective, train, val = setup.module, setup.objective, setup.train, setup.val
    # an epoch's units come from the objective (bag objectives add negatives drawn from
    # (seed, epoch)); their number is the same every epoch
    n_units = len(objective.epoch_units(train, 0, seed))
    note_penalty(module, objective, dist)
    bw, steps_per_epoch, total_updates, warm = plan(n_units, epochs, batch_windows, accumulate, warmup)
    opt = torch.optim.AdamW(module.parameters(), lr=lr, weight_decay=weight_decay)
    sched = make_scheduler(opt, total_updates, warm)
    state = {"epoch": 0, "step": 0, "updates": 0, "ep_loss": 0.0, "ep_n": 0, "best_val": math.inf,
             "bad_epochs": 0, "stopped_early": False, "best_epoch": 0, "resumes": []}
    curve: list[dict] = []
    best = None  # the weights of the best validation epoch (restored at the end with --patience)
    resumed_from = None
    if ckpt is not None:
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        state.update(json.loads(ckpt["state"]))
        curve = json.loads(ckpt["curve"])
        best = ckpt.get("best_prior")
        if setup.solver is not None:
            setup.solver.load_state_dict(state.get("solver", {}))
        resumed_from = f"epoch {state['epoch'] + 1} step {state['step']}"
        # recorded in model.json (and carried by later checkpoints): a fit resumed
        # twice lists both restarts
        state["resumes"] = [*state.get("resumes", []), resumed_from]
        note_world_change(state, dist)
    state["world_size"] = dist.world

    def checkpoint():
        if not dist.is_main:
            return
        if setup.solver is not None:
            state["solver"] = setup.solver.state_dict()
        payload = {"prior": module.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                   "state": json.dumps(state), "curve": json.dumps(curve), "config": json.dumps(config)}
        if best is not None:
            payload["best_prior"] = best
        # looked up at call time, so a test can interrupt a fit right after a checkpoint
        ck.save_checkpoint(out, payload)

    t0 = time.perf_counter()
    waited, run_windows, val_text = 0.0, 0, ""
    n_val = setup.n_val_variants
    task = bar.add_task("fit", total=epochs * steps_per_epoch,
                        completed=state["epoch"] * steps_per_epoch + state["step"], status="")
    while state["epoch"] < epochs and not state["stopped_early"]:
        epoch = state["epoch"]
        # The order of an epoch depends only on (seed, epoch): a resumed run replays it
        # and skips the steps already taken.
        gen = torch.Generator().manual_seed(seed * 100003 + epoch)
        objective.start_epoch(epoch, epochs)
        units = objective.epoch_units(train, epoch, seed)
        order = torch.randperm(len(units), generator=gen).tolist()
        n_epoch = objective.batch_size(units)  # the penalty's share of a step is its batch / this
        module.train()
        if setup.streamed:
            # each rank reads the factors of its own share of every batch, batch by batch
            # (in `loader_workers` processes ahead of the trainer, or here when 0)
            batches_plan = [dist.share([units[i].index for i in order[st * bw:(st + 1) * bw]])
                            for st in range(state["step"], steps_per_epoch)]
            batches = iter(WindowBatches(setup.dataset, batches_plan, config["dtype"],
                                         tracks=setup.track_shape is not None).loader(loader_workers))
        while state["step"] < steps_per_epoch:
            st = state["step"]
            where = f"at epoch {epoch + 1} step {st + 1}"
            wb = [units[i] for i in order[st * bw:(st + 1) * bw]]
            n_core = objective.batch_size(wb)
            error, local = None, 0.0
            try:
                if setup.streamed:
                    t_wait = time.perf_counter()
                    try:
                        mine, rows = next(batches)
                    except UserError as exc:
                        raise loader_error(exc) from None
                    mine = [_to(w, module_device(setup)) for w in mine]
                    waited += time.perf_counter() - t_wait
                else:
                    mine, rows = dist.share(wb), None
                t_step = time.perf_counter()
                # data parallel: each rank takes every world-th unit of the batch; the
                # gradients are summed over ranks, so the update is the same as one
                # process taking the whole batch
                log_f_of = setup.log_f_of(amp, rows)
                local = guarded_loss(setup, mine, log_f_of, where) / n_core
                # the batch's share n_core / n_epoch of the penalty, divided by n_core as
                # the data's loss is; on rank 0 only, so the sum over ranks holds it once
                pen = penalty_term(module, objective) if dist.is_main else None
                if pen is not None:
                    local = local + pen / n_epoch
                if torch.is_tensor(local) and local.requires_grad:
                    (local / accumulate).backward()
                # checked here, on the rank whose units it is, so that the message names them
                if not math.isfinite(scalar(local)):
                    fail_non_finite(setup, mine, log_f_of, scalar(local), where)
            except UserError as exc:
                # the others learn of it in the sum below and every rank stops there
                error = exc
            loss = dist.sum_value(local, error=error)
            if not math.isfinite(loss):
                # finite on every rank, not in the sum (an overflow)
                raise UserError(f"the loss became {loss} {where}; try a smaller --lr")
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
                ck.check_finite_parameters(module, f"at epoch {epoch + 1} step {st + 1}")
            log({"epoch": epoch + 1, "step": state["step"], "loss": loss, "lr": opt.param_groups[0]["lr"],
                 "windows": len(wb), "windows_per_s": len(wb) / max(time.perf_counter() - t_step, 1e-9)})
            run_windows += len(wb)
            rate = run_windows / max(time.perf_counter() - t0, 1e-9)
            bar.update(task, advance=1,
                       status=f"epoch {epoch + 1} loss {loss:.5f} {rate:.3g} {objective.batch_unit}s/s{val_text}")
            if checkpoint_every and state["step"] % checkpoint_every == 0 and not last_of_epoch:
                checkpoint()
        rec = {"epoch": epoch + 1, "train_loss": state["ep_loss"] / state["ep_n"]}
        if val:
            rec["val_loss"] = validation_loss(setup, dist, amp, n_val, track_rows, open_dataset)
            if not math.isfinite(rec["val_loss"]):
                raise UserError(f"the validation loss became {rec['val_loss']} at epoch {epoch + 1}; "
                                "try a smaller --lr")
            if rec["val_loss"] < state["best_val"]:
                state["best_val"], state["bad_epochs"], state["best_epoch"] = rec["val_loss"], 0, epoch + 1
                if patience:
                    best = ck.copy_state(module)
            else:
                state["bad_epochs"] += 1
                if patience and state["bad_epochs"] >= patience:
                    state["stopped_early"] = True
        curve.append(rec)
        if "val_loss" in rec:
            val_text = f" (val {rec['val_loss']:.5f})"
        # seconds since this run's loop started, and of them the seconds rank 0 waited for
        # windows read per batch (benchmarks/ddp.py times epochs with them)
        log({"epoch_end": epoch + 1, **rec, "seconds": round(time.perf_counter() - t0, 4),
             "read_seconds": round(waited, 4)})
        state.update(epoch=epoch + 1, step=0, ep_loss=0.0, ep_n=0)
        checkpoint()
        write_meta(False, curve, _summary(state, patience, best, module, objective))
    if patience and best is not None:
        # early stopping keeps the weights of the best validation epoch, not the last
        module.load_state_dict(best)
        checkpoint()
    return {"curve": curve, "resumed_from": resumed_from, "waited": waited,
            "record": _summary(state, patience, best, module, objective)}


def _summary(state, patience, best, module, objective):
    out = {"stopped_early": state["stopped_early"], "optimizer_updates": state["updates"],
           "resumes": list(state.get("resumes", [])), "prior_penalty": penalty_record(module, objective)}
    if patience and best is not None:
        out.update(best_epoch=state["best_epoch"], weights="best validation epoch")
    return out


def validation_loss(setup, dist, amp, n_val, track_rows, open_dataset) -> float:
    import torch

    module = setup.module
    module.eval()
    with torch.no_grad():
        error, local = None, 0.0
        try:
            vs = setup.val_share(dist)
            local = setup.objective.eval_loss(vs, setup.log_f_of(amp, setup.rows_for(vs)), setup.s2)
        except UserError as exc:
            error = exc
        value = dist.sum_value(local, error=error) / n_val
    module.train()
    return value


def note_penalty(module, objective, dist) -> None:
    """Say so when the module has a prior on its parameters that the objective's loss
    cannot take (``nll_scale`` None): the fit is then the maximum of the loss alone."""
    rec = penalty_record(module, objective)
    if dist.is_main and rec is not None and rec.get("why"):
        from .setup import note

        note(rec["why"])


def note_world_change(state, dist) -> None:
    """A resume with another number of processes gives the same fit (the batches depend
    on (seed, epoch) only and every rank holds the same optimiser state), to the
    rounding of sums taken in another order; say so in the resume record."""
    old = int(state.get("world_size", 1))
    if old != dist.world:
        state["resumes"][-1] += f" (world size {old} -> {dist.world})"
        if dist.is_main:
            from .setup import note

            note(f"resuming a checkpoint written by {old} process{'es' if old > 1 else ''} with {dist.world}; "
                 "the fit continues the same (only the order of floating-point sums differs)")


def loader_error(exc: UserError) -> UserError:
    """A UserError raised in a loader worker process comes back with the worker's
    traceback in its message: keep the one line the worker raised."""
    text = str(exc)
    if "DataLoader worker" not in text:
        return exc
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    last = lines[-1] if lines else text
    prefix = "varfx.errors.UserError: "
    return UserError(last[len(prefix):] if last.startswith(prefix) else last)


def module_device(setup):
    return setup.batch["freq"].device


def _to(window, device):
    """A window read by a loader worker (CPU tensors), on the training device."""
    if str(device) != "cpu":
        window.G, window.z = window.G.to(device), window.z.to(device)
        window.P = window.P.to(device) if window.P is not None else None
        window.beta = window.beta.to(device) if window.beta is not None else None
        window.objective_cache = {k: (v.to(device) if hasattr(v, "to") else v)
                                  for k, v in window.objective_cache.items()}
    return window

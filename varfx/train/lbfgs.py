"""Full-batch L-BFGS to the maximum, for priors with few parameters.

Mini-batch AdamW with a decaying learning rate stops where its schedule ends, not where
the likelihood is highest: on a 3-chromosome GLM simulation it left the coefficients
shrunk to 0.7 of the truth.  For a prior with few parameters (:attr:`Prior.small`) whose
windows are in memory the whole training loss is cheap to evaluate, so the fit
minimises it with L-BFGS and a strong-Wolfe line search until the largest absolute
component of the gradient of the per-variant loss (the objective summed over the
training variants, divided by their number) is at most ``gtol``, or ``max_iter``
iterations have run, or the loss stops changing.  The stopping reason, the final
gradient norm and the iteration count go to model.json.

Checkpoints are written every ``checkpoint_every`` iterations (a *round*); a killed fit
restarts from the last checkpointed parameters with a fresh L-BFGS memory and reaches
the same optimum (the iterates differ, the maximum does not).

A prior module with a prior on its parameters (``penalty()``, :mod:`.penalty`) makes
the minimised loss ``(sum of the objective + penalty / nll_scale) / n_train``: a MAP
fit.  The penalty is added once per evaluation, on rank 0 only (the losses and
gradients of the ranks are summed, so the sum holds it once whatever the world size);
``train_loss`` in the curve includes it, ``prior_penalty`` in model.json records it.
"""

from __future__ import annotations

import json
import math

from ..errors import UserError
from . import checkpoint as ck
from .loop import fail_non_finite, guarded_loss, note_penalty, note_world_change, scalar, validation_loss
from .penalty import penalty_record, penalty_term

CHECKPOINT_KEYS = ("prior", "state", "curve", "config")
ROUND = 20  # iterations between checkpoints when --checkpoint-every is 0
GTOL = 1e-6
MAX_ITER = 500

STOP_GTOL = "gradient below gtol"
STOP_MAX_ITER = "max-iter reached"
STOP_STALLED = "no further progress (the line search cannot lower the loss)"


def run_lbfgs(setup, out, config, dist, ckpt, *, gtol, max_iter, checkpoint_every, amp, log, write_meta, bar):
    import torch

    from ..store.dataset import open_dataset
    from ..store.variants import track_rows

    module, objective = setup.module, setup.objective
    params = [p for p in module.parameters() if p.requires_grad]
    n_train = setup.n_train_variants
    # every rank holds the factors of its own share of the training windows (full batch)
    error, mine = None, []
    try:
        mine = setup.load(dist.share(setup.train))
    except UserError as exc:
        error = exc
    dist.agree(error)
    log_f_of = setup.log_f_of(amp, setup.rows_for(mine))
    # "resumes": where each re-run restarted (kept in the checkpoint, so a fit resumed
    # twice lists both; model.json shows that its optimum came from a resumed run)
    state = {"iterations": 0, "evaluations": 0, "stop_reason": None, "grad_norm": None, "resumes": []}
    curve: list[dict] = []
    resumed_from = None
    if ckpt is not None:
        state.update(json.loads(ckpt["state"]))
        curve = json.loads(ckpt["curve"])
        resumed_from = f"iteration {state['iterations']}"
        state["resumes"] = [*state.get("resumes", []), resumed_from]
        note_world_change(state, dist)
    state["world_size"] = dist.world

    def closure():
        opt.zero_grad()
        where = f"at L-BFGS iteration {state['iterations'] + 1}"
        error, local = None, 0.0
        try:
            local = guarded_loss(setup, mine, log_f_of, where) / n_train
            # once in the sum over ranks: rank 0 adds it (the others' windows only)
            pen = penalty_term(module, objective) if dist.is_main else None
            if pen is not None:
                local = local + pen / n_train
            if torch.is_tensor(local) and local.requires_grad:
                local.backward()
            # checked on the rank whose windows they are, so that the message names them
            if not math.isfinite(scalar(local)):
                fail_non_finite(setup, mine, log_f_of, scalar(local), where)
        except UserError as exc:
            error = exc
        # every rank stops here when one failed (the same collective on all)
        loss = dist.sum_value(local, error=error)
        dist.sum_grads(module)
        state["evaluations"] += 1
        if not math.isfinite(loss):
            raise UserError(f"the loss became {loss} {where}")
        return torch.tensor(loss, dtype=torch.float64)

    def grad_norm():
        g = [p.grad.detach().abs().max() for p in params if p.grad is not None]
        return float(torch.stack(g).max()) if g else 0.0

    def checkpoint():
        if dist.is_main:
            ck.save_checkpoint(out, {"prior": module.state_dict(), "state": json.dumps(state),
                                     "curve": json.dumps(curve), "config": json.dumps(config)})

    note_penalty(module, objective, dist)
    per_round = checkpoint_every if checkpoint_every > 0 else ROUND
    task = bar.add_task("fit", total=max_iter, completed=state["iterations"], status="")
    # one optimiser for the whole run: its curvature memory carries across rounds
    opt = torch.optim.LBFGS(params, lr=1.0, max_iter=per_round, max_eval=per_round * 5 // 4 + 5,
                            tolerance_grad=gtol, tolerance_change=1e-14, history_size=20,
                            line_search_fn="strong_wolfe")
    module.train()
    while state["stop_reason"] is None:
        if not params:
            state["stop_reason"] = STOP_GTOL
            break
        before = _n_iter(opt, params)
        opt.param_groups[0]["max_iter"] = min(per_round, max_iter - state["iterations"])
        opt.step(closure)
        done = _n_iter(opt, params) - before
        state["iterations"] += done
        ck.check_finite_parameters(module, f"at L-BFGS iteration {state['iterations']}")
        loss = float(closure())  # the loss and gradient where this round ended
        g = grad_norm()
        state["grad_norm"] = g
        if g <= gtol:
            state["stop_reason"] = STOP_GTOL
        elif state["iterations"] >= max_iter:
            state["stop_reason"] = STOP_MAX_ITER
        elif done < opt.param_groups[0]["max_iter"]:
            state["stop_reason"] = STOP_STALLED
        rec = {"iteration": state["iterations"], "train_loss": loss, "grad_norm": g}
        curve.append(rec)
        log({"iteration": state["iterations"], "loss": loss, "grad_norm": g, "evaluations": state["evaluations"]})
        bar.update(task, completed=state["iterations"], status=f"L-BFGS loss {loss:.7f} |grad| {g:.2e}")
        checkpoint()
        write_meta(False, curve, _record(state, module, objective))
    if setup.val and curve and "val_loss" not in curve[-1]:
        curve[-1]["val_loss"] = validation_loss(setup, dist, amp, setup.n_val_variants, track_rows, open_dataset)
        if not math.isfinite(curve[-1]["val_loss"]):
            raise UserError(f"the validation loss is {curve[-1]['val_loss']} at the fitted parameters")
        checkpoint()
    return {"curve": curve, "resumed_from": resumed_from, "waited": 0.0,
            "record": _record(state, module, objective)}


def _n_iter(opt, params) -> int:
    return int(opt.state[params[0]].get("n_iter", 0)) if params[0] in opt.state else 0


def _record(state, module, objective) -> dict:
    return {"stop_reason": state["stop_reason"], "grad_norm": state["grad_norm"],
            "iterations": state["iterations"], "evaluations": state["evaluations"], "stopped_early": False,
            "resumes": list(state.get("resumes", [])), "prior_penalty": penalty_record(module, objective)}

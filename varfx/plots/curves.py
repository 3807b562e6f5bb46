"""Training and validation loss of a fitted model (``model.json``'s ``curve``)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..store.model import MODEL_JSON, read_model_json
from . import _draw


def read_curve(model_dir) -> dict:
    """The loss curve of a model directory as arrays: ``x`` (epoch, or L-BFGS
    iteration), ``x_label``, ``train_loss``, ``val_loss`` (NaN where a record has
    none: an L-BFGS fit validates only at its end), ``best_epoch`` (None unless early
    stopping kept a best epoch's weights), ``stopped_early``.

    A model without a curve, or with a record whose train_loss is not a finite
    number, is a one-line error naming its model.json."""
    meta = read_model_json(model_dir)
    path = Path(model_dir) / MODEL_JSON
    curve = meta.get("curve")
    if not isinstance(curve, list) or not curve:
        raise UserError("the model records no loss curve (\"curve\" is missing or empty: a fit that has not "
                        "finished an epoch?); nothing to plot", path=path)
    kind = "epoch" if all(isinstance(r, dict) and "epoch" in r for r in curve) else (
        "iteration" if all(isinstance(r, dict) and "iteration" in r for r in curve) else None)
    x, train, val = [], [], []
    for i, rec in enumerate(curve):
        if not isinstance(rec, dict):
            raise UserError(f"curve record {i + 1} is a {type(rec).__name__}, expected an object", path=path)
        t = _number(rec.get("train_loss"), path, i, "train_loss")
        v = rec.get("val_loss")
        v = math.nan if v is None else _number(v, path, i, "val_loss")
        step = rec.get(kind, i + 1) if kind else i + 1
        if not isinstance(step, (int, float)) or isinstance(step, bool) or not math.isfinite(step):
            raise UserError(f"curve record {i + 1}: {kind} is {step!r}, expected a number", path=path)
        x.append(float(step))
        train.append(t)
        val.append(v)
    best = meta.get("best_epoch")
    best = int(best) if isinstance(best, (int, float)) and not isinstance(best, bool) and best >= 1 else None
    return {"x": np.asarray(x), "x_label": kind or "record", "train_loss": np.asarray(train),
            "val_loss": np.asarray(val), "best_epoch": best if kind == "epoch" else None,
            "stopped_early": bool(meta.get("stopped_early", False)),
            "prior": meta["prior"]["name"],
            "objective": (meta.get("objective") or {}).get("name", "?")}


def _number(value, path, i, key) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok:
        raise UserError(f"curve record {i + 1}: {key} is {value!r}, expected a finite number", path=path)
    return float(value)


def plot_curves(model_dir, out_dir, name: str = "curves.png") -> _draw.Plot:
    """Write ``out_dir/curves.png``: train (and validation) loss against epoch, the best
    epoch marked when early stopping kept it.  ``data``: :func:`read_curve`'s dict."""
    c = read_curve(model_dir)
    path = _draw.out_path(out_dir, name)
    fig = _draw.figure(7, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    marker = "o" if len(c["x"]) <= 30 else None
    ax.plot(c["x"], c["train_loss"], marker=marker, ms=3, label="train")
    has_val = bool(np.isfinite(c["val_loss"]).any())
    if has_val:
        ok = np.isfinite(c["val_loss"])
        ax.plot(c["x"][ok], c["val_loss"][ok], marker="o" if ok.sum() <= 30 else None, ms=3,
                label="validation (held-out windows)")
    if c["best_epoch"] is not None:
        label = f"best epoch {c['best_epoch']}" + (" (stopped early; its weights kept)" if c["stopped_early"]
                                                   else " (its weights kept)")
        ax.axvline(c["best_epoch"], color="0.4", ls="--", lw=1, label=label)
    elif c["stopped_early"]:
        ax.axvline(c["x"][-1], color="0.4", ls="--", lw=1, label="stopped early")
    ax.set_xlabel(c["x_label"])
    ax.set_ylabel("loss (per variant; per bag for bag objectives)")
    ax.set_title(f"{Path(model_dir).name}: prior {c['prior']}, objective {c['objective']}")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _draw.Plot(_draw.save(fig, path), c)

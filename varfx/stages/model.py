"""The model directory: ``model.json`` (readable) and ``checkpoint.pt`` (tensors only).

``checkpoint.pt`` holds only tensors, numbers and strings and is always read with
``torch.load(..., weights_only=True)``, so a model directory from someone else cannot
run code on load.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import UserError

MODEL_JSON = "model.json"
CHECKPOINT = "checkpoint.pt"  # the same name as varfx.train.checkpoint.CHECKPOINT
MODEL_FORMAT = "varfx-model"
MODEL_VERSION = 1


def read_model_json(model_dir) -> dict:
    path = Path(model_dir) / MODEL_JSON
    if not path.is_file():
        raise UserError(f"no {MODEL_JSON} (expected the output of `varfx fit`)", path=model_dir)
    try:
        meta = json.loads(path.read_text())
    except ValueError as exc:
        raise UserError(f"not valid JSON ({exc})", path=path) from None
    if meta.get("format") != MODEL_FORMAT:
        raise UserError(f"not a varfx model (format {meta.get('format')!r})", path=path)
    if int(meta.get("format_version", -1)) != MODEL_VERSION:
        raise UserError(f"model format version {meta.get('format_version')}; this varfx reads {MODEL_VERSION}", path=path)
    return meta


def save_checkpoint(model_dir, state: dict) -> None:
    from ..train.checkpoint import save_checkpoint as save

    save(model_dir, state)


def load_checkpoint(model_dir) -> dict | None:
    """The model directory's checkpoint, validated (:func:`varfx.train.checkpoint.read_checkpoint`)."""
    from ..train.checkpoint import read_checkpoint

    return read_checkpoint(model_dir)


def build_prior(meta_prior: dict, context):
    """Instantiate the prior plugin named in model.json and build its module."""
    from ..plugins import lookup

    cls = lookup("priors", meta_prior["name"])
    return cls(**meta_prior.get("options", {})).module(context)


def variant_batch(h5, dtype="float64", device="cpu", tracks=True) -> dict:
    """The per-variant inputs of a prior for every variant of a dataset.

    ``tracks=False`` leaves out the per-base tracks (``features/window``, the largest
    input): a loader then reads the rows each batch needs (:func:`track_rows`)."""
    import torch

    var = h5["variants"]
    freq = var["freq"][:].astype(np.float64)
    batch = {
        "freq": torch.as_tensor(freq, dtype=getattr(torch, dtype), device=device),
        "index": torch.arange(len(freq), device=device),
    }
    scalar = feature_matrix(h5)
    if scalar is not None:
        batch["features"] = torch.as_tensor(scalar, dtype=getattr(torch, dtype), device=device)
    if tracks and "features" in h5 and "window" in h5["features"]:
        # per-base tracks (M x w x T), kept in their stored float16 until a chunk is used
        batch["window"] = torch.as_tensor(h5["features"]["window"][:], device=device)
    return batch


def track_rows(h5, lo: int, hi: int):
    """Rows ``[lo, hi)`` of the per-base tracks (a contiguous, chunk-aligned read), or None."""
    import torch

    if "features" not in h5 or "window" not in h5["features"]:
        return None
    return torch.as_tensor(h5["features"]["window"][lo:hi])


def prior_context(batch, init_f=1e-6, track_shape=None):
    """What a prior's module needs to know about the inputs it will get, as a
    :class:`varfx.api.FitContext` (``track_shape``: the stored tracks' shape when they
    are not in ``batch``)."""
    from ..api import FitContext

    n_features = int(batch["features"].shape[1]) if "features" in batch else 0
    shape = tuple(batch["window"].shape) if "window" in batch else track_shape
    window, n_tracks = (int(shape[1]), int(shape[2])) if shape is not None else (0, 0)
    return FitContext(init_f=init_f, n_features=n_features, n_tracks=n_tracks, window=window)


def feature_matrix(h5):
    """The normalised per-variant scalar features written by ingest (M x d), or None."""
    if "features" not in h5 or "scalar" not in h5["features"]:
        return None
    x = h5["features"]["scalar"][:].astype(np.float64)
    return x if x.ndim == 2 and x.shape[1] > 0 else None


def load_model(model_dir, dtype="float64", device="cpu"):
    """(meta, prior module in eval mode) of a fitted model directory."""
    meta = read_model_json(model_dir)
    ckpt = load_checkpoint(model_dir)
    if ckpt is None:
        raise UserError(f"no {CHECKPOINT} (the fit did not run or was removed)", path=model_dir)
    from ..api import FitContext
    from ..train.checkpoint import CHECKPOINT as _name, check_prior_state

    inputs = meta.get("inputs", {})
    context = FitContext(init_f=1e-6, **{k: int(inputs.get(k, 0)) for k in ("n_features", "n_tracks", "window")})
    module = build_prior(meta["prior"], context)
    check_prior_state(ckpt["prior"], module, Path(model_dir) / _name, meta["prior"].get("name", ""))
    module.load_state_dict(ckpt["prior"])
    module.eval()
    return meta, module


def predict_log_f(module, h5, dtype="float64", device="cpu", chunk=1 << 16, batch=None):
    """log f for every variant of an open dataset, in memory-bounded chunks (the
    per-base tracks are read chunk by chunk, never whole)."""
    import torch

    if batch is None or "window" not in batch:
        batch = variant_batch(h5, dtype, device, tracks=False) if batch is None else batch
        with_rows = "features" in h5 and "window" in h5["features"]
    else:
        with_rows = False
    M = batch["freq"].shape[0]
    out = []
    was_training = module.training
    module.eval()
    with torch.no_grad():
        for s in range(0, M, chunk):
            sub = {k: v[s:s + chunk] for k, v in batch.items()}
            if with_rows:
                sub["window"] = track_rows(h5, s, min(s + chunk, M)).to(batch["freq"].device)
            out.append(module(sub).to(torch.float64))
    module.train(was_training)
    return torch.cat(out).cpu().numpy() if out else np.zeros(0)

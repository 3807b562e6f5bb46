"""What a prior reads from a dataset: the per-variant inputs (frequency, scalar
features, per-base tracks) and the prior's prediction of log f for every variant.

The per-base tracks (``features/window``, the largest input) are read in row ranges
(:func:`track_rows`) wherever a caller cannot hold them whole."""

from __future__ import annotations

import numpy as np


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

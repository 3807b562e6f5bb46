"""What the plots read: a model's predicted log f over a dataset's variants, through the
stores (:mod:`varfx.store.model`, :mod:`varfx.store.variants`), as `varfx score` and
`varfx evaluate` read them."""

from __future__ import annotations

import sys

import numpy as np

from ..errors import UserError


def dataset_variants(h5) -> dict:
    """``snp, chrom, bp, z, n`` arrays of an open dataset, and its ``N``."""
    var = h5["variants"]
    return {"snp": var["snp"].asstr()[:], "chrom": var["chrom"][:].astype(np.int64),
            "bp": var["bp"][:].astype(np.int64), "z": var["z"][:].astype(np.float64),
            "n": var["n"][:].astype(np.float64), "N": float(h5.attrs["N"])}


def predicted_log_f(model_dir, dataset, fasta=None):
    """``(meta, log_f, variants)``: the model's log f for every variant of the dataset
    (a likelihood-trained model; a fine-mapping model's logit is no variance, a one-line
    error) and :func:`dataset_variants`.  A non-finite log f is an error naming the
    first such variant (it would be drawn as nothing, silently)."""
    from ..store.dataset import open_dataset
    from ..store.model import load_model, model_output
    from ..store.variants import model_batch, predict_log_f

    meta, module = load_model(model_dir)
    if model_output(meta) != "log_f":
        raise UserError(f"objective {meta['objective']['name']!r} trains a fine-mapping model (its output is a "
                        "logit, not a prior variance f); this plot needs a likelihood-trained model", path=model_dir)
    notes: list[str] = []
    with open_dataset(dataset) as h5:
        log_f = predict_log_f(module, h5, batch=model_batch(meta, h5, fasta, notes=notes))
        variants = dataset_variants(h5)
    for message in notes:
        print(f"Note: {message}", file=sys.stderr)
    bad = ~np.isfinite(log_f)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise UserError(f"the model gives a non-finite log f for {int(bad.sum())} variants of the dataset (first: "
                        f"{variants['snp'][i]}, chr{variants['chrom'][i]}:{variants['bp'][i]})", path=model_dir)
    return meta, log_f, variants


def chosen_chroms(chroms, meta, available, where) -> list[int]:
    """The chromosomes a plot covers: ``chroms`` None means the model's held-out
    chromosomes where it has some on the dataset (what `varfx evaluate` scores by
    default), else every chromosome; ``"all"`` every one; else a list, each of which
    the dataset must have."""
    available = sorted(int(c) for c in available)
    if chroms == "all" or (chroms is None and meta is None):
        return available
    if chroms is None:
        held = [int(c) for c in (meta.get("holdout_chroms") or []) if int(c) in available]
        return held or available
    missing = [int(c) for c in chroms if int(c) not in available]
    if missing:
        raise UserError(f"option --chroms: chromosome {missing[0]} is not in the dataset (it has "
                        f"{', '.join(map(str, available))})", path=where)
    return sorted(int(c) for c in chroms)

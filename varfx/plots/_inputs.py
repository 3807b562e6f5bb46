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


def holdout_of(meta, where) -> tuple[list[int], list]:
    """``(chromosomes, regions)`` a model held out of training (``fit --holdout-chroms``,
    ``--holdout-region``; regions as :class:`varfx.genome.GenomeRegion`)."""
    from ..genome import parse_region

    if meta is None:
        return [], []
    texts = meta.get("holdout_regions") or []
    try:
        chroms = sorted(int(c) for c in meta.get("holdout_chroms") or [])
        if not isinstance(texts, list):
            raise TypeError(texts)
    except (TypeError, ValueError):
        raise UserError(f"holdout_chroms / holdout_regions are {meta.get('holdout_chroms')!r} / {texts!r}: expected "
                        "a list of chromosome numbers and a list of regions; give --chroms", path=where) from None
    return chroms, [parse_region(t, "holdout_regions") for t in texts]


def held_out_mask(meta, chrom, pos, where) -> np.ndarray:
    """Which of the points ``(chrom, pos)`` a model held out: on a held-out chromosome or
    inside a held-out region (for variants their position; ``fit`` holds a window out
    when the start of its core is in a region)."""
    chrom = np.asarray(chrom, dtype=np.int64)
    pos = np.asarray(pos, dtype=np.int64)
    held, regions = holdout_of(meta, where)
    mask = np.isin(chrom, held)
    for r in regions:
        mask |= r.contains(chrom, pos)
    return mask


def chosen_variants(chroms, meta, chrom, pos, where) -> tuple[np.ndarray, list[int], list[str]]:
    """``(mask, chromosomes, regions)``: the points ``(chrom, pos)`` a plot covers.

    ``chroms`` None: the model's held-out ones (its held-out chromosomes and the
    variants inside its held-out regions, what `varfx evaluate` scores by default) where
    it holds some out on the dataset, else every one; ``"all"`` every one; else a list of
    chromosomes, each of which the dataset must have.  ``regions``: the region texts the
    default applied (empty otherwise)."""
    chrom = np.asarray(chrom, dtype=np.int64)
    if chroms is None and meta is not None:
        mask = held_out_mask(meta, chrom, pos, where)
        if mask.any():
            _, regions = holdout_of(meta, where)
            return mask, sorted(int(c) for c in np.unique(chrom[mask])), [r.text for r in regions]
        chroms = "all"
    chosen = chosen_chroms(chroms, meta, np.unique(chrom), where)
    return np.isin(chrom, chosen), chosen, []


def chosen_chroms(chroms, meta, available, where) -> list[int]:
    """The chromosomes a plot covers: ``chroms`` None means the model's held-out
    chromosomes where it has some on the dataset, else every chromosome (a model's
    held-out *regions* are variants, not chromosomes: :func:`chosen_variants` applies
    them); ``"all"`` every one; else a list, each of which the dataset must have."""
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

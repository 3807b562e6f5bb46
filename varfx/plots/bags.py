"""A fine-mapping model along its held-out bags: each member's probability of being
causal (``varfx score``'s ``P_CAUSAL``) against position, the true causal variant marked,
over the association signal that made the bag."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

from ..errors import UserError
from . import _draw
from ._inputs import chosen_chroms
from .region import neg_log10_p

#: bags drawn unless told otherwise (one panel each)
N_BAGS = 4


def _zero_or_one(text):
    text = text.strip()
    if text not in ("0", "1"):
        raise ValueError(text)
    return int(text)


def bag_tracks(model_dir, dataset, truth, chroms=None, n_bags=N_BAGS, fasta=None) -> dict:
    """What a bag plot draws: ``bags``, a list (at most ``n_bags``, in genome order) of
    the positive bags on ``chroms`` that hold a causal variant of the truth file, each a
    dict of ``name``, ``chrom``, ``bp``, ``snp``, ``p_causal`` (the sigmoid of the
    model's logit), ``neg_log10_p`` (two-sided, from the dataset's z), ``causal`` (bool
    per member), ``rank`` (1 + the members scoring above the best-scored causal one) and
    ``n``; ``chroms`` (None: the bags of the model's held-out chromosomes, else all, as
    :func:`~varfx.plots._inputs.chosen_chroms`) and ``n_candidates`` (bags there with a
    causal member).  ``truth``: a TSV with columns ``SNP`` and ``causal`` (0/1), the
    truth.tsv of ``varfx simulate --truth motif``."""
    from ..store.bags import load_bags
    from ..store.dataset import open_dataset
    from ..store.model import load_model, model_output
    from ..store.truth import read_truth_column
    from ..store.variants import model_batch, predict_log_f

    if not (isinstance(n_bags, int) and n_bags >= 1):
        raise UserError(f"option --bags: expected a whole number >= 1, got {n_bags!r}")
    meta, module = load_model(model_dir)
    if model_output(meta) != "logit":
        raise UserError(f"objective {meta['objective']['name']!r} trains a likelihood model (its output is a prior "
                        "variance, not a logit); this plot needs a fine-mapping model (--objective mil or distil)",
                        path=model_dir)
    bags = load_bags(dataset)
    available = sorted({int(b.chrom) for b in bags.positives})
    if not available:
        raise UserError("the bag store has no positive bag", path=dataset)
    chosen = chosen_chroms(chroms, meta, available, dataset)
    notes: list[str] = []
    with open_dataset(dataset) as h5:
        logit = predict_log_f(module, h5, batch=model_batch(meta, h5, fasta, notes=notes))
        var = h5["variants"]
        snp, bp = var["snp"].asstr()[:], var["bp"][:].astype(np.int64)
        z = var["z"][:].astype(np.float64)
    for message in notes:
        print(f"Note: {message}", file=sys.stderr)
    causal = read_truth_column(truth, snp, "causal", _zero_or_one, "0 or 1", -1, np.int8)
    picked = [b for b in bags.select(chroms=chosen).positives if (causal[np.asarray(b.variants)] == 1).any()]
    if not picked:
        raise UserError(f"no bag on chromosome(s) {', '.join(map(str, chosen))} holds a causal variant of the "
                        "truth file", path=truth)
    picked.sort(key=lambda b: (b.chrom, b.start, b.index))
    out = []
    for b in picked[:n_bags]:
        idx = np.sort(np.asarray(b.variants, dtype=np.int64))
        lg = logit[idx]
        if not np.isfinite(lg).all():
            raise UserError(f"the model gives a non-finite logit in bag {b.name}", path=model_dir)
        is_c = causal[idx] == 1
        best = float(lg[is_c].max())
        out.append({"name": b.name, "chrom": int(b.chrom), "bp": bp[idx], "snp": snp[idx],
                    "p_causal": 1.0 / (1.0 + np.exp(-lg)), "neg_log10_p": neg_log10_p(z[idx]), "causal": is_c,
                    "rank": int(1 + (lg[~is_c] > best).sum()), "n": int(len(idx))})
    return {"bags": out, "chroms": chosen, "n_candidates": len(picked)}


def plot_bags(model_dir, dataset, truth, out_dir, chroms=None, n_bags=N_BAGS, fasta=None,
              name: str = "bags.png") -> _draw.Plot:
    """Write ``out_dir/bags.png``: one panel per bag (:func:`bag_tracks`), ``P_CAUSAL`` of
    its members against position with the causal variant starred, ``-log10 p`` in grey
    on the right axis.  ``data``: :func:`bag_tracks`'s dict."""
    d = bag_tracks(model_dir, dataset, truth, chroms=chroms, n_bags=n_bags, fasta=fasta)
    path = _draw.out_path(out_dir, name)
    n = len(d["bags"])
    cols = 2 if n > 1 else 1
    rows = math.ceil(n / cols)
    fig = _draw.figure(5.2 * cols, 1.0 + 3.0 * rows)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, b in zip(axes, d["bags"]):
        x = b["bp"] / 1e3
        right = ax.twinx()
        right.plot(x, b["neg_log10_p"], "o", ms=4, mfc="none", color="0.6", label="-log10 p")
        right.set_ylabel("-log10 p", color="0.45", fontsize=8)
        ax.set_zorder(right.get_zorder() + 1)  # the model's points above the grey signal
        ax.patch.set_visible(False)
        ax.vlines(x, 0, b["p_causal"], color="C0", lw=1)
        ax.plot(x, b["p_causal"], "o", ms=4, color="C0", label="P_CAUSAL")
        c = b["causal"]
        ax.plot(x[c], b["p_causal"][c], "*", ms=14, color="C3", mec="k", mew=0.5, label="true causal")
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("P_CAUSAL")
        ax.set_xlabel(f"chromosome {b['chrom']} position (kb)")
        ax.set_title(f"bag {b['name']}: {b['n']} variants, causal ranked {b['rank']} of {b['n']}", fontsize=9)
        ax.grid(alpha=0.3)
    for ax in axes[n:]:
        ax.set_visible(False)
    axes[0].legend(fontsize=7, loc="upper left")
    fig.suptitle(f"{Path(model_dir).name}: bags on chr "
                 f"{','.join(map(str, d['chroms']))} ({n} of {d['n_candidates']} with a causal variant)", fontsize=10)
    fig.tight_layout()
    return _draw.Plot(_draw.save(fig, path), d)

"""``varfx score``: the fitted prior's output for every variant of a dataset.

What the prior's output means depends on the objective it was trained with
(``Objective.prior_output``): ``"log_f"`` (``full``, ``ldsr``: the log prior variance)
gives ``SNP CHR BP F``; ``"logit"`` (``mil``, ``distil``: a multiple-instance model's
instance logit) gives ``SNP CHR BP P_CAUSAL LOGIT`` with ``P_CAUSAL = sigmoid(LOGIT)``.
A prior that reads DNA (``seqcnn``) reads it from the dataset's FASTA or ``--fasta``.
"""

from __future__ import annotations

import sys

import numpy as np

from ..errors import UserError
from ..store import atomic_path
from ..store.dataset import open_dataset
from ..store.model import load_model, model_output
from ..store.variants import model_batch, predict_log_f


def sigmoid(x):
    """``1 / (1 + exp(-x))`` without overflow (finite for any finite x, 0 or 1 at +-inf)."""
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def run_score(model_dir, dataset, out, fasta=None) -> int:
    """Write ``SNP CHR BP F`` or ``SNP CHR BP P_CAUSAL LOGIT`` (tab-separated) for every
    variant; returns the row count.

    A variant whose F is not a finite positive number (an overflowing prior), or whose
    logit is NaN, is an error naming it, and nothing is written: a NaN in a score file
    would pass silently into whatever reads it."""
    meta, module = load_model(model_dir)
    kind = model_output(meta)
    notes: list[str] = []
    with open_dataset(dataset) as h5:
        var = h5["variants"]
        snp = var["snp"].asstr()[:]
        chrom = var["chrom"][:]
        bp = var["bp"][:]
        batch = model_batch(meta, h5, fasta, notes=notes)
        out_values = predict_log_f(module, h5, batch=batch)
    for message in notes:
        print(f"Note: {message}", file=sys.stderr)
    if kind == "logit":
        bad = np.isnan(out_values)
        what = "logit"
        values = out_values
    else:
        with np.errstate(over="ignore"):
            values = np.exp(out_values)
        bad = ~(np.isfinite(values) & (values >= 0))
        what = "F"
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise UserError(f"the model gives {what} = {values[i]} for variant {snp[i]} (chr{chrom[i]}:{bp[i]}) and "
                        f"{int(bad.sum()) - 1} more: not a finite {'number' if what == 'logit' else 'variance'}; "
                        "nothing written", path=model_dir)
    with atomic_path(out) as tmp:
        with open(tmp, "w") as fh:
            if kind == "logit":
                p = sigmoid(values)
                fh.write("SNP\tCHR\tBP\tP_CAUSAL\tLOGIT\n")
                for row in zip(snp, chrom, bp, p, values):
                    fh.write(f"{row[0]}\t{row[1]}\t{row[2]}\t{row[3]:.6e}\t{row[4]:.9g}\n")
            else:
                fh.write("SNP\tCHR\tBP\tF\n")
                for row in zip(snp, chrom, bp, values):
                    fh.write(f"{row[0]}\t{row[1]}\t{row[2]}\t{row[3]:.6e}\n")
    return len(snp)

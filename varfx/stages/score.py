"""``varfx score``: the fitted prior variance F of every variant of a dataset."""

from __future__ import annotations

import numpy as np

from ..errors import UserError
from ..store import atomic_path
from ..store.dataset import open_dataset
from ..store.model import load_model
from ..store.variants import predict_log_f


def run_score(model_dir, dataset, out) -> int:
    """Write ``SNP CHR BP F`` (tab-separated) for every variant; returns the row count.

    A variant whose F is not a finite positive number (an overflowing prior) is an
    error naming it, and nothing is written: a NaN in a score file would pass silently
    into whatever reads it."""
    _, module = load_model(model_dir)
    with open_dataset(dataset) as h5:
        var = h5["variants"]
        snp = var["snp"].asstr()[:]
        chrom = var["chrom"][:]
        bp = var["bp"][:]
        with np.errstate(over="ignore"):
            f = np.exp(predict_log_f(module, h5))
    bad = ~(np.isfinite(f) & (f >= 0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise UserError(f"the model gives F = {f[i]} for variant {snp[i]} (chr{chrom[i]}:{bp[i]}) and "
                        f"{int(bad.sum()) - 1} more: not a finite variance; nothing written", path=model_dir)
    with atomic_path(out) as tmp:
        with open(tmp, "w") as fh:
            fh.write("SNP\tCHR\tBP\tF\n")
            for row in zip(snp, chrom, bp, f):
                fh.write(f"{row[0]}\t{row[1]}\t{row[2]}\t{row[3]:.6e}\n")
    return len(snp)

"""``varfx score``: the fitted prior variance F of every variant of a dataset."""

from __future__ import annotations

import numpy as np

from ..store import atomic_path
from .model import load_model, predict_log_f
from .precompute import open_dataset


def run_score(model_dir, dataset, out) -> int:
    """Write ``SNP CHR BP F`` (tab-separated) for every variant; returns the row count."""
    _, module = load_model(model_dir)
    with open_dataset(dataset) as h5:
        var = h5["variants"]
        snp = var["snp"].asstr()[:]
        chrom = var["chrom"][:]
        bp = var["bp"][:]
        f = np.exp(predict_log_f(module, h5))
    with atomic_path(out) as tmp:
        with open(tmp, "w") as fh:
            fh.write("SNP\tCHR\tBP\tF\n")
            for row in zip(snp, chrom, bp, f):
                fh.write(f"{row[0]}\t{row[1]}\t{row[2]}\t{row[3]:.6e}\n")
    return len(snp)

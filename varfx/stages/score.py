"""``varfx score``: the fitted prior's output for every variant of a dataset.

What the prior's output means depends on the objective it was trained with
(``Objective.prior_output``): ``"log_f"`` (``full``, ``ldsr``: the log prior variance)
gives ``SNP CHR BP F``; ``"logit"`` (``mil``, ``distil``: a multiple-instance model's
instance logit) gives ``SNP CHR BP P_CAUSAL LOGIT`` with ``P_CAUSAL = sigmoid(LOGIT)``.
A prior that reads DNA (``seqcnn``) reads it from the dataset's FASTA or ``--fasta``.

``posterior=True`` (``--posterior``, log_f models only) adds ``BETA_POSTERIOR`` and
``BETA_POSTERIOR_SD``: the posterior mean and sd of each variant's standardised effect
given the dataset's summary statistics under the fitted prior and the full likelihood
(:mod:`varfx.linalg.posterior`, docs/pgs.md).  ``pgs_file`` also writes them per allele
as a PGS Catalog scoring file and a PRS-CS-style table beside it.
"""

from __future__ import annotations

import contextlib
import gzip
import math
import sys
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import UserError
from ..store import atomic_path
from ..store.dataset import open_dataset
from ..store.model import load_model, model_output
from ..store.variants import model_batch, predict_log_f

#: The PGS Catalog's names of the genome builds a dataset may record (ingest's --build
#: takes UCSC names).  pgsc_calc refuses any other value than these and NR (not
#: reported), so another build is written as NR, and the dataset's own name in
#: ``#varfx_genome_build``.
GENOME_BUILDS = {"hg19": "GRCh37", "grch37": "GRCh37", "hg38": "GRCh38", "grch38": "GRCh38",
                 "hg18": "NCBI36", "ncbi36": "NCBI36"}
#: Columns of the PGS Catalog scoring file (format 2.0), in order.
PGS_COLUMNS = ("rsID", "chr_name", "chr_position", "effect_allele", "other_allele", "effect_weight")
PRSCS_SUFFIX = ".prscs.tsv"


def sigmoid(x):
    """``1 / (1 + exp(-x))`` without overflow (finite for any finite x, 0 or 1 at +-inf)."""
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def prscs_path(pgs_file) -> Path:
    """``OUT.prscs.tsv`` beside a PGS file ``OUT`` (a ``.gz`` suffix of OUT dropped first)."""
    p = Path(pgs_file)
    name = p.name[:-3] if p.name.endswith(".gz") else p.name
    return p.with_name(name + PRSCS_SUFFIX)


def per_allele_weights(beta_std, freq):
    """``beta_std / sqrt(2 p (1 - p))`` per copy of the allele of frequency ``p``, and a
    mask of the variants that have a usable frequency (0 < p < 1, finite).

    Why: a standardised genotype is ``x = (d - 2p) / sqrt(2 p (1-p))`` (d: dosage of
    the allele), so ``x . beta_std = d . w - sum 2 p w`` with ``w`` these weights: a
    sum of dosage times weight, what plink --score computes, up to a constant."""
    beta_std = np.asarray(beta_std, dtype=np.float64)
    p = np.asarray(freq, dtype=np.float64)
    ok = np.isfinite(p) & (p > 0) & (p < 1)
    w = np.zeros_like(beta_std)
    w[ok] = beta_std[ok] / np.sqrt(2.0 * p[ok] * (1.0 - p[ok]))
    return w, ok


def compute_posterior(meta, dataset, f, model_dir) -> dict:
    """Posterior mean and sd of every dataset variant (standardised units) and the
    counts of variants without data, reading the window store one window at a time."""
    from ..linalg.posterior import posterior_effects
    from ..store.windows import WindowBatches, load_windows

    try:
        sigma = float(meta["sigma2"])
    except (KeyError, TypeError, ValueError):
        sigma = float("nan")
    if not (math.isfinite(sigma) and sigma > 0):
        raise UserError(f"model.json has sigma2 = {meta.get('sigma2')!r}: expected the positive noise variance "
                        "of the fit; re-run `varfx fit`", path=Path(model_dir) / "model.json")
    _, wattrs = load_windows(dataset, chroms=[], dtype="float64", meta_only=True)  # checks the link
    N = float(wattrs["N"])
    M = f.shape[0]
    # one window's factors in memory at a time (a genome's G would not fit)
    store = WindowBatches(dataset, [[i] for i in range(len(wattrs["index"]["chrom"]))], dtype="float64")

    def windows():
        for i in range(len(store)):
            yield from store[i][0]

    try:
        out = posterior_effects(windows(), f, sigma / N, M, variance=True)
    except ValueError as exc:  # a window store that breaks the stores' own invariants
        raise UserError(f"windows.h5: {exc}; rebuild it with `varfx precompute-ld {dataset}`",
                        path=dataset) from None
    mean, sd, covered, in_core = out["mean"], np.sqrt(out["var"]), out["covered"], out["in_core"]
    n_windows = out["n_windows"]
    bad = ~(np.isfinite(mean) & np.isfinite(sd))
    if bad.any():
        raise UserError(f"non-finite posterior effect for {int(bad.sum())} variants (first: variant "
                        f"{int(np.flatnonzero(bad)[0])}); nothing written", path=model_dir)
    return {"mean": mean, "sd": sd, "covered": covered, "n_not_in_windows": int((~in_core).sum()),
            "n_no_data": int((in_core & ~covered).sum()), "n_windows": n_windows, "N": N,
            "sigma2": sigma}


def _write_pgs_files(tmp_pgs, tmp_prscs, rows, header: dict, gz: bool) -> None:
    """The PGS Catalog scoring file and the PRS-CS table (rows: snp, chrom, bp, a1, a2, w)."""
    opener = (lambda p: gzip.open(p, "wt", compresslevel=6)) if gz else (lambda p: open(p, "w"))
    with opener(tmp_pgs) as fh:
        fh.write("###PGS CATALOG SCORING FILE - see https://www.pgscatalog.org/downloads/#dl_ftp_scoring "
                 "for additional information\n")
        fh.write("#format_version=2.0\n##POLYGENIC SCORE (PGS) INFORMATION\n")
        for key, value in header.items():
            if key == "varfx_model":
                fh.write("##SOURCE INFORMATION\n")
            fh.write(f"#{key}={value}\n")
        fh.write("\t".join(PGS_COLUMNS) + "\n")
        for snp, chrom, bp, a1, a2, w in rows:
            fh.write(f"{snp}\t{chrom}\t{bp}\t{a1}\t{a2}\t{w:.6e}\n")
    with open(tmp_prscs, "w") as fh:  # PRS-CS's output: CHR SNP BP A1 A2 BETA, no header
        for snp, chrom, bp, a1, a2, w in rows:
            fh.write(f"{chrom}\t{snp}\t{bp}\t{a1}\t{a2}\t{w:.6e}\n")


def run_score(model_dir, dataset, out, fasta=None, *, posterior=False, pgs_file=None, pgs_name=None,
              trait=None) -> int:
    """Write ``SNP CHR BP F`` or ``SNP CHR BP P_CAUSAL LOGIT`` (tab-separated) for every
    variant; returns the row count.

    A variant whose F is not a finite positive number (an overflowing prior), or whose
    logit is NaN, is an error naming it, and nothing is written: a NaN in a score file
    would pass silently into whatever reads it.

    ``posterior`` (implied by ``pgs_file``) adds ``BETA_POSTERIOR BETA_POSTERIOR_SD``;
    a variant no window gives data about (in no window's core, or in a window whose
    LD block kept no eigen-direction) gets the prior, 0 and sqrt(F), and is counted in
    a note on stderr.  ``pgs_file``: the PGS Catalog scoring file (gzipped when it ends
    in ``.gz``) and ``<pgs_file>.prscs.tsv``, per-allele weights of the variants with
    data and a known allele frequency (docs/pgs.md); all files are written together or
    not at all."""
    posterior = posterior or pgs_file is not None
    for option, text in (("--pgs-name", pgs_name), ("--trait", trait)):
        if text is not None and (not str(text).strip() or any(c in str(text) for c in "\t\r\n")):
            raise UserError(f"option {option}: {text!r}; expected a non-empty name on one line without tabs "
                            "(it becomes a header line of the scoring file)")
    if pgs_file is not None:
        paths = {Path(out).resolve(), Path(pgs_file).resolve(), prscs_path(pgs_file).resolve()}
        if len(paths) < 3:
            raise UserError(f"option --pgs-file {pgs_file}: the scoring file, {prscs_path(pgs_file)} and -o {out} "
                            "must be three different files")
    meta, module = load_model(model_dir)
    kind = model_output(meta)
    if posterior and kind == "logit":
        obj = (meta.get("objective") or {}).get("name", "?")
        raise UserError(f"option {'--pgs-file' if pgs_file is not None else '--posterior'}: this is a fine-mapping "
                        f"model (objective {obj!r}) whose output is an instance logit, not a prior variance of "
                        "effect sizes, so it defines no posterior effect; use a model fitted with a likelihood "
                        "objective (full, ldsr)", path=model_dir)
    notes: list[str] = []
    with open_dataset(dataset) as h5:
        var = h5["variants"]
        snp = var["snp"].asstr()[:]
        chrom = var["chrom"][:]
        bp = var["bp"][:]
        if pgs_file is not None:
            a1 = var["a1"].asstr()[:]
            a2 = var["a2"].asstr()[:]
            freq = var["freq"][:].astype(np.float64)
            build = str(h5.attrs.get("build", "NR"))
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
    post = compute_posterior(meta, dataset, values, model_dir) if posterior else None
    if post is not None:
        no_data = post["n_not_in_windows"] + post["n_no_data"]
        if no_data:
            print(f"Note: {no_data} variants get the prior (BETA_POSTERIOR 0): {post['n_not_in_windows']} in no "
                  f"window's core, {post['n_no_data']} in windows whose LD block kept no eigen-direction"
                  + ("; they are left out of the scoring files" if pgs_file is not None else ""), file=sys.stderr)
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(atomic_path(out))
        if pgs_file is not None:
            weights, has_freq = per_allele_weights(post["mean"], freq)
            keep = post["covered"] & has_freq
            if not keep.any():
                raise UserError(f"option --pgs-file: no variant has both data and an allele frequency in (0, 1) "
                                f"({int((~has_freq).sum())} of {len(snp)} lack a frequency): per-allele weights "
                                "need the frequency of a1 (ingest with a genotype panel, or summary statistics "
                                "with a frequency column)", path=dataset)
            n_no_freq = int((post["covered"] & ~has_freq).sum())
            if n_no_freq:
                print(f"Note: {n_no_freq} variants with data have no allele frequency in (0, 1) and are left out "
                      "of the scoring files (their per-allele weight is unknown)", file=sys.stderr)
            name = pgs_name or Path(model_dir).resolve().name
            header = {
                # pgsc_calc requires an identifier (it names the score's output column)
                "pgs_id": name,
                "pgs_name": name,
                "trait_reported": trait or Path(model_dir).resolve().name,
                "genome_build": GENOME_BUILDS.get(build.lower(), "NR"),
                "weight_type": "beta",
                "variants_number": int(keep.sum()),
                "varfx_model": f"{Path(model_dir).resolve()} (prior {meta['prior']['name']}, objective "
                               f"{(meta.get('objective') or {}).get('name', 'full')})",
                "varfx_dataset": str(Path(dataset).resolve()),
                "varfx_version": __version__,
                "varfx_genome_build": build,
                "varfx_weight": "per copy of effect_allele: posterior mean of the standardised effect / "
                                "sqrt(2 p (1 - p)), p the dataset's frequency of effect_allele",
                "varfx_excluded_no_data": post["n_not_in_windows"] + post["n_no_data"],
                "varfx_excluded_no_frequency": n_no_freq,
            }
            from ..genome import chrom_label

            # chromosome names as the Catalog writes them (X, not PLINK's 23)
            rows = [(snp[i], chrom_label(chrom[i]), bp[i], a1[i], a2[i], weights[i]) for i in np.flatnonzero(keep)]
            gz = str(pgs_file).endswith(".gz")
            tmp_pgs = stack.enter_context(atomic_path(pgs_file))
            tmp_prscs = stack.enter_context(atomic_path(prscs_path(pgs_file)))
            _write_pgs_files(tmp_pgs, tmp_prscs, rows, header, gz)
        with open(tmp, "w") as fh:
            if kind == "logit":
                p = sigmoid(values)
                fh.write("SNP\tCHR\tBP\tP_CAUSAL\tLOGIT\n")
                for row in zip(snp, chrom, bp, p, values):
                    fh.write(f"{row[0]}\t{row[1]}\t{row[2]}\t{row[3]:.6e}\t{row[4]:.9g}\n")
            elif post is not None:
                fh.write("SNP\tCHR\tBP\tF\tBETA_POSTERIOR\tBETA_POSTERIOR_SD\n")
                for row in zip(snp, chrom, bp, values, post["mean"], post["sd"]):
                    fh.write(f"{row[0]}\t{row[1]}\t{row[2]}\t{row[3]:.6e}\t{row[4]:.6e}\t{row[5]:.6e}\n")
            else:
                fh.write("SNP\tCHR\tBP\tF\n")
                for row in zip(snp, chrom, bp, values):
                    fh.write(f"{row[0]}\t{row[1]}\t{row[2]}\t{row[3]:.6e}\n")
    return len(snp)

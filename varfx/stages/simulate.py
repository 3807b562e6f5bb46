"""``varfx simulate``: summary statistics with a known prior, from a genotype panel.

The truth (paper Sec. 6.1, App. A.5)::

    log f_m = log c + alpha log(p_m (1 - p_m)) + g(x_m),     sum_m f_m = h2
    beta_m ~ N(0, f_m)  (standardised genotypes),
    z = sqrt(N) beta_hat ~ N(sqrt(N) R beta, sigma2 R)

``g`` is 0 (``constant``), linear in the variant's normalised scalar features
(``glm``), a random two-layer network of them (``network``) or a step at a quantile of
one feature (``threshold``); every non-constant ``g`` is scaled to a standard deviation
of ``log_sd`` across the variants.  ``c`` makes the f sum to ``h2``.

Which variants and which features: the panel's variants are run through
:func:`varfx.stages.ingest.run_ingest` (with placeholder summary statistics of every
panel variant), so the simulated variants, their frequencies and their normalised
features are exactly those an ingest of the simulated summary statistics with the same
annotations and default filters produces; strand-ambiguous (A/T, C/G) and monomorphic
variants are left out as ingest leaves them out.  The GLM truth's coefficients are
therefore directly comparable with a fitted ``glm`` prior's.

LD: ``R`` is block diagonal, one block per ``block_kb`` bin of each chromosome (the bins
of ``precompute-ld --window-kb``), and within a block it is the panel's correlation
``X^T X / n`` (``X`` the standardised dosages, variants x people).  With ``u ~ N(0, I_n)``
per block, ``z_B = X_B (sqrt(N) X_B^T beta_B / n + sqrt(sigma2 / n) u)`` has exactly
mean ``sqrt(N) R_BB beta_B`` and covariance ``sigma2 R_BB`` without forming ``R``.  The
panel's spurious correlations between distant variants (of order ``1/sqrt(n)``) are not
simulated: a real population's LD decays with distance, and in a small panel these
terms would otherwise dominate ``z``.

A UKBB/PolyFun LD reference has no genotypes and no allele frequencies, so it cannot be
sampled this way; simulate needs a PLINK or VCF panel.

``ld_region`` (``--ld-region 22:16000000-17000000``) simulates the panel's variants in
that region only, for both panel kinds: an indexed VCF/BCF is read only there, a PLINK
panel is read whole and cut to it (the same region then restricts the ingest).  A region
that does not parse, or that holds no variant of the panel, is a one-line error.
"""

from __future__ import annotations

import gzip
import json
import math
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import UserError
from ..store import atomic_dir, atomic_path

TRUTHS = ("constant", "glm", "network", "threshold")
SIMULATION_JSON = "simulation.json"
SUMSTATS_FILE = "sumstats.fastGWA.gz"
TRUTH_FILE = "truth.tsv"
NETWORK_HIDDEN = 32


def _reference_variants(ld, kind: str, region=None) -> dict:
    """The panel's variants (snp, chrom, bp, a1, a2) and a1 frequencies, only those in
    ``region`` (a :class:`varfx.genome.GenomeRegion`) when one is given."""
    if kind == "plink":
        from ..io.plink import load_plink

        panel = load_plink(ld)
    else:
        from ..io.vcf_panel import load_vcf_panel

        # an indexed VCF/BCF is read only in the region (load_vcf_panel says when the
        # index is missing, or the region has no record)
        panel = load_vcf_panel(ld, region=None if region is None else region.text)
    freq, _ = panel.summary_stats()
    ref = {**{k: np.asarray(panel.bim[k]) for k in ("snp", "chrom", "bp", "a1", "a2")}, "freq": freq}
    if region is not None:
        # A PLINK panel has no index: it is read whole and cut here, so that the
        # placeholder sumstats (and "panel_variants") hold the region's variants only,
        # as for a VCF panel.  The ingest that follows applies the same region again.
        inside = region.contains(ref["chrom"], ref["bp"])
        if not inside.any():
            raise UserError(f"option --ld-region {region.text}: no variant of the panel lies in this region "
                            f"(expected a region of the panel's chromosomes and positions)", path=ld)
        ref = {k: v[inside] for k, v in ref.items()}
    return ref


def write_fastgwa(path, variants: dict, z: np.ndarray, n: float) -> None:
    """fastGWA columns (CHR SNP POS A1 A2 N AF1 BETA SE P), gzipped, written atomically.

    BETA is on the standardised-genotype scale: ``BETA = Z / sqrt(N)``, ``SE = 1 / sqrt(N)``,
    so ``BETA / SE`` gives back Z (to the 8 significant digits written)."""
    from scipy.special import ndtr

    se = 1.0 / math.sqrt(n)
    p = 2.0 * ndtr(-np.abs(z))
    freq = np.asarray(variants["freq"], dtype=np.float64)
    with atomic_path(path) as tmp:
        with gzip.open(tmp, "wt", compresslevel=1) as fh:
            fh.write("CHR\tSNP\tPOS\tA1\tA2\tN\tAF1\tBETA\tSE\tP\n")
            for row in zip(variants["chrom"], variants["snp"], variants["bp"], variants["a1"], variants["a2"],
                           freq, z, p):
                c, s, b, a1, a2, af, zz, pp = row
                af_txt = "NA" if not np.isfinite(af) else f"{af:.6g}"
                fh.write(f"{c}\t{s}\t{b}\t{a1}\t{a2}\t{n:.10g}\t{af_txt}\t{zz * se:.8g}\t{se:.8g}\t{pp:.4g}\n")


def _standardise(h: np.ndarray, log_sd: float) -> tuple[np.ndarray, float]:
    """``log_sd * (h - mean) / sd`` and the factor applied (0 for a constant ``h``)."""
    sd = float(h.std())
    if sd == 0.0 or log_sd == 0.0:
        return np.zeros_like(h), 0.0
    return log_sd * (h - h.mean()) / sd, log_sd / sd


def truth_log_g(truth: str, x: np.ndarray | None, names: list[str], rng, log_sd: float, *,
                threshold_feature=None, threshold_quantile=0.9) -> tuple[np.ndarray, dict]:
    """``g(x_m)`` of every variant (centred, sd ``log_sd``) and what defines it, for the
    ``glm``, ``network`` and ``threshold`` truths.

    ``x``: the normalised scalar features (M x S) or None; ``names``: their names."""
    if x is None or x.shape[1] == 0:
        raise UserError(f"option --truth {truth}: needs features (give --annotations or --fasta)")
    M, S = x.shape
    if truth == "glm":
        w = rng.standard_normal(S)
        h, scale = _standardise(x @ w, log_sd)
        w = w * scale
        return h, {"coefficients": dict(zip(names, w.tolist()))}
    if truth == "network":
        H = NETWORK_HIDDEN
        w1 = rng.standard_normal((S, H)) * math.sqrt(2.0 / S)
        b1 = rng.standard_normal(H) * 0.5
        w2 = rng.standard_normal((H, H)) * math.sqrt(2.0 / H)
        b2 = rng.standard_normal(H) * 0.5
        w3 = rng.standard_normal(H)
        h = np.tanh(np.tanh(x @ w1 + b1) @ w2 + b2) @ w3
        h, scale = _standardise(h, log_sd)
        return h, {"network": {"inputs": names, "hidden": H, "activation": "tanh", "output_scale": scale,
                               "w1": w1.tolist(), "b1": b1.tolist(), "w2": w2.tolist(), "b2": b2.tolist(),
                               "w3": w3.tolist()}}
    # threshold: a step up where one feature exceeds its quantile
    if threshold_feature is None:
        varying = [j for j in range(S) if x[:, j].std() > 0]
        if not varying:
            raise UserError("option --truth threshold: every feature is constant")
        j = varying[0]
    elif threshold_feature in names:
        j = names.index(threshold_feature)
    else:
        raise UserError(f"option --threshold-feature: no feature {threshold_feature!r} "
                        f"(the features are: {', '.join(names)})")
    t = float(np.quantile(x[:, j], threshold_quantile))
    step = (x[:, j] > t).astype(np.float64)
    if step.all() or not step.any():
        raise UserError(f"option --threshold-quantile {threshold_quantile}: feature {names[j]!r} takes too few "
                        "values for a step there; choose another quantile or feature")
    h, scale = _standardise(step, log_sd)
    return h, {"threshold": {"feature": names[j], "quantile": float(threshold_quantile), "value": t,
                             "fraction_above": float(step.mean()), "log_enrichment": scale}}


def sample_z(ld, chrom, bp, beta, *, n_gwas: float, sigma2: float, block_bp: int, rng, progress=None) -> np.ndarray:
    """z with mean ``sqrt(N) R beta`` and covariance ``sigma2 R``, ``R`` block diagonal
    (``block_bp`` bins), from the standardised dosages of ``ld`` (a :class:`PlinkLD`)."""
    from ..store.windows import plan_windows

    z = np.zeros(len(beta))
    n = ld.n_people
    blocks = plan_windows(np.asarray(chrom), np.asarray(bp), int(block_bp), 0)
    for i, spec in enumerate(blocks):
        idx = spec.core_idx
        x = ld.standardized(idx)  # len(idx) x n
        v = math.sqrt(n_gwas) / n * (x.T @ beta[idx]) + math.sqrt(sigma2 / n) * rng.standard_normal(n)
        z[idx] = x @ v
        if progress is not None:
            progress(i + 1, len(blocks))
    return z


def _check_options(h2, n_gwas, sigma2, log_sd, block_kb, truth, threshold_quantile, alpha=0.0):
    if truth not in TRUTHS:
        raise UserError(f"option --truth: {truth!r}; expected one of {', '.join(TRUTHS)}")
    if not (np.isfinite(h2) and 0 < h2 < 1):
        # h2 is a fraction of the trait's variance: at 1 or above nothing is left for the noise
        raise UserError(f"option --h2: expected a heritability in (0, 1), got {h2}")
    for name, val in (("--n", n_gwas), ("--sigma2", sigma2), ("--block-kb", block_kb)):
        if not (np.isfinite(val) and val > 0):
            raise UserError(f"option {name}: expected a positive number, got {val}")
    if not (np.isfinite(log_sd) and log_sd >= 0):
        raise UserError(f"option --log-sd: expected a number >= 0, got {log_sd}")
    if not np.isfinite(alpha):
        raise UserError(f"option --alpha: expected a finite number, got {alpha}")
    if not 0 < threshold_quantile < 1:
        raise UserError(f"option --threshold-quantile: expected a number in (0, 1), got {threshold_quantile}")


def run_simulate(ld, out, *, truth="constant", h2=0.5, n_gwas=100_000.0, alpha=0.7, sigma2=1.0, log_sd=1.0,
                 block_kb=1000.0, seed=0, annotations=None, fasta=None, feature_window=256, ld_region=None,
                 threshold_feature=None, threshold_quantile=0.9, progress=True) -> dict:
    """Simulate summary statistics from the panel ``ld`` and write ``out/``:

    - ``sumstats.fastGWA.gz``: the summary statistics (read by ``varfx ingest``);
    - ``truth.tsv``: ``SNP CHR BP F BETA`` of every simulated variant;
    - ``simulation.json``: the options, the truth's parameters, counts and provenance.

    Returns the summary written to ``simulation.json``."""
    from ..io.ld import PlinkLD
    from ..store.dataset import open_dataset
    from ..ui import stage_progress
    from .ingest import detect_ld_kind, run_ingest
    from ..store.variants import feature_matrix

    _check_options(h2, n_gwas, sigma2, log_sd, block_kb, truth, threshold_quantile, alpha)
    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / SIMULATION_JSON).exists())):
        raise UserError(f"exists and is not a varfx simulation (no {SIMULATION_JSON}); refusing to replace it: "
                        "choose a new directory", path=out)
    from ..genome import parse_region

    # parsed before the panel is read: `--ld-region banana` fails at once, for every panel kind
    region = parse_region(ld_region, option="--ld-region") if ld_region is not None else None
    kind = detect_ld_kind(ld)
    if kind == "ukbb":
        raise UserError("simulate needs a genotype panel (PLINK or VCF): a UKBB/PolyFun LD reference has no "
                        "genotypes or allele frequencies to sample from", path=ld)
    rng = np.random.default_rng(seed)
    with atomic_dir(out) as tmp:
        work = Path(tempfile.mkdtemp(prefix=".reference.", dir=tmp))
        ref = _reference_variants(ld, kind, region)
        placeholder = work / "panel.fastGWA.gz"
        write_fastgwa(placeholder, ref, np.zeros(len(ref["snp"])), n_gwas)
        ingest = run_ingest(placeholder, ld, work / "dataset", n=n_gwas, progress=progress,
                            annotations=annotations, fasta=fasta, feature_window=feature_window,
                            ld_region=ld_region)
        with open_dataset(work / "dataset") as h5:
            var = h5["variants"]
            variants = {k: var[k].asstr()[:] for k in ("snp", "a1", "a2")}
            variants.update({k: var[k][:] for k in ("chrom", "bp", "freq")})
            x = feature_matrix(h5)
            names = []
            if "features" in h5 and "scalar_names" in h5["features"]:
                from ..features.store import feature_names

                names = feature_names(h5["features"])["scalar"]
            M = len(variants["snp"])
            g, params = (np.zeros(M), {}) if truth == "constant" else truth_log_g(
                truth, x, names, rng, log_sd, threshold_feature=threshold_feature,
                threshold_quantile=threshold_quantile)
            p = np.clip(variants["freq"], 1e-6, 1 - 1e-6)
            log_shape = alpha * np.log(p * (1 - p)) + g
            log_c = math.log(h2) - float(np.logaddexp.reduce(log_shape))
            f = np.exp(log_c + log_shape)
            beta = rng.standard_normal(M) * np.sqrt(f)
            with stage_progress(progress) as bar:
                task = bar.add_task("simulate", total=None, status="sampling z") if bar else None

                def advance(done, total):
                    if bar is not None:
                        bar.update(task, completed=done, total=total)

                z = sample_z(PlinkLD(h5), variants["chrom"], variants["bp"], beta, n_gwas=n_gwas,
                             sigma2=sigma2, block_bp=int(round(block_kb * 1000)), rng=rng, progress=advance)
        shutil.rmtree(work)
        write_fastgwa(tmp / SUMSTATS_FILE, variants, z, n_gwas)
        with atomic_path(tmp / TRUTH_FILE) as t:
            with open(t, "w") as fh:
                fh.write("SNP\tCHR\tBP\tF\tBETA\n")
                for row in zip(variants["snp"], variants["chrom"], variants["bp"], f, beta):
                    fh.write(f"{row[0]}\t{row[1]}\t{row[2]}\t{row[3]:.10e}\t{row[4]:.10e}\n")
        chi2 = z * z
        summary = {
            "format": "varfx-simulation", "varfx_version": __version__,
            "out": str(out), "ld": str(ld), "ld_kind": kind, "n_ref": int(ingest["n_ref"]),
            "truth": truth, "h2": float(h2), "N": float(n_gwas), "alpha": float(alpha), "sigma2": float(sigma2),
            "log_sd": float(log_sd), "block_kb": float(block_kb), "seed": int(seed), "ld_region": ld_region,
            "log_c": log_c, "n_variants": M, "features": names,
            "panel_variants": int(len(ref["snp"])), "dropped": ingest["dropped"],
            "mean_chi2": float(chi2.mean()), "max_chi2": float(chi2.max()),
            "realised_h2_beta": float(np.sum(beta * beta)),
            "files": {"sumstats": SUMSTATS_FILE, "truth": TRUTH_FILE},
            **params,
        }
        Path(tmp / SIMULATION_JSON).write_text(json.dumps(summary, indent=1) + "\n")
    return summary

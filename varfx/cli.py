"""The ``varfx`` command line.

Only click, rich and the plugin manager are imported here; every command imports its
heavy modules (torch, h5py, numpy...) inside its body so that ``varfx --help`` and
``varfx plugins`` start fast.
"""

from __future__ import annotations

import functools
import json
import os
import sys

import click

from . import __version__
from .cli_types import FRACTION_OPEN, NON_NEGATIVE, POSITIVE, FiniteFloat, parse_chroms
from .errors import UserError


def _fail(message: str) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(1)


def os_error_message(exc: OSError) -> str:
    """``FILE: what went wrong`` for an OSError (errno text, e.g. 'Read-only file system')."""
    import errno as _errno

    what = exc.strerror or str(exc)
    if exc.errno == _errno.ENOENT:
        what = "no such file or directory"
    elif exc.errno in (_errno.EACCES, _errno.EPERM):
        what = "permission denied"
    elif exc.errno == _errno.ENOSPC:
        what = "no space left on the device"
    elif exc.errno == _errno.EROFS:
        what = "read-only file system (choose a writable destination)"
    name = exc.filename if exc.filename is not None else None
    return f"{name}: {what}" if name is not None else str(what)


def user_errors(fn):
    """Turn a UserError (and a few plain OS errors) into a one-line message, exit 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            _fail(str(exc).replace("\n", " "))
        except KeyboardInterrupt:
            _fail("interrupted")
        except OSError as exc:
            # a read-only filesystem, a full disk, a missing permission or a missing
            # file, wherever it happens: one line naming the file, never a traceback
            _fail(os_error_message(exc))

    return wrapper


def _int_list(value: str, option: str):
    """Parse '6,7,8' / 'none' / 'all' into a list of ints, [] or None (all)."""
    value = value.strip().lower()
    if value in ("none", ""):
        return []
    if value == "all":
        return None
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"option {option}: expected comma-separated chromosome numbers, 'all' or 'none', got {value!r}") from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="varfx")
def cli():
    """varfx: learn which genetic variants matter for a trait, and why.

    Stages: ingest -> precompute-ld -> [bags ->] fit -> evaluate / score / score-vcf.
    See `varfx demo` for the whole pipeline on the bundled example data, and
    docs/cli.md for every option.
    """


def _sumstats_format_option(ctx, param, value):
    """A registered sumstats format (built-in or a plugin's), case-insensitive, or 'auto'."""
    if value is None or value.lower() == "auto":
        return "auto"
    from .plugins import get_sumstats_formats

    names = {n.lower(): n for n in get_sumstats_formats()}
    if value.lower() not in names:
        raise click.BadParameter(f"{value!r} is not one of auto, {', '.join(names.values())}")
    return names[value.lower()]


@cli.command()
@click.option("--sumstats", required=True, type=click.Path(dir_okay=False),
              help="Summary statistics: LDSC, fastGWA, BOLT-LMM, GWAS-SSF, UKB (SNP CHR POS A1 A2 REF EAF Beta se ...), "
                   "GWAS-VCF or a TSV/CSV with --col-* options; plain or gzipped. The format is detected from the header.")
@click.option("--ld", "ld", required=True, type=click.Path(), help="LD reference: PLINK prefix/.bed, a VCF/BCF panel, or a directory of UKBB .npz/.gz regions.")
@click.option("--n", "n", type=float, default=None, help="Sample size, when the sumstats have no N column (replaces it when given).")
@click.option("--sumstats-format", default="auto", show_default=True, callback=_sumstats_format_option,
              metavar="FORMAT", help="Force the sumstats format instead of detecting it: ldsc, ukb, fastGWA, bolt, gwas-ssf, "
                                     "gwas-vcf, custom, or a plugin's (see `varfx plugins`).")
@click.option("--col-snp", metavar="NAME", help="Column of the variant id (rsid).")
@click.option("--col-chr", metavar="NAME", help="Column of the chromosome.")
@click.option("--col-bp", metavar="NAME", help="Column of the base-pair position.")
@click.option("--col-a1", metavar="NAME", help="Column of the effect allele (Z, BETA and the frequency refer to it).")
@click.option("--col-a2", metavar="NAME", help="Column of the other allele.")
@click.option("--col-z", metavar="NAME", help="Column of the Z score (else Z = BETA/SE).")
@click.option("--col-beta", metavar="NAME", help="Column of the effect size BETA.")
@click.option("--col-se", metavar="NAME", help="Column of the standard error of BETA.")
@click.option("--col-n", metavar="NAME", help="Column of the per-variant sample size.")
@click.option("--col-freq", metavar="NAME", help="Column of the effect-allele frequency.")
@click.option("--col-info", metavar="NAME", help="Column of the imputation INFO score.")
@click.option("--info-min", type=float, default=0.6, show_default=True,
              help="Drop variants with INFO below this (when the sumstats have an INFO column; 0: keep all).")
@click.option("--maf-min", type=float, default=0.001, show_default=True,
              help="Drop variants whose sumstats minor allele frequency is below this (0: keep all).")
@click.option("--ambiguous-maf-max", type=click.FloatRange(0, 0.5), default=0.0, show_default=True,
              help="Keep A/T and C/G variants whose MAF is below this in both the sumstats and a PLINK/VCF panel, "
                   "taking the strand on which the frequencies agree (0: drop them all; 0.4 is usual).")
@click.option("--ld-people", type=click.IntRange(min=3), default=None,
              help="People the LD reference was estimated from (a PLINK/VCF panel counts its own; a UKBB/PolyFun "
                   "matrix records none). precompute-ld's small-panel LD correction uses it; for LD from the GWAS "
                   "sample itself give the GWAS N.")
@click.option("--keep-multi-allelic", is_flag=True, help="Keep positions with several allele pairs (dropped by default).")
@click.option("--liftover", type=click.Path(dir_okay=False), default=None,
              help="UCSC chain file lifting the sumstats into the LD reference's build (a local file; nothing is downloaded).")
@click.option("--liftover-move", is_flag=True, help="Move variants that fail to lift next to their nearest lifted neighbour instead of dropping them.")
@click.option("--ld-maf-min", type=float, default=0.0, show_default=True, help="Drop panel variants with a lower minor allele frequency (PLINK/VCF panels).")
@click.option("--exclude-lrld", type=click.Path(dir_okay=False), default=None, help="Drop variants in these long-range LD regions (chrN start end label).")
@click.option("--ld-region", default=None, metavar="CHR:START-END", help="Use only this region of the LD reference (PLINK, VCF/BCF or UKBB; a VCF/BCF panel needs an index), e.g. 22:16000000-17000000.")
@click.option("--annotations", type=click.Path(dir_okay=False), default=None, help="Annotations manifest (TSV: name, path[, kind]); see docs/features.md.")
@click.option("--fasta", type=click.Path(dir_okay=False), default=None, help="Reference FASTA (with .fai): one-hot sequence around each variant.")
@click.option("--feature-window", type=click.IntRange(min=2), default=256, show_default=True, help="Window (bp) of per-base features around each variant.")
@click.option("--feature-dtype", type=click.Choice(["float16", "float32"]), default="float16", show_default=True, help="Storage type of the per-base tracks.")
@click.option("--build", default="hg19", show_default=True, help="Genome build of the inputs (recorded; a --liftover chain sets it).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object on stdout.")
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="Dataset directory to write.")
@click.option("--dry-run", is_flag=True, help="Read and match as the run does, time the writing on a sample, print "
                                              "the plan (counts, time, memory, disk) and stop: nothing is written.")
@user_errors
def ingest(sumstats, ld, n, sumstats_format, col_snp, col_chr, col_bp, col_a1, col_a2, col_z, col_beta, col_se,
           col_n, col_freq, col_info, info_min, maf_min, ld_people, keep_multi_allelic, liftover, liftover_move, ld_maf_min,
           exclude_lrld, ld_region, annotations, fasta, feature_window, feature_dtype, ambiguous_maf_max, build,
           as_json, out, dry_run):
    """Harmonise summary statistics with an LD reference into a dataset.

    Reads the summary statistics (format detected from the header), drops variants off
    the autosomes, with low INFO or MAF and at multi-allelic positions, matches the rest
    to the LD reference (flipping Z where the alleles are swapped) and writes
    OUT/dataset.h5. Every count is in the summary (--json for a JSON object).
    """
    from .stages.ingest import print_ingest_summary, run_ingest

    columns = {f: c for f, c in dict(snp=col_snp, chrom=col_chr, bp=col_bp, a1=col_a1, a2=col_a2, z=col_z,
                                     beta=col_beta, se=col_se, n=col_n, freq=col_freq, info=col_info).items() if c}
    summary = run_ingest(
        sumstats=sumstats, ld=ld, out=out, n=n, build=build, progress=not as_json, columns=columns or None,
        sumstats_format=None if sumstats_format.lower() == "auto" else sumstats_format,
        info_min=info_min, maf_min=maf_min, keep_multi_allelic=keep_multi_allelic,
        liftover=liftover, liftover_move=liftover_move, ld_maf_min=ld_maf_min, exclude_lrld=exclude_lrld,
        ld_region=ld_region, annotations=annotations, fasta=fasta, feature_window=feature_window,
        feature_dtype=feature_dtype, ambiguous_maf_max=ambiguous_maf_max, ld_people=ld_people, dry_run=dry_run,
    )
    if as_json:
        click.echo(json.dumps(summary))
    elif dry_run:
        from .ui import print_dry_run

        print_dry_run(summary)
    else:
        print_ingest_summary(summary)


@cli.command("precompute-ld")
@click.argument("dataset", type=click.Path(file_okay=False))
@click.option("--window-kb", type=POSITIVE, default=1000, show_default=True, help="Core window size.")
@click.option("--flank-kb", type=NON_NEGATIVE, default=1000, show_default=True, help="Flank on each side of a core window.")
@click.option("--eig-threshold", type=FRACTION_OPEN, default=1e-3, show_default=True, help="Drop eigenvalues below this fraction of the largest.")
@click.option("--ld-correction", type=click.Choice(["auto", "none", "rank", "share"]), default="auto",
              show_default=True,
              help="Guard against a small LD panel's sampling noise: rank keeps at most --max-rank-frac x "
                   "min(panel size, core variants) eigen-components per window, those above --eig-floor; auto "
                   "applies it when the panel size is known and a window has more variants than --max-rank-frac x "
                   "panel size; share keeps the components reaching --var-share of the variance; none turns it off.")
@click.option("--max-rank-frac", type=FiniteFloat(0, 1, min_open=True), default=None,
              help="The rank cap of --ld-correction rank/auto as a fraction of min(panel size, the window's core "
                   "variants) [default: 0.35].")
@click.option("--var-share", type=FiniteFloat(0, 1, min_open=True), default=None,
              help="The variance share of --ld-correction share [default: 0.995].")
@click.option("--flank-noise-z", type=NON_NEGATIVE, default=None,
              help="With a correction: core-flank correlations below this many noise SDs of the panel "
                   "(Z / sqrt(panel size)) are set to 0; 0 keeps them [default: 3].")
@click.option("--eig-floor", type=NON_NEGATIVE, default=None,
              help="With a correction: keep only eigen-components of at least this many times the window's mean "
                   "eigenvalue (1: the Kaiser-Guttman rule); 0 turns the floor off [default: 1].")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Worker processes.")
@click.option("--dask-scheduler", metavar="ADDRESS", default=None,
              help="Compute the windows as tasks on this Dask scheduler (tcp://HOST:PORT), or local:N for a local "
                   "cluster of N processes; the dataset directory must be on a filesystem every worker sees. "
                   "Needs the extra varfx[dask]; not with --workers (docs/scale.md).")
@click.option("--shards", type=click.Choice(["auto", "none", "chrom"]), default="auto", show_default=True,
              help="Store layout: chrom writes each chromosome's windows to its own file (windows.shards/chrC.h5, "
                   "committed as soon as they are computed) with windows.h5 their index; none writes one windows.h5; "
                   "auto is chrom for more than one chromosome and at least 500 windows (docs/scale.md).")
@click.option("--verify", is_flag=True,
              help="Verify every window checksum of an existing store before reusing it, whatever its size "
                   "(by default only stores up to 1 GiB are; larger ones have their shard sizes checked).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object on stdout.")
@click.option("--dry-run", is_flag=True, help="Print the plan (windows, time, memory, disk: varfx plan's) and stop.")
@user_errors
def precompute_ld(dataset, window_kb, flank_kb, eig_threshold, ld_correction, max_rank_frac, var_share, flank_noise_z,
                  eig_floor, workers, dask_scheduler, shards, verify, as_json, dry_run):
    """Factorise the LD of every window once (eigendecomposition, G, z, LD scores)."""
    if dry_run:
        from .stages.plan import precompute_dry_run

        click.echo(json.dumps(precompute_dry_run(dataset, window_kb=window_kb, flank_kb=flank_kb, workers=workers,
                                                 ld_correction=ld_correction, max_rank_frac=max_rank_frac,
                                                 dask_scheduler=dask_scheduler, eig_floor=eig_floor)))
        return
    from .stages.precompute import run_precompute

    summary = run_precompute(
        dataset, window_kb=window_kb, flank_kb=flank_kb, eig_threshold=eig_threshold,
        ld_correction=ld_correction, max_rank_frac=max_rank_frac, var_share=var_share, flank_noise_z=flank_noise_z,
        eig_floor=eig_floor, workers=workers, progress=True, dask_scheduler=dask_scheduler, shards=shards,
        verify=verify,
    )
    if as_json:
        click.echo(json.dumps(summary))
    else:
        from .ui import print_summary

        print_summary("precompute-ld", summary)


@cli.command()
@click.argument("dataset", type=click.Path(file_okay=False))
@click.option("--p-threshold", type=FRACTION_OPEN, default=5e-8, show_default=True,
              help="Variants with a two-sided p below this are significant (clumped into positive bags).")
@click.option("--clump-kb", type=NON_NEGATIVE, default=500, show_default=True,
              help="Clumping: a block takes significant variants within this distance of its lead.")
@click.option("--clump-r2", type=FiniteFloat(0, 1), default=0.1, show_default=True,
              help="Clumping: ... and with r^2 to the lead at least this (LD from the dataset).")
@click.option("--min-bag-size", type=click.IntRange(min=1), default=10, show_default=True,
              help="Drop positive bags with fewer variants.")
@click.option("--max-bag-size", type=click.IntRange(min=1), default=128, show_default=True,
              help="Keep at most this many variants of a bag (its most significant).")
@click.option("--blocks", type=click.Path(dir_okay=False), default=None,
              help="Pre-defined blocks instead of clumping: TSV with columns chr bp rsid ea nea p block_id [signal].")
@click.option("--drop-unknown", is_flag=True, help="--blocks: drop (and count) rows that match no dataset variant.")
@click.option("--neg-maf-min", type=FiniteFloat(0, 0.5), default=0.05, show_default=True,
              help="Negatives: minor allele frequency at least this.")
@click.option("--neg-p-min", type=FiniteFloat(0, 1, max_open=True), default=0.1, show_default=True,
              help="Negatives: p above this.")
@click.option("--neg-exclude-kb", type=NON_NEGATIVE, default=10, show_default=True,
              help="Negatives: at least this far from every significant variant and positive bag member.")
@click.option("--add-study", "add_study", multiple=True, type=click.Path(file_okay=False), metavar="DATASET",
              help="Also the bags of this dataset (same options, its own LD), mapped onto DATASET's variants (repeatable).")
@click.option("--dry-run", is_flag=True, help="Build the bags as the run does, print the plan (counts, time, memory, "
                                              "the size of bags.h5: JSON on stdout, a table on stderr) and stop: "
                                              "bags.h5 is not written.")
@user_errors
def bags(dataset, p_threshold, clump_kb, clump_r2, min_bag_size, max_bag_size, blocks, drop_unknown, neg_maf_min,
         neg_p_min, neg_exclude_kb, add_study, dry_run):
    """Build the positive bags and negatives of multiple-instance fine-mapping.

    Writes DATASET/bags.h5 from DATASET/dataset.h5 (run after ingest; see docs/bags.md)
    and prints its summary as one JSON object on stdout.
    """
    if max_bag_size < min_bag_size:
        raise click.BadParameter(f"{max_bag_size} is below --min-bag-size {min_bag_size}", param_hint="--max-bag-size")
    from .stages.bags import run_bags

    summary = run_bags(dataset, add_study=add_study, p_threshold=p_threshold, clump_kb=clump_kb, clump_r2=clump_r2,
                       min_bag_size=min_bag_size, max_bag_size=max_bag_size, blocks=blocks,
                       drop_unknown=drop_unknown, neg_maf_min=neg_maf_min, neg_p_min=neg_p_min,
                       neg_exclude_kb=neg_exclude_kb, progress=True, dry_run=dry_run)
    if dry_run:
        from .ui import print_dry_run

        print_dry_run(summary)
    click.echo(json.dumps(summary))


from .cli_types import NON_NEGATIVE, POSITIVE  # noqa: E402 - the fit command's option types


def _sigma2(value):
    import math

    if value is None or str(value).lower() in ("auto", "ldsc"):
        return None
    try:
        v = float(value)
    except ValueError:
        raise UserError(f"option --sigma2: expected a positive number or 'auto', got {value!r}") from None
    if not (v > 0 and math.isfinite(v)):
        raise UserError(f"option --sigma2: expected a finite positive number or 'auto', got {value!r}")
    return v


def _alpha(value):
    """``--alpha``: 'auto', 'learn' or a finite number."""
    import math

    text = str(value).strip().lower()
    if text in ("auto", "learn"):
        return text
    try:
        v = float(text)
    except ValueError:
        raise UserError(f"option --alpha: expected a number, 'auto' or 'learn', got {value!r}") from None
    if not math.isfinite(v):
        raise UserError(f"option --alpha: expected a finite number, 'auto' or 'learn', got {value!r}")
    return v


@cli.command()
@click.argument("dataset", type=click.Path(file_okay=False))
@click.option("--prior", default="constant", show_default=True, help="Prior plugin (see `varfx plugins`).")
@click.option("--objective", default="full", show_default=True,
              help="Objective plugin (mil and distil train on the bags of `varfx bags`: docs/mil_objective.md).")
@click.option("--solver", default=None, help="Solver plugin, for objectives that use one  [default: cholesky]")
@click.option("-p", "--prior-option", "prior_options", multiple=True, metavar="KEY=VALUE", help="Prior option (repeatable).")
@click.option("-s", "--solver-option", "solver_options", multiple=True, metavar="KEY=VALUE", help="Solver option (repeatable).")
@click.option("-O", "--objective-option", "objective_options", multiple=True, metavar="KEY=VALUE", help="Objective option (repeatable).")
@click.option("--alpha", default="auto", show_default=True,
              help="Frequency exponent: f ~ (p(1-p))^alpha; a number, 'learn', or 'auto' (0.7, or 0 when the "
                   "dataset lacks allele frequencies).")
@click.option("--sigma2", default=None, help="Noise variance sigma^2 (1 = no inflation); default: LD score regression intercept.")
@click.option("--holdout-chroms", default="auto", show_default=True,
              help="Chromosomes held out of training: a list, 'none', or 'auto' (6,7,8 where the dataset has them "
                   "and others to train on).")
@click.option("--holdout-region", "holdout_regions", multiple=True, metavar="CHR:START-END",
              help="Also hold out the windows whose core starts in this region (repeatable), e.g. for a "
                   "one-chromosome dataset; training windows whose flanks reach them are left out.")
@click.option("--optimizer", type=click.Choice(["auto", "lbfgs", "adamw"]), default="auto", show_default=True,
              help="auto: full-batch L-BFGS to the maximum for priors with few parameters (constant, glm) whose "
                   "windows are in memory, unless an AdamW option is given; mini-batch AdamW otherwise.")
@click.option("--gtol", type=POSITIVE, default=None,
              help="L-BFGS: stop when max |gradient| of the per-variant loss is at most this  [default: 1e-06]")
@click.option("--max-iter", type=click.IntRange(min=1), default=None, help="L-BFGS: iteration limit  [default: 500]")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="AdamW epochs  [default: 100]")
@click.option("--lr", type=POSITIVE, default=None, help="Peak AdamW learning rate  [default: the prior's]")
@click.option("--batch-windows", type=click.IntRange(min=0), default=None,
              help="Windows (bags, for mil and distil) per AdamW step (0: all of an epoch's)  "
                   "[default: 0 for windows (a network prior: its windows in 24 steps), 32 for bags]")
@click.option("--accumulate", type=click.IntRange(min=1), default=None,
              help="Steps whose gradients are accumulated per update  [default: 1]")
@click.option("--warmup", type=NON_NEGATIVE, default=None,
              help="Linear warm-up: a fraction (<1) or a number of updates  [default: 0.05]")
@click.option("--clip", type=NON_NEGATIVE, default=None, help="Gradient-norm clipping (0: off)  [default: 1.0]")
@click.option("--weight-decay", type=NON_NEGATIVE, default=None, help="AdamW weight decay  [default: 0]")
@click.option("--patience", type=click.IntRange(min=0), default=None,
              help="Stop after this many epochs without a better validation loss and keep the best epoch's "
                   "weights (0: off)  [default: 10 for a network prior on full/ldsr with held-out "
                   "windows, else 0]")
@click.option("--checkpoint-every", type=click.IntRange(min=0), default=50, show_default=True,
              help="Also checkpoint every N AdamW steps or L-BFGS iterations (0: epochs / every 20 iterations).")
@click.option("--log-jsonl", type=click.Path(dir_okay=False), default=None, help="Append one JSON line per step and per epoch.")
@click.option("--dry-run", is_flag=True, help="Print the plan (windows, variants, parameters, memory; under \"plan\" the time and memory of varfx plan) and stop.")
@click.option("--amp", is_flag=True, help="Mixed precision (bfloat16 autocast) for the prior network; the linear algebra stays in --dtype.")
@click.option("--loader-workers", type=click.IntRange(min=0), default=0, show_default=True,
              help="Processes reading the training windows from disk per batch (0: all windows held in memory; "
                   "under torchrun each process reads its share of each batch itself).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", type=click.Choice(["cpu", "cuda", "auto"]), default="cpu", show_default=True)
@click.option("--dtype", type=click.Choice(["float64", "float32"]), default="float64", show_default=True)
@click.option("--threads", type=click.IntRange(min=0), default=0, show_default=True,
              help="CPU threads for torch (0: one thread when every window is small, else torch's default).")
@click.option("--fasta", type=click.Path(dir_okay=False), default=None,
              help="Reference FASTA (with .fai) for a prior that reads DNA (seqcnn)  [default: the dataset's]")
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="Model directory (resumes if it has a checkpoint).")
@click.option("--plots", type=click.Path(file_okay=False), default=None,
              help="Also draw the loss curves into this directory (curves.png; docs/plots.md).")
@user_errors
def fit(dataset, prior, objective, solver, prior_options, solver_options, objective_options, alpha, sigma2,
        holdout_chroms, holdout_regions, optimizer, gtol, max_iter, epochs, lr, batch_windows, accumulate, warmup,
        clip, weight_decay, patience, checkpoint_every, log_jsonl, dry_run, amp, loader_workers, seed, device, dtype,
        threads, fasta, out, plots):
    """Train a prior by minimising an objective over the dataset's windows."""
    from .stages.fit import run_fit

    summary = run_fit(
        dataset, out, prior=prior, objective=objective, solver=solver,
        prior_options=prior_options, solver_options=solver_options,
        objective_options=objective_options, alpha=_alpha(alpha), sigma2=_sigma2(sigma2),
        holdout_chroms=holdout_chroms, holdout_regions=holdout_regions, optimizer=optimizer, gtol=gtol,
        max_iter=max_iter,
        epochs=epochs, lr=lr, batch_windows=batch_windows, accumulate=accumulate, warmup=warmup,
        clip=clip, weight_decay=weight_decay, patience=patience, checkpoint_every=checkpoint_every,
        log_jsonl=log_jsonl, dry_run=dry_run, seed=seed, device=device, dtype=dtype, threads=threads,
        loader_workers=loader_workers, amp=amp, fasta=fasta,
    )
    if int(os.environ.get("RANK", "0")) > 0:
        return  # under torchrun the summary is rank 0's to print (once, not once per process)
    if dry_run:
        click.echo(json.dumps(summary))
        return
    from .ui import print_summary

    print_summary("fit", summary)
    if plots:
        from .plots import plot_curves

        _wrote([plot_curves(out, plots)], err=True)


@cli.command()
@click.argument("model_dirs", nargs=-1, required=True, type=click.Path(file_okay=False), metavar="MODEL_DIR...")
@click.argument("dataset", type=click.Path(file_okay=False))
@click.option("--chroms", default=None, help="Chromosomes to evaluate ('6,7,8', 'all'); default: those the (first) model held out of training.")
@click.option("--truth", type=click.Path(dir_okay=False), default=None, help="Simulation truth: TSV with SNP and F (adds RMSE of log F) or, for a fine-mapping model, SNP and causal (adds within-bag AUROC).")
@click.option("--truth-col", default="F", show_default=True, metavar="NAME", help="Column of --truth holding the true prior variances.")
@click.option("--blocks", type=click.IntRange(min=0), default=200, show_default=True, help="Jackknife blocks of windows for the standard errors (fewer when there are fewer windows; 0: no standard errors).")
@click.option("--fasta", type=click.Path(dir_okay=False), default=None, help="Reference FASTA for a prior that reads DNA (default: the one recorded with the dataset).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
@click.option("--plots", type=click.Path(file_okay=False), default=None,
              help="Also draw the evaluation's figures into this directory (docs/plots.md).")
@click.option("--dry-run", is_flag=True, help="Print the time evaluate would take (varfx plan's, as JSON) and stop.")
@user_errors
def evaluate(model_dirs, dataset, chroms, truth, truth_col, blocks, fasta, as_json, plots, dry_run):
    """Held-out log-likelihood of a fitted model with block-jackknife standard errors, h2,
    enrichment; for a fine-mapping model (mil, distil) how it ranks the variants of
    held-out bags.  Several MODEL_DIRs: compare them on the same windows (docs/evaluate.md)."""
    from .stages.evaluate import HOLDOUT, print_comparison, print_evaluation, run_compare, run_evaluate

    if dry_run:
        from .stages.plan import model_dry_run

        chosen = "holdout" if chroms is None else parse_chroms(chroms, "--chroms")
        click.echo(json.dumps(model_dry_run("evaluate", model_dirs, dataset, chroms=chosen)))
        return

    chrom_list = HOLDOUT if chroms is None else parse_chroms(chroms, "--chroms")
    if chrom_list == []:
        raise UserError("option --chroms: 'none' leaves nothing to evaluate; give chromosomes or 'all'")
    if len(model_dirs) > 1:
        result = run_compare(model_dirs, dataset, chroms=chrom_list, truth=truth, fasta=fasta, truth_col=truth_col,
                             blocks=blocks)
    else:
        result = run_evaluate(model_dirs[0], dataset, chroms=chrom_list, truth=truth, fasta=fasta,
                              truth_col=truth_col, blocks=blocks)
    if as_json:
        click.echo(json.dumps(result))
    elif result.get("comparison"):
        print_comparison(result)
    else:
        print_evaluation(result)
    if plots:
        from .plots import evaluate_plots

        _wrote(evaluate_plots(result, list(model_dirs), dataset, truth, truth_col, plots, fasta=fasta,
                              held_out=chroms is None), err=True)


@cli.command()
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.argument("dataset", type=click.Path(file_okay=False))
@click.option("--fasta", type=click.Path(dir_okay=False), default=None,
              help="Reference FASTA (with .fai) for a model that reads DNA (seqcnn)  [default: the dataset's]")
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False),
              help="Output TSV: SNP CHR BP F (a likelihood-trained prior) or SNP CHR BP P_CAUSAL LOGIT (a MIL model).")
@click.option("--posterior", is_flag=True,
              help="Add BETA_POSTERIOR and BETA_POSTERIOR_SD: E[beta | Z] and its sd under the fitted prior, "
                   "standardised units (needs the dataset's windows.h5; not for a MIL model).")
@click.option("--pgs-file", type=click.Path(dir_okay=False), default=None,
              help="Also write per-allele posterior weights as a PGS Catalog scoring file (gzipped if it ends in "
                   ".gz) and PGS_FILE.prscs.tsv (PRS-CS columns); implies --posterior.")
@click.option("--pgs-name", default=None, help="#pgs_id and #pgs_name of the scoring file  [default: the model directory's name]")
@click.option("--trait", default=None, help="#trait_reported of the scoring file  [default: the model directory's name]")
@click.option("--dry-run", is_flag=True, help="Print the time and disk score would take (varfx plan's, as JSON) and stop; OUT is not written.")
@user_errors
def score(model_dir, dataset, fasta, out, posterior, pgs_file, pgs_name, trait, dry_run):
    """Write the fitted prior variance F (or, for a MIL model, the probability of being causal) of every
    variant of a dataset; with --posterior / --pgs-file, posterior effect sizes and polygenic-score weights
    (docs/pgs.md)."""
    from .stages.score import run_score

    if dry_run:
        from .stages.plan import model_dry_run

        click.echo(json.dumps(model_dry_run("score", [model_dir], dataset)))
        return

    n = run_score(model_dir, dataset, out, fasta=fasta, posterior=posterior, pgs_file=pgs_file,
                  pgs_name=pgs_name, trait=trait)
    click.echo(f"wrote {n} variants to {out}", err=True)
    if pgs_file is not None:
        from .stages.score import prscs_path

        click.echo(f"wrote the scoring file {pgs_file} and {prscs_path(pgs_file)}", err=True)


@cli.command("score-vcf")
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.argument("vcf", type=click.Path(dir_okay=False))
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False),
              help="Output VCF (bgzipped, indexed with tabix or CSI).")
@click.option("--fasta", type=click.Path(dir_okay=False), default=None,
              help="Reference FASTA (with .fai)  [default: the model's dataset's]")
@click.option("--annotations", type=click.Path(dir_okay=False), default=None,
              help="Manifest whose entries replace the recorded feature files of the same name.")
@click.option("--batch", type=int, default=10000, show_default=True, help="Records read and scored at a time.")
@click.option("--threads", type=click.IntRange(min=0), default=0, show_default=True,
              help="CPU threads for torch and for htslib's (de)compression (0: torch's default, none for htslib).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object on stdout (no progress bar).")
@click.option("--dry-run", is_flag=True, help="Check the model and inputs, score the first 5,000 records into memory, "
                                              "print the plan (records, time, memory, output size) and stop: OUT is "
                                              "not written.")
@user_errors
def score_vcf(model_dir, vcf, out, fasta, annotations, batch, threads, as_json, dry_run):
    """Annotate a VCF/BCF with the model's F (VARFX_F, VARFX_ENRICH) or, for a MIL model, VARFX_PCAUSAL."""
    import sys

    from .stages.score_vcf import run_score_vcf

    summary = run_score_vcf(model_dir, vcf, out, fasta=fasta, annotations=annotations, batch=batch, threads=threads,
                            progress=not as_json and sys.stderr.isatty(), dry_run=dry_run)
    if as_json:
        click.echo(json.dumps(summary))
    elif dry_run:
        from .ui import print_dry_run

        print_dry_run(summary)
    else:
        from .ui import print_summary

        print_summary("score-vcf", {k: v for k, v in summary.items() if k != "notes"})


#: options of `simulate` that only the panel-based truths use, and those only `--truth motif` uses
_PANEL_ONLY = ("ld", "annotations", "fasta", "h2", "alpha", "log_sd", "sigma2", "block_kb", "threshold_feature",
               "threshold_quantile", "feature_window", "ld_region")
_MOTIF_ONLY = ("n_chroms", "blocks_per_chrom", "variants_per_block", "n_ref", "causal_fraction", "effect_z", "motifs")


def _explicit(ctx, names):
    """The options among ``names`` given on the command line (not left at their default)."""
    from click.core import ParameterSource

    return [n for n in names if ctx.get_parameter_source(n) not in (None, ParameterSource.DEFAULT)]


def _option_name(ctx, name):
    param = next(p for p in ctx.command.params if p.name == name)
    return max(param.opts, key=len)


@cli.command()
@click.option("--ld", "ld", default=None, type=click.Path(), help="Genotype panel: PLINK prefix/.bed or a VCF/BCF file (every truth but motif).")
@click.option("--truth", required=True, type=click.Choice(["constant", "glm", "network", "threshold", "motif"]),
              help="How f depends on the features (constant: on the frequency only); motif: a genome, panel and GWAS of its own whose causal variants carry planted DNA motifs (docs/simulate.md).")
@click.option("--annotations", type=click.Path(dir_okay=False), default=None, help="Annotations manifest (as for ingest): the features the truth uses.")
@click.option("--fasta", type=click.Path(dir_okay=False), default=None, help="Reference FASTA (with .fai): adds the sequence features.")
@click.option("--h2", type=FRACTION_OPEN, default=0.5, show_default=True, help="Heritability (0 < h2 < 1): the sum of f over the simulated variants.")
@click.option("--n", "n_gwas", type=POSITIVE, default=100_000, show_default=True, help="GWAS sample size N.")
@click.option("--alpha", type=FiniteFloat(), default=0.7, show_default=True, help="Frequency exponent of the truth: f ~ (p(1-p))^alpha.")
@click.option("--log-sd", type=NON_NEGATIVE, default=1.0, show_default=True, help="Standard deviation of the feature term of log f across variants.")
@click.option("--sigma2", type=POSITIVE, default=1.0, show_default=True, help="Noise variance of z (1 = no inflation).")
@click.option("--block-kb", type=POSITIVE, default=1000, show_default=True, help="LD blocks: R is the panel's correlation within each bin of this size, 0 across.")
@click.option("--threshold-feature", default=None, metavar="NAME", help="Feature of the threshold truth (default: the first that varies).")
@click.option("--threshold-quantile", type=FRACTION_OPEN, default=0.9, show_default=True, help="Quantile of that feature where the threshold truth steps up.")
@click.option("--feature-window", type=click.IntRange(min=2), default=256, show_default=True, help="Window (bp) of per-base features around each variant.")
@click.option("--ld-region", default=None, metavar="CHR:START-END", help="Use only this region of the genotype panel (PLINK or VCF/BCF; a VCF/BCF panel needs an index).")
@click.option("--n-chroms", type=click.IntRange(1, 22), default=8, show_default=True, help="motif: chromosomes (named 1..N).")
@click.option("--blocks-per-chrom", type=click.IntRange(min=1), default=50, show_default=True, help="motif: LD blocks per chromosome (15 kb each, 20 kb apart).")
@click.option("--variants-per-block", type=click.IntRange(2, 150), default=50, show_default=True, help="motif: variants drawn per block (those with MAF < 0.05 in the panel are then dropped).")
@click.option("--n-ref", type=click.IntRange(min=10), default=400, show_default=True, help="motif: people in the simulated panel (its LD is the GWAS's: in-sample).")
@click.option("--causal-fraction", type=FiniteFloat(0, 1, min_open=True), default=0.7, show_default=True, help="motif: share of blocks with one causal variant.")
@click.option("--effect-z", type=POSITIVE, default=12.0, show_default=True, help="motif: expected |z| of a causal variant.")
@click.option("--motif", "motifs", multiple=True, metavar="ACGT...", help="motif: a motif planted 3-39 bp from each causal variant (repeatable; 6-12 bases)  [default: GATTACAGCC, TGCCGGAACT]")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object on stdout.")
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="Directory to write (sumstats, truth, simulation.json; motif: also genome.fa, panel.bed/.bim/.fam, variants.vcf).")
@click.pass_context
@user_errors
def simulate(ctx, ld, truth, annotations, fasta, h2, n_gwas, alpha, log_sd, sigma2, block_kb, threshold_feature,
             threshold_quantile, feature_window, ld_region, n_chroms, blocks_per_chrom, variants_per_block, n_ref,
             causal_fraction, effect_z, motifs, seed, as_json, out):
    """Simulate summary statistics with a known prior from a genotype panel, or (--truth
    motif) a whole GWAS whose causal variants are marked by DNA motifs."""
    if truth == "motif":
        given = _explicit(ctx, _PANEL_ONLY)
        if given:
            raise UserError(f"option {_option_name(ctx, given[0])}: not used by --truth motif (it simulates its own "
                            "genome, panel and causal variants); leave it out")
        from .stages.simulate_motif import MOTIFS, run_simulate_motif

        summary = run_simulate_motif(out, n_chroms=n_chroms, blocks_per_chrom=blocks_per_chrom,
                                     variants_per_block=variants_per_block, n_ref=n_ref,
                                     causal_fraction=causal_fraction, effect_z=effect_z, n_gwas=n_gwas,
                                     motifs=motifs or MOTIFS, seed=seed)
    else:
        given = _explicit(ctx, _MOTIF_ONLY)
        if given:
            raise UserError(f"option {_option_name(ctx, given[0])}: only --truth motif uses it")
        if ld is None:
            raise UserError(f"option --ld: --truth {truth} needs a genotype panel (PLINK prefix or VCF/BCF)")
        from .stages.simulate import run_simulate

        summary = run_simulate(ld, out, truth=truth, h2=h2, n_gwas=n_gwas, alpha=alpha, sigma2=sigma2,
                               log_sd=log_sd, block_kb=block_kb, seed=seed, annotations=annotations, fasta=fasta,
                               feature_window=feature_window, ld_region=ld_region,
                               threshold_feature=threshold_feature, threshold_quantile=threshold_quantile,
                               progress=not as_json)
    if as_json:
        click.echo(json.dumps(summary))
    else:
        from .ui import print_summary

        print_summary("simulate", {k: v for k, v in summary.items() if k not in ("network",)})


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout.")
@user_errors
def plugins(as_json):
    """List the loaded plugins and what each registered."""
    from .plugins import describe_plugins

    records = describe_plugins()
    if as_json:
        click.echo(json.dumps({"plugins": records}))
        return
    from .ui import console, print_plugins

    print_plugins(records)
    # input formats (register_sumstats_formats, register_ld_formats): one row per plugin
    rows = [(r["name"], ", ".join(r.get("sumstats_formats", [])), ", ".join(r.get("ld_formats", [])))
            for r in records if r.get("sumstats_formats") or r.get("ld_formats")]
    if rows:
        from rich.table import Table

        table = Table(title="input formats (varfx ingest)")
        for col in ("plugin", "sumstats formats", "LD formats"):
            table.add_column(col)
        for row in rows:
            table.add_row(*row)
        console().print(table)


@cli.command()
@click.argument("dataset", type=click.Path(file_okay=False))
@click.option("--variants", type=FiniteFloat(min=1), default=None,
              help="Price a genome of this many variants at the dataset's density (e.g. 12e6)  [default: the dataset's]")
@click.option("--window-kb", type=POSITIVE, default=1000, show_default=True, help="precompute-ld's --window-kb.")
@click.option("--flank-kb", type=NON_NEGATIVE, default=1000, show_default=True, help="precompute-ld's --flank-kb.")
@click.option("--ld-correction", type=click.Choice(["auto", "none", "rank", "share"]), default="auto",
              show_default=True, help="precompute-ld's --ld-correction (it bounds each window's kept rank k).")
@click.option("--max-rank-frac", type=FiniteFloat(0, 1, min_open=True), default=None,
              help="precompute-ld's --max-rank-frac  [default: 0.35]")
@click.option("--eig-floor", type=NON_NEGATIVE, default=None, help="precompute-ld's --eig-floor  [default: 1]")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Dask workers (or local processes) of precompute-ld.")
@click.option("--gpus", type=click.IntRange(min=0), default=0, show_default=True,
              help="GPUs of fit (0: CPU processes, --processes).")
@click.option("--processes", type=click.IntRange(min=1), default=1, show_default=True,
              help="CPU processes of fit when --gpus is 0.")
@click.option("--gpu-speedup", type=POSITIVE, default=None,
              help="One GPU's step against one CPU process's (not measured here; docs/scale.md)  [default: 10]")
@click.option("--prior", "priors", multiple=True, metavar="NAME[:KEY=VALUE,...]",
              help="Prior to price (repeatable; options after a colon)  [default: constant]")
@click.option("--objective", "objectives", multiple=True, help="Window objective (repeatable)  [default: full]")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="AdamW epochs of a network prior  [default: 100]")
@click.option("--holdout-chroms", default="auto", show_default=True, help="fit's --holdout-chroms.")
@click.option("--calibration", type=click.Path(dir_okay=False), default=None,
              help="Costs from this file (--save-calibration, or benchmarks/precompute.py --json) instead of timing.")
@click.option("--save-calibration", type=click.Path(dir_okay=False), default=None,
              help="Write the costs measured (and the steps timed) to this JSON file.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout.")
@user_errors
def plan(dataset, variants, window_kb, flank_kb, ld_correction, max_rank_frac, eig_floor, workers, gpus, processes,
         gpu_speedup, priors, objectives, epochs,
         holdout_chroms, calibration, save_calibration, as_json):
    """Time, memory and disk of each stage before starting (docs/scale.md)."""
    from .stages.plan import DEFAULT_GPU_SPEEDUP, print_plan, run_plan

    result = run_plan(dataset, variants=variants, window_kb=window_kb, flank_kb=flank_kb, workers=workers, gpus=gpus,
                      processes=processes, gpu_speedup=DEFAULT_GPU_SPEEDUP if gpu_speedup is None else gpu_speedup,
                      priors=priors or ("constant",), objectives=objectives or ("full",), epochs=epochs,
                      holdout_chroms=holdout_chroms, calibration=calibration, save_calibration=save_calibration,
                      ld_correction=ld_correction, max_rank_frac=max_rank_frac, eig_floor=eig_floor)
    if as_json:
        click.echo(json.dumps(result))
    else:
        print_plan(result)


@cli.command()
@click.option("-o", "--out", type=click.Path(file_okay=False), default="varfx-demo", show_default=True, help="Working directory for the demo outputs.")
@click.option("--data", type=click.Path(file_okay=False), default=None, help="Example data directory (default: the copy installed with varfx).")
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help="AdamW epochs of the transformer prior (with early stopping on the held-out windows)  [default: 40]")
@click.option("--mil-epochs", type=click.IntRange(min=1), default=None,
              help="AdamW epochs of the fine-mapping (MIL) model  [default: 15]")
@user_errors
def demo(out, data, epochs, mil_epochs):
    """The paper in miniature on the bundled chr22 data: simulate, ingest, precompute-ld,
    fit six priors, compare them on held-out windows, draw figures, write polygenic-score
    weights and annotate a VCF; then fine-mapping by multiple-instance learning on a
    motif simulation (about 10 minutes on a laptop; docs/tutorial.md)."""
    from .stages.demo import run_demo

    run_demo(out, data=data, epochs=epochs, mil_epochs=mil_epochs)


@cli.group()
def store():
    """Inspect a dataset's stores (dataset.h5, windows.h5)."""


@store.command("check")
@click.argument("dataset", type=click.Path(file_okay=False))
@click.option("--strict", is_flag=True, help="A window store without checksums (from an older varfx) is a problem, "
                                            "not a note.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object on stdout.")
@user_errors
def store_check(dataset, strict, as_json):
    """Verify a dataset's stores: dataset.h5 valid, every window's checksum, the windows
    against the plan of the store's window_kb/flank_kb, and the link to the dataset.h5
    they were computed from. Exit 0 when all is well, 1 with one line per problem
    (files in windows.shards/ that the index does not list are warnings: exit 0)."""
    from .stages.store_check import run_store_check, summary_line

    report = run_store_check(dataset, strict=strict)
    if as_json:
        click.echo(json.dumps(report))
    else:
        warnings = [f"warning: {w}" for w in report["warnings"]]
        for line in [summary_line(report), *report["problems"], *warnings, *report["notes"]]:
            click.echo(line.replace("\n", " "))
    if not report["ok"]:
        sys.exit(1)


@cli.group()
def plot():
    """Draw figures (PNG) of models, datasets and evaluations (docs/plots.md).

    Each command writes into -o DIR (made if absent) and prints `wrote PATH` per file.
    """


def _wrote(plots, err=False):
    for p in plots:
        click.echo(f"wrote {getattr(p, 'path', p)}", err=err)


_PLOT_OUT = click.option("-o", "--out", required=True, type=click.Path(file_okay=False),
                         help="Directory for the PNG files (made if absent).")
_PLOT_FASTA = click.option("--fasta", type=click.Path(dir_okay=False), default=None,
                           help="Reference FASTA for a prior that reads DNA  [default: the dataset's]")


def _plot_chroms(value, default):
    if value is None:
        return default
    chroms = parse_chroms(value, "--chroms")
    if chroms == []:
        raise UserError("option --chroms: 'none' leaves nothing to plot; give chromosomes or 'all'")
    return "all" if chroms is None else chroms


@plot.command("curves")
@click.argument("model_dir", type=click.Path(file_okay=False))
@_PLOT_OUT
@user_errors
def plot_curves_cmd(model_dir, out):
    """Training and validation loss per epoch of a fitted model (curves.png)."""
    from .plots import plot_curves

    _wrote([plot_curves(model_dir, out)])


@plot.command("truth")
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.argument("dataset", type=click.Path(file_okay=False))
@click.option("--truth", required=True, type=click.Path(dir_okay=False),
              help="TSV with a SNP column and the true prior variances (the truth.tsv of `varfx simulate`).")
@click.option("--truth-col", default="F", show_default=True, help="Column of the true prior variances.")
@click.option("--chroms", default=None, help="Chromosomes ('all', '21,22')  [default: the model's held-out ones, else all]")
@_PLOT_FASTA
@_PLOT_OUT
@user_errors
def plot_truth_cmd(model_dir, dataset, truth, truth_col, chroms, fasta, out):
    """Predicted against true log f, with the identity line and the RMSE (truth.png)."""
    from .plots import plot_truth

    _wrote([plot_truth(model_dir, dataset, truth, out, truth_col=truth_col, chroms=_plot_chroms(chroms, None),
                       fasta=fasta)])


@plot.command("region")
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.argument("dataset", type=click.Path(file_okay=False))
@click.option("--region", required=True, metavar="CHR:START-END", help="Region, e.g. 22:16000000-17000000 (1-based, inclusive).")
@click.option("--features", default=None, metavar="NAME,...",
              help="Features to draw (NAME.COLUMN, or NAME for all of an entry's)  [default: every varying one, at most 12]")
@_PLOT_FASTA
@_PLOT_OUT
@user_errors
def plot_region_cmd(model_dir, dataset, region, features, fasta, out):
    """Predicted enrichment f / mean f along a region over the input features and -log10 p
    (region_CHR_START_END.png)."""
    from .plots import plot_region

    names = [x.strip() for x in features.split(",") if x.strip()] if features else None
    _wrote([plot_region(model_dir, dataset, region, out, features=names, fasta=fasta)])


@plot.command("compare")
@click.argument("eval_json", nargs=-1, required=True, type=click.Path(dir_okay=False, exists=True))
@_PLOT_OUT
@user_errors
def plot_compare_cmd(eval_json, out):
    """Bars of models with +-1 SE from `varfx evaluate --json` output: one comparison, or
    single-model results (one per file, a JSON list, or one per line) (compare.png)."""
    from .plots import plot_compare

    _wrote([plot_compare(list(eval_json), out)])


@plot.command("ldsr")
@click.argument("dataset", type=click.Path(file_okay=False))
@click.argument("model_dir", required=False, type=click.Path(file_okay=False))
@click.option("--chroms", default=None, help="Chromosomes ('all', '21,22')  [default: all]")
@click.option("--bins", "n_bins", type=click.IntRange(min=2), default=50, show_default=True,
              help="Equal-count LD-score bins.")
@_PLOT_FASTA
@_PLOT_OUT
@user_errors
def plot_ldsr_cmd(dataset, model_dir, chroms, n_bins, fasta, out):
    """Mean chi2 in LD-score bins with the LD score regression line and, with a model,
    its expected chi2 (ldsr.png)."""
    from .plots import plot_ldsr

    _wrote([plot_ldsr(dataset, out, model_dir=model_dir, chroms=_plot_chroms(chroms, "all"), n_bins=n_bins,
                      fasta=fasta)])


def _load_plugin_commands():
    from .plugins import get_plugin_manager

    try:
        get_plugin_manager().hook.register_commands(cli=cli)
    except UserError as exc:
        _fail(str(exc))


def main(argv=None):
    _load_plugin_commands()
    return cli.main(args=argv, prog_name="varfx")


if __name__ == "__main__":  # pragma: no cover
    main()

"""Set-up of a fit: plugins and options, the windows, sigma^2, the typed context.

Everything here runs before the first step and raises :class:`UserError` for what a
user can fix (conflicting options, chromosomes the dataset lacks, missing allele
frequencies with a frequency exponent, a failed LD score regression).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import UserError

SMALL_WINDOW = 3000  # n+ at or below which --threads 0 uses one thread
DEFAULT_HOLDOUT = (6, 7, 8)  # the paper's held-out chromosomes
DEFAULT_ALPHA = 0.7  # the frequency exponent when every variant has a frequency
DEFAULT_SOLVER = "cholesky"


def ldsr_intercept(windows, z_all, n_all, N=None, n_iter=3, intercept=None):
    """sigma^2 and h2 by LD score regression (ldsc-style weights).

    Regress ``chi2_m = Z_m^2`` on the (bias-corrected) LD score ``l_m`` of each core
    variant: ``E[chi2_m] = n_m h2 l_m / M + sigma^2`` with ``n_m`` the variant's own
    sample size (meta-analyses mix sample sizes; the median would mis-weigh them),
    weighted by ``1 / (l (1 + n h2 l / M)^2)`` (down-weighting high-LD variants, whose
    chi2 are correlated, and the heteroskedasticity of chi2), re-weighted ``n_iter``
    times with the current h2.  With ``intercept`` given (``--sigma2``) only the slope is
    fitted, with the intercept fixed there.  ``N`` is used only for variants without a
    sample size.  Returns ``(intercept, h2)``.
    """
    idx = np.concatenate([w.core_idx for w in windows])
    l = np.concatenate([w.ld_score for w in windows]).astype(np.float64)
    chi2 = np.asarray(z_all, dtype=np.float64)[idx] ** 2
    n = np.asarray(n_all, dtype=np.float64)[idx]
    if N is not None:
        n = np.where(np.isfinite(n) & (n > 0), n, float(N))
    ok = np.isfinite(chi2) & np.isfinite(l) & np.isfinite(n) & (n > 0)
    l, chi2, n = np.maximum(l[ok], 1.0), chi2[ok], n[ok]
    M = len(l)
    if M < 10:
        raise UserError(f"too few variants ({M}) to estimate --sigma2 by LD score regression; pass --sigma2")
    x = n * l / M  # E[chi2] = h2 * x + sigma^2
    a0 = 1.0 if intercept is None else float(intercept)
    h2 = max((chi2.mean() - a0) / x.mean(), 0.0)
    a = a0
    for _ in range(n_iter):
        w = 1.0 / (l * (1.0 + h2 * x) ** 2)
        if intercept is None:
            X = np.stack([np.ones_like(x), x], 1)
            a, slope = np.linalg.solve(X.T @ (w[:, None] * X), X.T @ (w * chi2))
        else:
            slope = float(np.sum(w * x * (chi2 - a)) / np.sum(w * x * x))
        h2 = max(float(slope), 0.0)
    return float(a), float(h2)


#: model.json's ``sigma2_source`` for fit's default rule (see :func:`default_sigma2`):
#: the intercept itself, or 1 where the intercept was below 1
SIGMA2_INTERCEPT = "ldsr-intercept"
SIGMA2_FLOOR = "ldsr-intercept below 1: 1"
DEFAULT_SIGMA2_SOURCES = (SIGMA2_INTERCEPT, SIGMA2_FLOOR)


def default_sigma2(windows, z_all, n_all, N=None):
    """fit's default sigma^2: the LD-score-regression intercept, but at least 1.

    The intercept estimates the z-scores' noise variance, inflated by confounding
    (ldsc's reading).  A value below 1 would make every z less noisy than a calibrated
    test's; it comes from the regression's own error or misfit (genomic control aside),
    and the full likelihood's h2 moves strongly with sigma^2: in simulations with the
    GWAS's own LD (small regions, high power per variant) the intercept was 0.3-0.7
    where the truth is 1, and h2 came out 1.1-3.8x the truth at it, 0.83-1.03x at 1
    (docs/benchmarks.md, "The default of 2026-12-02: fit's own sigma2").  So 1 is used
    then (PRS-CS, LDpred2 and SuSiE-RSS assume 1 throughout), and an intercept above 1
    is kept.

    Returns ``(sigma2, h2, intercept, source)``; ``h2`` is LD score regression's with the
    intercept fixed at the returned sigma^2 (the fit's starting point)."""
    intercept, h2 = ldsr_intercept(windows, z_all, n_all, N)
    if intercept >= 1.0:
        return intercept, h2, intercept, SIGMA2_INTERCEPT
    _, h2 = ldsr_intercept(windows, z_all, n_all, N, intercept=1.0)
    return 1.0, h2, intercept, SIGMA2_FLOOR


def select(windows, holdout, regions=()):
    """(training, validation) windows: held-out chromosomes validate, and so do the
    windows whose core starts inside a held-out region; empty windows (k = 0: every
    eigen-direction dropped) take part in neither.

    A training window whose flanks reach a validating window's core variants is left
    out of both (a buffer): its likelihood would read the held-out variants' z, and the
    held-out likelihood would no longer be out of sample.  Chromosomes are far apart,
    so only regions make buffers."""
    def held(w):
        return w.chrom in holdout or any(r.code == w.chrom and r.contains([w.chrom], [max(w.start, 1)])[0]
                                         for r in regions)

    val = [w for w in windows if held(w) and w.k > 0]
    held_core = np.concatenate([np.asarray(w.core_idx) for w in val]) if val else np.zeros(0, np.int64)
    train = [w for w in windows if not held(w) and w.k > 0
             and not (len(held_core) and np.isin(np.asarray(w.plus_idx), held_core).any())]
    return train, val


def resolve_holdout_regions(values, windows) -> list:
    """``--holdout-region`` texts -> :class:`varfx.genome.GenomeRegion` objects, each
    holding the start of at least one window's core (else a one-line error naming the
    region and the windows there are)."""
    from ..genome import parse_region

    regions = [parse_region(v, "--holdout-region") for v in values or ()]
    for r in regions:
        if not any(w.chrom == r.code and r.contains([w.chrom], [max(w.start, 1)])[0] for w in windows):
            on = sorted({w.chrom for w in windows})
            raise UserError(f"option --holdout-region: no window's core starts in {r.text} (the window store has "
                            f"chromosomes {', '.join(map(str, on))}; a window is held out when its core starts "
                            "in the region)")
    return regions


def resolve_holdout(value, available) -> list[int]:
    """``--holdout-chroms`` against the dataset's chromosomes.

    None or ``'auto'`` (the default): chromosomes 6, 7, 8 where the dataset has them and
    leaves others to train on, else none (a one-chromosome dataset trains on it all).
    A string is parsed by :func:`varfx.cli_types.parse_chroms` (``'all'`` holds out every
    chromosome, which leaves nothing to train on: an error, never a silent 'none');
    a list is checked the same way."""
    from ..cli_types import parse_chroms

    available = sorted(int(c) for c in available)
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        held = [c for c in DEFAULT_HOLDOUT if c in available]
        return held if len(held) < len(available) else []
    if isinstance(value, str):
        return parse_chroms(value, "--holdout-chroms", available)
    return parse_chroms(",".join(str(int(c)) for c in value) or "none", "--holdout-chroms", available)


def resolve_alpha(alpha, freq):
    """``--alpha`` as used: ``'auto'`` is 0.7 when every variant has an allele frequency
    and 0 (no frequency factor) when some do not (LDSC sumstats with a UKBB/PolyFun LD
    reference carry none).  Returns ``(alpha, note or None)``."""
    n_missing = int((~np.isfinite(freq)).sum())
    if isinstance(alpha, str) and alpha.strip().lower() == "auto":
        if n_missing == 0:
            return DEFAULT_ALPHA, None
        return 0.0, (f"--alpha auto: {n_missing} of {len(freq)} variants have no allele frequency, "
                     "so the frequency factor is off (alpha 0)")
    return alpha, None


def note(message: str) -> None:
    """A one-line note on stderr (stdout carries JSON only)."""
    print(f"Note: {message}", file=sys.stderr)


@dataclass
class FitSetup:
    """Everything a training loop needs, resolved from the options and the dataset."""

    dataset: str
    prior_name: str
    solver_name: str | None
    prior_cls: Any
    prior_opts: dict
    objective: Any
    solver: Any
    solver_opts: dict
    module: Any
    context: Any
    train: list
    val: list
    holdout: list  # the held-out chromosomes, as resolved
    batch: dict  # per-variant prior inputs (all variants)
    track_shape: tuple | None
    sigma2: float
    sigma2_source: str
    s2: Any  # sigma^2 / N as a tensor of the training dtype
    N: float
    h2_ldsr: float
    windows_mb: float
    notes: list = field(default_factory=list)
    alpha_source: str = "option"
    ldsr_intercept: float | None = None  # the LD-score-regression intercept (fit's default rule read it)
    bag_counts: dict = field(default_factory=dict)  # bag objectives: bags and pools, training and held out
    fasta: dict | None = None  # the FASTA a prior that reads DNA reads (store.variants.fasta_record)
    context_dtype: str = "float64"  # the training dtype (of the factors read per batch)
    holdout_regions: list = field(default_factory=list)  # --holdout-region texts (their windows validate)
    n_buffer_windows: int = 0  # training windows left out: their flanks reach held-out cores
    #: True when the windows in :attr:`train` (and :attr:`val`) are metadata only and each
    #: rank reads the factors of its share when it needs them: with ``--loader-workers``
    #: and with more than one process (so a rank holds ~1/world of the store, not all)
    streamed: bool = False
    _val_mine: list | None = None

    def load(self, windows) -> list:
        """``windows`` with their factors (read from the store when :attr:`streamed`)."""
        if not self.streamed or not windows:
            return list(windows)
        from ..store.windows import WindowBatches

        from .loop import _to

        dev = self.batch["freq"].device
        got, _ = WindowBatches(self.dataset, [[w.index for w in windows]], self.context_dtype)[0]
        return [_to(w, dev) for w in got]

    def val_share(self, dist) -> list:
        """This rank's held-out windows with their factors (read once, then kept)."""
        if self._val_mine is None:
            self._val_mine = self.load(dist.share(self.val))
        return self._val_mine

    def rows_for(self, windows):
        """``(lo, tracks)`` of the per-base tracks of ``windows``' variants when they are
        read per batch (:attr:`track_shape` set), else None."""
        if self.track_shape is None or not windows:
            return None
        from ..store.dataset import open_dataset
        from ..store.variants import track_rows

        lo = min(int(w.plus_idx.min()) for w in windows)
        with open_dataset(self.dataset) as h5:
            return lo, track_rows(h5, lo, max(int(w.plus_idx.max()) for w in windows) + 1)

    @property
    def n_train_variants(self) -> int:
        return self.objective.batch_size(self.train)

    @property
    def n_val_variants(self) -> int:
        return self.objective.batch_size(self.val)

    def log_f_of(self, amp=False, rows=None):
        """``idx -> log f`` of the prior at the dataset's variants ``idx`` (float64).

        ``amp``: the prior's forward runs under autocast (bfloat16) and its output is
        cast back, so the linear algebra always runs in the training dtype.  ``rows``:
        ``(lo, tracks)``, the per-base tracks of variants ``lo, lo+1, ...`` read by a
        loader when :attr:`batch` does not hold them."""
        import contextlib

        import torch

        module, batch = self.module, self.batch
        dev = batch["freq"].device

        def evaluate(idx):
            sub = {k: v[torch.as_tensor(idx, device=dev)] for k, v in batch.items()}
            if rows is not None:
                lo, tracks = rows
                sub["window"] = tracks[torch.as_tensor(idx - lo)].to(dev)
            ctx = torch.autocast(dev.type, dtype=torch.bfloat16) if amp else contextlib.nullcontext()
            with ctx:
                log_f = module(sub)
            return log_f.to(torch.float64)

        return evaluate


def prepare(dataset, *, prior, objective, solver, prior_options, solver_options, objective_options,
            alpha, sigma2, holdout_chroms, device, dtype, threads, loader_workers, seed=0, fasta=None,
            holdout_regions=(), world=1) -> FitSetup:
    import torch

    from ..api import FitContext
    from ..plugins import lookup
    from ..store.dataset import open_dataset
    from ..store.variants import resolve_fasta, variant_batch
    from ..store.windows import load_windows

    prior_cls = lookup("priors", prior)
    obj_cls = lookup("objectives", objective)
    prior_opts = prior_cls.parse_options(prior_options)
    if "alpha" in prior_opts and alpha is not None and not (isinstance(alpha, str) and alpha == "auto"):
        raise UserError(f"options --alpha and -p alpha={prior_opts['alpha']} conflict: give one of them")
    solver_obj, solver_opts = None, {}
    if obj_cls.uses_solver:
        solver_cls = lookup("solvers", solver or DEFAULT_SOLVER)
        solver_opts = solver_cls.parse_options(solver_options)
        solver_obj = solver_cls(**solver_opts)
    elif solver is not None or solver_options:
        # a solver for an objective that takes none would be silently ignored
        given = f"--solver {solver}" if solver is not None else f"-s {solver_options[0]}"
        raise UserError(f"option {given}: objective {objective!r} uses no solver")
    # the DNA a prior reads (seqcnn): its length from the options, the FASTA resolved below
    seq_len = prior_cls(**prior_opts).sequence_length()
    if fasta is not None and seq_len == 0:
        raise UserError(f"option --fasta: prior {prior!r} reads no DNA (the FASTA would be ignored)")
    objective_opts = obj_cls.parse_options(objective_options)
    objective_obj = obj_cls(solver=solver_obj, **objective_opts)
    if obj_cls.batch_unit == "bag":
        if holdout_regions:
            raise UserError(f"option --holdout-region: objective {objective!r} trains on bags, which are held out "
                            "by chromosome (--holdout-chroms)")
        return prepare_bags(dataset, prior=prior, prior_cls=prior_cls, prior_opts=prior_opts,
                            objective=objective_obj, alpha=alpha, sigma2=sigma2, holdout_chroms=holdout_chroms,
                            device=device, dtype=dtype, threads=threads, loader_workers=loader_workers, seed=seed,
                            seq_len=seq_len, fasta=fasta)

    streamed = loader_workers > 0 or world > 1
    if streamed:
        # plan with metadata; each rank reads the factors of its own share of a batch
        # when it computes on it (in the loader's worker processes, or in-process with
        # --loader-workers 0), and its share of the held-out windows once, for validation
        windows, wattrs = load_windows(dataset, dtype=dtype, device=device, meta_only=True)
        holdout = set(resolve_holdout(holdout_chroms, wattrs["all_chroms"]))
        regions = resolve_holdout_regions(holdout_regions, windows)
        train, val = select(windows, holdout, regions)
    else:
        windows, wattrs = load_windows(dataset, dtype=dtype, device=device)
        holdout = set(resolve_holdout(holdout_chroms, wattrs["all_chroms"]))
        regions = resolve_holdout_regions(holdout_regions, windows)
        train, val = select(windows, holdout, regions)
    if not train:
        held = f"--holdout-chroms holds out {sorted(holdout)}" + (
            f" and --holdout-region {', '.join(r.text for r in regions)} (with the windows whose flanks reach it)"
            if regions else "")
        raise UserError(f"no training windows: the dataset has chromosomes {wattrs['all_chroms']} and {held}",
                        path=dataset)
    n_buffer = sum(1 for w in windows if w.k > 0) - len(train) - len(val)
    if threads > 0:
        torch.set_num_threads(threads)
    elif str(device) == "cpu" and max(w.n_plus for w in windows) <= SMALL_WINDOW and loader_workers == 0:
        # Small windows: intra-op threads cost more than they give (measured 2x slower
        # with 2 threads on 36 chr22 windows of n+ ~ 600, and ~30x slower when another
        # process loads the cores, because idle OpenMP threads spin).
        torch.set_num_threads(1)
    N = wattrs["N"]
    with open_dataset(dataset) as h5:
        z_all = h5["variants"]["z"][:]
        n_all = h5["variants"]["n"][:]
        seq_notes, fasta_rec = [], None
        if seq_len > 0:
            fasta_rec = resolve_fasta(h5, fasta, notes=seq_notes)
        # with a loader the per-base tracks stay on disk: each batch reads its rows
        batch = variant_batch(h5, dtype="float64", device=device, tracks=not streamed,
                              sequence_length=seq_len, fasta=fasta_rec["path"] if fasta_rec else None,
                              notes=seq_notes)
        track_shape = None
        if streamed and "features" in h5 and "window" in h5["features"]:
            track_shape = tuple(h5["features"]["window"].shape)
        freq = h5["variants"]["freq"][:]

    notes, alpha_source = list(seq_notes), "option"
    if "alpha" in prior_cls.options:
        if "alpha" in prior_opts:
            alpha_source = "prior option"
        else:
            a, msg = resolve_alpha("auto" if alpha is None else alpha, freq)
            alpha_source = ("auto" if msg is None else "auto: no allele frequencies") \
                if (alpha is None or alpha == "auto") else "option"
            if msg:
                notes.append(msg)
            prior_opts["alpha"] = a if a == "learn" else float(a)
    if prior_opts.get("alpha", 0) != 0 and not np.all(np.isfinite(freq)):
        raise UserError(
            f"{int((~np.isfinite(freq)).sum())} variants have no allele frequency in the dataset; "
            "the frequency factor needs them (use --alpha 0, or --alpha auto)", path=dataset)

    intercept = None
    if sigma2 is None:
        sigma2_value, h2_ldsr, intercept, sigma2_source = default_sigma2(train, z_all, n_all, N)
        if sigma2_source == SIGMA2_FLOOR:
            notes.append(f"LD score regression's intercept is {intercept:.3g}, below 1: sigma^2 = 1 "
                         "(a calibrated test's noise; --sigma2 X sets it)")
    else:
        # only the starting point needs h2: fit the slope with the intercept fixed at
        # the given sigma^2, and start from a small h2 when even that is impossible
        sigma2_value, sigma2_source = float(sigma2), "option"
        try:
            _, h2_ldsr = ldsr_intercept(train, z_all, n_all, N, intercept=sigma2_value)
        except UserError:
            h2_ldsr = 0.0
    s2 = torch.tensor(sigma2_value / N, dtype=getattr(torch, dtype), device=device)

    M_train = objective_obj.batch_size(train)
    per_snp = max(h2_ldsr, 1e-3) / M_train
    alpha0 = prior_opts.get("alpha", 0)
    if alpha0:
        from ..nn.priors import ALPHA_START

        a = ALPHA_START if alpha0 == "learn" else alpha0
        p = np.clip(freq, 1e-6, 1 - 1e-6)
        # start at the regression's h2: f = c (p(1-p))^a summed over variants
        per_snp /= float(np.mean((p * (1 - p)) ** a))
    n_features = int(batch["features"].shape[1]) if "features" in batch else 0
    shape = tuple(batch["window"].shape) if "window" in batch else track_shape
    context = FitContext(init_f=per_snp, n_features=n_features,
                         n_tracks=int(shape[2]) if shape is not None else 0,
                         window=int(shape[1]) if shape is not None else 0,
                         N=float(N), h2=float(h2_ldsr), n_train_variants=M_train)
    objective_obj.setup(context)
    for name in prior_cls.recorded_options:  # part of the model: recorded resolved (Prior)
        prior_opts.setdefault(name, prior_cls.options[name].default)
    module = prior_cls(**prior_opts).module(context).to(device)
    itemsize = 8 if dtype == "float64" else 4
    return FitSetup(
        dataset=str(dataset), prior_name=prior, solver_name=(solver or DEFAULT_SOLVER) if solver_obj else None, prior_cls=prior_cls, prior_opts=prior_opts,
        objective=objective_obj, solver=solver_obj, solver_opts=solver_opts, module=module, context=context,
        train=train, val=val, holdout=sorted(holdout), holdout_regions=[r.text for r in regions],
        n_buffer_windows=n_buffer, batch=batch, track_shape=track_shape, sigma2=sigma2_value,
        sigma2_source=sigma2_source, s2=s2, N=N, h2_ldsr=h2_ldsr, notes=notes, alpha_source=alpha_source,
        ldsr_intercept=intercept,
        fasta=fasta_rec, windows_mb=round(sum(itemsize * (w.n_plus * w.k + w.k * w.n) for w in windows) / 2**20, 2),
        streamed=streamed, context_dtype=dtype,
    )


def prepare_bags(dataset, *, prior, prior_cls, prior_opts, objective, alpha, sigma2, holdout_chroms, device,
                 dtype, threads, loader_workers, seed, seq_len=0, fasta=None) -> FitSetup:
    """The set-up of an objective over bags (``batch_unit = "bag"``: ``mil``, ``distil``).

    Reads ``DATASET/bags.h5`` (checked against the dataset), holds out chromosomes as for
    windows but resolved against the chromosomes that have positive bags, and splits the
    bags AND the negative pool by them: nothing on a held-out chromosome reaches
    training.  No windows.h5 and no sigma^2 (the loss is not a likelihood of the summary
    statistics).  The prior's output is read as a logit: it starts at 0 (``init_f`` 1).
    """
    import torch

    from ..api import FitContext
    from ..store.bags import load_bags
    from ..store.dataset import open_dataset
    from ..store.variants import resolve_fasta, variant_batch

    name = objective.name
    if sigma2 is not None:
        raise UserError(f"option --sigma2: objective {name!r} trains on bags and has no noise variance")
    if loader_workers > 0:
        raise UserError(f"option --loader-workers: objective {name!r} trains on bags, which are read whole "
                        "(use --loader-workers 0)")
    bags = load_bags(dataset)
    with_bags = sorted({int(b.chrom) for b in bags.positives})
    if not with_bags:
        raise UserError("bags.h5 has no positive bags (rebuild it with `varfx bags`)", path=dataset)
    holdout = sorted(resolve_holdout(_only_bag_chroms(holdout_chroms, with_bags), with_bags))
    train_set, val_set = bags.select(exclude=holdout), bags.select(chroms=holdout)
    if not train_set.positives:
        raise UserError(f"no training bags: the positive bags are on chromosomes {with_bags} and "
                        f"--holdout-chroms holds out {holdout}", path=dataset)
    if threads > 0:
        torch.set_num_threads(threads)
    with open_dataset(dataset) as h5:
        # the prior's inputs, as for windows (with the DNA around each variant for a prior
        # that reads it)
        seq_notes, fasta_rec = [], None
        if seq_len > 0:
            fasta_rec = resolve_fasta(h5, fasta, notes=seq_notes)
        batch = variant_batch(h5, dtype="float64", device=device, tracks=True, sequence_length=seq_len,
                              fasta=fasta_rec["path"] if fasta_rec else None, notes=seq_notes)
        freq = h5["variants"]["freq"][:]
        bp = h5["variants"]["bp"][:]
        z_all = h5["variants"]["z"][:]
        n_all = h5["variants"]["n"][:]
    notes, alpha_source = list(seq_notes), "option"
    if "alpha" in prior_cls.options:
        if "alpha" in prior_opts:
            alpha_source = "prior option"
        elif alpha is None or (isinstance(alpha, str) and alpha.strip().lower() == "auto"):
            # (p(1-p))^alpha is a model of effect variances; added to a logit it would be a
            # fixed, unlearnt feature, so a bag objective starts without it
            prior_opts["alpha"], alpha_source = 0.0, "auto: bag objective"
        else:
            prior_opts["alpha"] = alpha if alpha == "learn" else float(alpha)
    if prior_opts.get("alpha", 0) != 0 and not np.all(np.isfinite(freq)):
        raise UserError(
            f"{int((~np.isfinite(freq)).sum())} variants have no allele frequency in the dataset; "
            "the frequency factor needs them (use --alpha 0, or --alpha auto)", path=dataset)
    members = np.unique(np.concatenate([b.variants for b in train_set.positives] + [train_set.negatives]))
    n_features = int(batch["features"].shape[1]) if "features" in batch else 0
    shape = tuple(batch["window"].shape) if "window" in batch else None
    N = float(np.nanmedian(n_all)) if np.isfinite(n_all).any() else 0.0
    context = FitContext(init_f=1.0, n_features=n_features,
                         n_tracks=int(shape[2]) if shape is not None else 0,
                         window=int(shape[1]) if shape is not None else 0,
                         N=N, h2=0.0, n_train_variants=int(len(members)))
    objective.setup(context)
    module = prior_cls(**prior_opts).module(context).to(device)
    train, val = objective.prepare_bags(train_set, val_set, dataset=dataset, batch=batch, bp=bp, seed=seed, z=z_all)
    counts = {"train_bags": len(train_set.positives), "val_bags": len(val_set.positives),
              "train_negative_pool": int(len(train_set.negatives)),
              "val_negative_pool": int(len(val_set.negatives)), "val_units": len(val)}
    return FitSetup(
        dataset=str(dataset), prior_name=prior, solver_name=None, prior_cls=prior_cls, prior_opts=prior_opts,
        objective=objective, solver=None, solver_opts={}, module=module, context=context, train=train, val=val,
        holdout=holdout, batch=batch, track_shape=None, sigma2=None, sigma2_source="none (bag objective)",
        s2=None, N=N, h2_ldsr=0.0, windows_mb=0.0, notes=notes, alpha_source=alpha_source, bag_counts=counts,
        fasta=fasta_rec)


def _only_bag_chroms(value, with_bags):
    """``--holdout-chroms`` as given, after refusing a chromosome without positive bags
    with a message that says so (the generic one would say the dataset lacks it)."""
    from ..cli_types import parse_chroms

    if value is None or (isinstance(value, str) and value.strip().lower() in ("auto", "all")):
        return value
    text = value if isinstance(value, str) else (",".join(str(int(c)) for c in value) or "none")
    missing = [c for c in parse_chroms(text, "--holdout-chroms") if c not in with_bags]
    if missing:
        raise UserError(f"option --holdout-chroms: chromosome {', '.join(map(str, missing))} has no positive bags "
                        f"in bags.h5 (the bags are on chromosomes {', '.join(map(str, with_bags))})")
    return value

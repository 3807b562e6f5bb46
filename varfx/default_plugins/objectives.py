"""Built-in objectives."""

from __future__ import annotations

import math

from varfx import hookimpl
from varfx.api import BagObjective, Objective, Option
from varfx.errors import UserError


class FullLikelihood(Objective):
    """The exact Gaussian marginal likelihood of the window's summary statistics.

    In the reduced form (DESIGN §1, docs/math.md) the window's ``z = P beta_hat`` is
    ``N(0, C)`` with ``C = sigma2 I + G^T F G``, and

        -log p(beta_hat) = 0.5 * (z^T C^-1 z + log|C| + log|Lambda| + k log 2 pi)

    (a density on the range of ``R_(i),(i)``).  The solver plugin computes the first
    two terms and their gradient.
    """

    name = "full"
    description = "exact marginal likelihood of the summary statistics, reduced k-space form"
    uses_solver = True

    def window_loss(self, window, f_plus, sigma2):
        if self.solver is None:
            from varfx.errors import UserError

            raise UserError("objective 'full' needs a solver (--solver)")
        core = self.solver.loss(window.G, window.z, f_plus, sigma2)
        return 0.5 * (core + window.logdet_lambda + window.k * math.log(2 * math.pi))


class LDScoreRegression(Objective):
    """LD score regression with a flexible prior (DeepWAS App. A.4).

    For each core variant ``m`` of the window,

        E[chi2_m] = N sum_{m' in (i)+} f_m' r2_mm' + sigma^2,    chi2_m = N beta_hat_m^2,

    fitted by weighted least squares, ``0.5 sum_m w_m (chi2_m - E[chi2_m])^2``, with the
    paper's (and ldsc's) weights ``w_m = 1/l_m * 1/(N h2 l_m / M + 1)^2``: ``1/l_m``
    down-weights variants whose chi2 are correlated with many others, and the second
    factor is the inverse variance of a scaled chi2(1) under a constant per-SNP
    variance ``h2/M``.  ``h2/M`` is the option ``h2_per_snp``; ``varfx fit`` sets it from
    its initial LD score regression when it is 0 (the default).  The weights are fixed
    (they do not depend on f), so the loss is an ordinary function of f and its
    gradient is exact.

    ``r2`` comes from the stored window factors, ``R_+,(i) = G diag(lambda) P``
    (eigen-directions dropped at precompute are left out), and is bias-corrected to
    ``r2 - (1 - r2)/(n_ref - 2)`` when R came from a panel of ``n_ref`` people, as in
    ldsc.  The diagonal (``r2 = 1``) is not corrected.
    """

    name = "ldsr"
    description = "LD score regression with a flexible prior (weighted least squares on chi2)"
    uses_solver = False
    # the loss is twice a Gaussian quasi -log-likelihood of the chi2 under the weights'
    # own model (var chi2 = 2 E[chi2]^2 at intercept 1, 1/l independent observations per
    # variant): docs/math.md, "A prior on the GLM's coefficients"
    nll_scale = 0.5
    options = {"h2_per_snp": Option(float, 0.0, "h2/M in the regression weights (0: set by fit)")}

    def setup(self, context):
        super().setup(context)
        if not self.config["h2_per_snp"] and context.n_train_variants:
            # the initial LD score regression's per-SNP h2 (floored: a null trait's
            # regression h2 of ~0 would give the weights no second factor at all)
            self.config["h2_per_snp"] = max(context.h2, 1e-3) / context.n_train_variants

    def r2(self, window):
        """(n, n+) squared correlations of the core variants with (i)+ (cached)."""
        cached = window.objective_cache.get("ldsr_r2")
        if cached is not None:
            return cached
        import torch

        # G = R_+,(i) D^1/2 V Lambda^-1/2 with D = diag(n_m / N), so row m of r2 is
        # (n_m / N) r2_m (exact for a full-rank block): N r2 f = n_m sum r2 f, the
        # expected chi2 of variant m.  d = n_m / N (1 where the store does not say).
        R = (window.G * window.eigvals_t(window.G)) @ window.P  # (n+, n)
        r2 = (R * R).T
        d = window.n_scale
        d = (torch.ones(window.n, dtype=r2.dtype, device=r2.device) if d is None
             else torch.as_tensor(d, dtype=r2.dtype, device=r2.device))
        n_ref = int(window.n_ref or 0)
        if n_ref > 2:  # d (r2 - q (1 - r2) / (n_ref - 2)) on the scaled r2
            # q_j = (V Lambda V^T)_jj = sum_l lambda_l^2 P_lj^2, the share of variant j's
            # variance in the kept components: r2 read back through them carries that share
            # of the panel's noise (q = 1 up to the eigen-threshold's dropped ~0.3% for the
            # plain factors; ~0.8 on average under precompute-ld's rank cap, docs/math.md)
            lam = window.eigvals_t(window.P)
            q = ((lam * lam)[:, None] * window.P * window.P).sum(0).clamp(0.0, 1.0)
            # not where r2 is 0 (up to the rounding of G Lambda P, r2 ~ 1e-32): the LD
            # correction set those core-flank pairs to 0 as the panel's noise, so no noise
            # bias is left there to remove
            r2 = torch.where(r2 > 1e-20, r2 - q[:, None] * (d[:, None] - r2) / (n_ref - 2), torch.zeros_like(r2))
        r2[torch.arange(window.n), torch.as_tensor(window.core_pos)] = d
        window.objective_cache["ldsr_r2"] = r2
        return r2

    def expected_chi2(self, window, f_plus, sigma2):
        """``E[chi2]`` of the core variants: ``N (r2 f + sigma2)`` (``sigma2`` = sigma^2/N)."""
        return window.N * (self.r2(window) @ f_plus + sigma2)

    def window_loss(self, window, f_plus, sigma2):
        import torch

        N = window.N
        chi2 = N * window.beta ** 2
        pred = self.expected_chi2(window, f_plus, sigma2)
        ld = torch.as_tensor(window.ld_score, dtype=pred.dtype, device=pred.device).clamp_min(1.0)
        w = 1.0 / (ld * (N * self.config["h2_per_snp"] * ld + 1.0) ** 2)
        return 0.5 * (w * (chi2 - pred) ** 2).sum()


# ------------------------------------------------------------------ multiple-instance learning

POOLS = ("max", "lse", "gmean", "isr")


def _choice(*values):
    """An option type accepting one of ``values`` (its name is what an error expects)."""

    def parse(text):
        text = str(text).strip().lower()
        if text not in values:
            raise ValueError(text)
        return text

    parse.__name__ = f"one of {'|'.join(values)}"
    return parse


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


_positive_int.__name__ = "a whole number >= 1"


def _positive_float(text):
    value = float(text)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(text)
    return value


_positive_float.__name__ = "a positive number"


def _non_negative_float(text):
    value = float(text)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(text)
    return value


_non_negative_float.__name__ = "a number >= 0"


def log1mexp(a):
    """``log(1 - exp(a))`` for ``a <= 0``, accurate on both sides of ``-log 2``
    (Maechler's switch); each branch sees only inputs where it is finite, so neither
    puts a NaN into the other's gradient."""
    import torch

    cut = -math.log(2.0)
    near = torch.log(-torch.expm1(a.clamp(min=cut)))
    far = torch.log1p(-torch.exp(a.clamp(max=cut)))
    return torch.where(a > cut, near, far)


def _segment_max(x, seg, n_bags):
    import torch

    return torch.full((n_bags,), -math.inf, dtype=x.dtype, device=x.device).scatter_reduce(
        0, seg, x, "amax", include_self=False)


def _segment_lse_mean(a, seg, sizes):
    """``log mean exp(a)`` over each bag's members (stable: shifted by the bag maximum,
    which is detached; the expression does not depend on the shift, so the gradient is
    exact)."""
    import torch

    n_bags = len(sizes)
    m = _segment_max(a, seg, n_bags).detach()
    s = torch.zeros(n_bags, dtype=a.dtype, device=a.device).index_add(0, seg, torch.exp(a - m[seg]))
    return m + torch.log(s) - torch.log(sizes.to(a.dtype))


#: ``pip_prior``: the prior variance of a causal effect in z units (E z^2 = 1 + 25 at a
#: causal variant: a clearly genome-wide significant hit).  Within a bag only the ratio
#: ``pip_prior / (1 + pip_prior)`` matters, 0.96 at 25: the weights hardly depend on it.
PIP_PRIOR = 25.0


def single_effect_pip(z, prior=PIP_PRIOR):
    """Posterior probability that each member of a bag is its one causal variant, from
    the members' z alone: Wakefield's approximate Bayes factor of one effect of prior
    variance ``prior`` (z scale), ``BF_i = (1 + prior)^-1/2 exp(z_i^2 prior / (2 (1 +
    prior)))``, normalised over the bag (the single-effect posterior of SuSiE or FINEMAP
    with one causal variant and a flat prior over members).  Computed as a softmax, so
    |z| of any size gives finite weights."""
    import numpy as np

    a = np.asarray(z, dtype=np.float64) ** 2 * (prior / (2.0 * (1.0 + prior)))
    w = np.exp(a - a.max())
    return w / w.sum()


def pool_logits(x, seg, sizes, pool: str, r: float = 1.0):
    """Bag logits from instance logits ``x`` concatenated bag after bag (``seg``: the bag
    of each instance, ``sizes``: the bag sizes); no padding.

    - ``max``: ``max_i x_i`` (only the top instance gets gradient);
    - ``lse``: ``(1/r) log mean_i exp(r x_i)``, between the mean (r -> 0) and the
      maximum (r -> inf); a bag of one is its instance;
    - ``gmean``: ``p_bag = (mean_i p_i^r)^(1/r)`` of ``p_i = sigmoid(x_i)``, the
      generalised mean (the maximum as r -> inf), as a logit ``log p - log(1 - p)``;
    - ``isr``: noisy-or ``p_bag = 1 - prod_i (1 - p_i)``: ``log(1 - p_bag) = sum_i
      log sigmoid(-x_i)``, and the logit from it through :func:`log1mexp`.

    Every form is computed in log space, so no probability is rounded to 0 or 1 in
    float64 for logits within a few hundred of 0."""
    import torch
    import torch.nn.functional as F

    n_bags = len(sizes)
    if pool == "max":
        return _segment_max(x, seg, n_bags)
    if pool == "lse":
        return _segment_lse_mean(r * x, seg, sizes) / r
    if pool == "gmean":
        log_p = _segment_lse_mean(r * F.logsigmoid(x), seg, sizes) / r
        return log_p - log1mexp(log_p)
    if pool == "isr":
        log_q = torch.zeros(n_bags, dtype=x.dtype, device=x.device).index_add(0, seg, F.logsigmoid(-x))
        return log1mexp(log_q) - log_q
    raise ValueError(pool)  # options are checked in MultipleInstance.__init__


class MultipleInstance(BagObjective):
    """Multiple-instance learning on GWAS bags (MIFM; docs/mil_objective.md).

    The prior's output for a variant is its instance logit ``x_i``.  A positive bag's
    logit is a pooling of its members' logits (``pool``); a negative bag (drawn from the
    store's negative pool afresh every epoch) likewise.  The loss is binary cross-entropy,
    averaged over positive bags and over negative bags separately:
    ``positive_weight * mean_pos softplus(-z_b) + mean_neg softplus(z_b)``.

    The cold start (only each bag's current top instance gets gradient under max
    pooling, so from a random start it fits whatever feature happens to be on top) is
    handled by ``warmup_epochs`` (the instance-level loss first: every member of a
    positive bag labelled positive, each bag's loss the mean over its members) and/or
    ``anneal`` (lse or gmean with r growing geometrically to ``anneal`` over the pooled
    epochs); the bag-size confound (any rare feature separates a 28-variant bag from one
    variant) by ``negatives=matched`` (each negative bag as large as its positive bag).
    The instance-level loss weighs a positive bag's members by their single-effect
    posterior probability from |z| (``instance_weights=pip``, :func:`single_effect_pip`;
    uniformly with ``uniform``): the members the association itself singles out carry
    the label, which on the planted-motif simulation made the warm-up learn at every
    seed tried (the uniform one failed at one of three: docs/fine-mapping.md).
    The validation loss is always the fit's target loss (the pooled loss at the final r,
    or the instance loss with ``label=instance``), so that epochs compare.
    """

    name = "mil"
    description = "multiple-instance learning on bags of GWAS hits (pooled instance logits, BCE)"
    options = {
        "pool": Option(_choice(*POOLS), "max", "bag pooling of instance logits: max, lse, gmean or isr"),
        "r": Option(_positive_float, 5.0, "lse: smoothing coefficient r; gmean: exponent r (both -> max as r grows)"),
        "anneal": Option(_non_negative_float, 0.0,
                         "lse/gmean: grow r geometrically to this value over the pooled epochs (0: no annealing)"),
        "positive_weight": Option(_positive_float, 1.0, "weight w of the positive bags: loss = w mean_pos + mean_neg"),
        "negatives_per_bag": Option(_positive_int, 1, "negative bags drawn per positive bag every epoch"),
        "negatives": Option(_choice("matched", "single"), "matched",
                            "matched: a negative bag as large as its positive bag; single: one variant each"),
        "warmup_epochs": Option(_non_negative_float, 0.5,
                                "epochs of instance-level loss first (below 1: a fraction of --epochs)"),
        "label": Option(_choice("bag", "instance"), "bag",
                        "bag: the pooled loss; instance: every member of a positive bag positive, the whole fit"),
        "instance_weights": Option(_choice("pip", "uniform"), "pip",
                                   "how the instance-level loss (warm-up, label=instance) weighs a positive bag's "
                                   "members: pip (single-effect posterior from |z|) or uniform (1/n each)"),
        "pip_prior": Option(_positive_float, PIP_PRIOR,
                            "pip: prior variance of a causal variant's effect on the z scale"),
    }

    def __init__(self, solver=None, **options):
        super().__init__(solver=solver, **options)
        c = self.config
        # options given in Python (not through -O) are checked as the command line does
        for key, value in list(c.items()):
            try:
                c[key] = self.options[key].type(str(value))
            except (TypeError, ValueError):
                raise UserError(f"option {key}={value!r} for objective 'mil': expected "
                                f"{self.options[key].type.__name__}") from None
        if c["anneal"] and c["pool"] not in ("lse", "gmean"):
            raise UserError(f"option anneal={c['anneal']:g} for objective 'mil': annealing is for pool=lse or "
                            f"pool=gmean, not pool={c['pool']}")
        if c["anneal"] and not c["anneal"] > c["r"]:
            raise UserError(f"option anneal={c['anneal']:g} for objective 'mil': expected a final r above the "
                            f"starting r={c['r']:g}")
        # the phase of the current epoch: (instance-level loss?, r); the target until
        # start_epoch says otherwise
        self._phase = self._target()

    def prepare_bags(self, train, val, *, dataset, batch, bp, seed, z=None):
        """As :meth:`BagObjective.prepare_bags`; with ``instance_weights=pip`` each positive
        bag also carries its members' single-effect posterior probabilities (from the
        dataset's ``z``), the weights of the instance-level loss."""
        import dataclasses

        import numpy as np

        train_units, val_units = super().prepare_bags(train, val, dataset=dataset, batch=batch, bp=bp, seed=seed)
        if self.config["instance_weights"] != "pip":
            return train_units, val_units
        if z is None:
            raise ValueError("instance_weights=pip needs the variants' z")  # the trainer always passes it
        z = np.asarray(z, dtype=np.float64)
        prior = self.config["pip_prior"]

        def weigh(u):
            return dataclasses.replace(u, member_weight=single_effect_pip(z[u.variants], prior)) if u.label else u

        return [weigh(u) for u in train_units], [weigh(u) for u in val_units]

    def _target(self):
        c = self.config
        return c["label"] == "instance", (c["anneal"] or c["r"])

    def warmup_count(self, epochs: int) -> int:
        w = self.config["warmup_epochs"]
        return int(round(w * epochs)) if w < 1 else int(w)

    def start_epoch(self, epoch, epochs):
        c = self.config
        if c["label"] == "instance":
            self._phase = (True, c["r"])
            return
        warm = self.warmup_count(epochs)
        if warm >= epochs and warm > 0:
            raise UserError(f"option warmup_epochs={c['warmup_epochs']:g} for objective 'mil': the fit has only "
                            f"{epochs} epochs (--epochs), so the pooled loss would never be trained; give fewer "
                            "warm-up epochs, or -O label=instance")
        if epoch < warm:
            self._phase = (True, c["r"])
            return
        r = c["r"]
        if c["anneal"]:
            span = max(1, epochs - 1 - warm)
            r = c["r"] * (c["anneal"] / c["r"]) ** (min(epoch - warm, span) / span)
        self._phase = (False, r)

    def negative_sizes(self, positives):
        k = self.config["negatives_per_bag"]
        if self.config["negatives"] == "matched":
            return [u.n for u in positives for _ in range(k)]
        return [1] * (k * len(positives))

    def weighted(self, units):
        import dataclasses

        P = sum(1 for u in units if u.label)
        Q = len(units) - P
        U = len(units)
        w = self.config["positive_weight"]
        # the means over positive and over negative bags, as a sum over units divided by
        # the number of units (what the trainer divides a batch's sum by)
        return [dataclasses.replace(u, weight=(w * U / P) if u.label else (U / Q)) for u in units]

    def unit_terms(self, units, log_f_of, phase=None):
        """Each unit's unweighted loss (a tensor, one entry per unit) in ``phase``."""
        import torch
        import torch.nn.functional as F

        instance, r = self._phase if phase is None else phase
        x, seg, sizes = self.instance_logits(units, log_f_of)
        label = torch.as_tensor([float(u.label) for u in units], dtype=x.dtype, device=x.device)
        if instance:
            # every member of a bag gets the bag's label; each bag's loss the mean over its
            # members, or their mean weighted by member_weight (pip)
            per = F.binary_cross_entropy_with_logits(x, label[seg], reduction="none")
            if any(u.member_weight is not None for u in units):
                import numpy as np

                w = np.concatenate([u.member_weight if u.member_weight is not None else np.full(u.n, 1.0 / u.n)
                                    for u in units])
                per = per * torch.as_tensor(w, dtype=x.dtype, device=x.device)
                return torch.zeros(len(units), dtype=x.dtype, device=x.device).index_add(0, seg, per)
            return torch.zeros(len(units), dtype=x.dtype, device=x.device).index_add(0, seg, per) / sizes.to(x.dtype)
        z = pool_logits(x, seg, sizes, self.config["pool"], r)
        return F.binary_cross_entropy_with_logits(z, label, reduction="none")

    def batch_loss(self, units, log_f_of, sigma2=None, phase=None):
        import torch

        if not units:
            return 0.0
        terms = self.unit_terms(units, log_f_of, phase)
        weight = torch.as_tensor([u.weight for u in units], dtype=terms.dtype, device=terms.device)
        return (weight * terms).sum()

    def eval_loss(self, units, log_f_of, sigma2=None):
        return self.batch_loss(units, log_f_of, sigma2, phase=self._target())


class Distillation(BagObjective):
    """Distillation of an ensemble (MIFM's recipe; docs/mil_objective.md): the student's
    ``sigmoid(logit)`` fits the mean of the teachers' ``sigmoid(logit)`` by squared error,
    on every member of the positive bags and of negatives drawn afresh every epoch, with
    weight ``top_weight`` on each positive bag's top instance (by the teachers' mean) and
    1 elsewhere; a batch's sum is divided by its number of instances.  The teachers are
    model directories of ``mil`` (or ``distil``) fits on the same dataset; their targets
    are computed once, at set-up, on the student's prior inputs."""

    name = "distil"
    description = "distil an ensemble of MIL fits: MSE to the teachers' mean sigmoid, top instances up-weighted"
    options = {
        "teachers": Option(str, "", "comma-separated model directories of fits on the same dataset"),
        "top_weight": Option(_positive_float, 100.0, "weight of each positive bag's top instance (by the teachers)"),
        "negatives_per_bag": Option(_positive_int, 1, "single-variant negatives drawn per positive bag every epoch"),
    }

    def __init__(self, solver=None, **options):
        super().__init__(solver=solver, **options)
        for key in ("top_weight", "negatives_per_bag"):
            try:
                self.config[key] = self.options[key].type(str(self.config[key]))
            except (TypeError, ValueError):
                raise UserError(f"option {key}={self.config[key]!r} for objective 'distil': expected "
                                f"{self.options[key].type.__name__}") from None
        self.targets = None  # (M,) numpy: the teachers' mean sigmoid for every variant

    def teacher_dirs(self) -> list[str]:
        dirs = [d.strip() for d in str(self.config["teachers"]).split(",") if d.strip()]
        if not dirs:
            raise UserError("objective 'distil' needs its teachers: -O teachers=MODEL_DIR1,MODEL_DIR2,...")
        return dirs

    def prepare_bags(self, train, val, *, dataset, batch, bp, seed, z=None):
        self.targets = self.teacher_targets(dataset, batch)
        return super().prepare_bags(train, val, dataset=dataset, batch=batch, bp=bp, seed=seed)

    def teacher_targets(self, dataset, batch):
        """The mean over the teachers of sigmoid(logit), every variant of the dataset."""
        from pathlib import Path

        import numpy as np

        from varfx.plugins import lookup
        from varfx.store.dataset import open_dataset, stored_fingerprint
        from varfx.store.model import load_model, read_model_json
        from varfx.store.variants import predict_log_f

        with open_dataset(dataset) as h5:
            own = stored_fingerprint(h5)
            total = None
            dirs = self.teacher_dirs()
            for d in dirs:
                meta = read_model_json(d)
                obj = (meta.get("objective") or {}).get("name")
                try:
                    output = lookup("objectives", obj).prior_output if isinstance(obj, str) else None
                except UserError:
                    output = None
                if output != "logit":
                    raise UserError(f"teacher for -O teachers: fitted with objective {obj!r}, whose prior output "
                                    "is not a logit (expected a mil or distil fit)", path=Path(d))
                theirs = meta.get("dataset_sha256")
                if own is None:
                    raise UserError("has no content fingerprint to check teachers against (re-run `varfx ingest`)",
                                    path=Path(dataset) / "dataset.h5")
                if theirs != own["sha256"]:
                    raise UserError(f"teacher for -O teachers: fitted on another dataset ({meta.get('dataset')}), "
                                    f"not {Path(dataset).resolve()}", path=Path(d))
                _, module = load_model(d, device=str(batch["freq"].device))
                module = module.to(batch["freq"].device)
                logit = predict_log_f(module, h5, device=str(batch["freq"].device), batch=batch)
                if not np.all(np.isfinite(logit)):
                    raise UserError("teacher for -O teachers: its logits are not all finite", path=Path(d))
                p = 1.0 / (1.0 + np.exp(-logit))
                total = p if total is None else total + p
        return total / len(dirs)

    def negative_sizes(self, positives):
        return [1] * (self.config["negatives_per_bag"] * len(positives))

    def batch_size(self, units) -> int:
        return int(sum(u.n for u in units))

    def batch_loss(self, units, log_f_of, sigma2=None):
        import numpy as np
        import torch

        if not units:
            return 0.0
        x, seg, sizes = self.instance_logits(units, log_f_of)
        members = np.concatenate([u.variants for u in units])
        t = torch.as_tensor(self.targets[members], dtype=x.dtype, device=x.device)
        w = torch.ones_like(t)
        start = 0
        for u in units:  # each positive bag's top instance by the teachers' mean
            if u.label:
                w[start + int(np.argmax(self.targets[u.variants]))] = self.config["top_weight"]
            start += u.n
        return (w * (torch.sigmoid(x) - t) ** 2).sum()


@hookimpl
def register_objectives(register):
    register(FullLikelihood)
    register(LDScoreRegression)
    register(MultipleInstance)
    register(Distillation)

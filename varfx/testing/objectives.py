"""Conformance tests every objective plugin must pass.

Subclass with ``objective_name`` (and ``solver_name`` for objectives that use one).
The window is a small synthetic one with known dense LD, so the loss can be checked
for finiteness, gradient correctness (finite differences) and its response to signal.
"""

from __future__ import annotations

import numpy as np


def synthetic_window(n_plus=60, n_core=20, n_ref=40, seed=0, h2_per_snp=2e-4, N=5e4):
    """A window from a random low-rank genotype panel with simulated summary statistics.

    Returns (Window with float64 tensors, R_plus, core_pos, beta_core, f_true, sigma2).
    """
    import torch

    from varfx.api import Window
    from varfx.linalg.window import factorise_window

    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_ref, n_plus)).cumsum(axis=1)  # correlated neighbours
    X = (X - X.mean(0)) / X.std(0)
    R = X.T @ X / n_ref
    start = (n_plus - n_core) // 2
    core_pos = np.arange(start, start + n_core)
    f_true = np.full(n_plus, h2_per_snp)
    beta = rng.standard_normal(n_plus) * np.sqrt(f_true)
    s2 = 1.0 / N
    Rc = R[core_pos]
    mean = Rc @ beta
    cov = s2 * R[np.ix_(core_pos, core_pos)]
    w, V = np.linalg.eigh(cov)
    beta_core = mean + V @ (np.sqrt(np.clip(w, 0, None)) * rng.standard_normal(n_core))
    fac = factorise_window(R, core_pos, beta_core, eig_threshold=1e-6)  # keeps its whole rank
    win = Window(index=0, chrom=1, start=0, end=1, G=torch.tensor(fac["G"]), z=torch.tensor(fac["z"]),
                 eigvals=fac["eigvals"], logdet_lambda=float(fac["logdet_lambda"]),
                 plus_idx=np.arange(n_plus), core_idx=core_pos, core_pos=core_pos,
                 ld_score=fac["ld_score"],
                 P=torch.tensor(fac["P"]), beta=torch.tensor(beta_core), N=N, n_ref=0)
    return win, R, core_pos, beta_core, f_true, s2


class ObjectiveConformance:
    objective_name: str = ""
    objective_options: dict = {}
    solver_name: str | None = "cholesky"

    def _objective(self):
        from varfx.plugins import lookup

        cls = lookup("objectives", self.objective_name)
        solver = lookup("solvers", self.solver_name)() if (cls.uses_solver and self.solver_name) else None
        return cls(solver=solver, **self.objective_options)

    def test_registered_with_metadata(self):
        from varfx.api import Objective
        from varfx.plugins import lookup

        cls = lookup("objectives", self.objective_name)
        assert issubclass(cls, Objective) and cls.name == self.objective_name and cls.description

    def test_loss_finite_scalar(self):
        import torch

        win, *_, f, s2 = synthetic_window()
        loss = self._objective().window_loss(win, torch.tensor(f), torch.tensor(s2, dtype=torch.float64))
        assert loss.dim() == 0 and bool(torch.isfinite(loss))

    def test_gradient_matches_finite_differences(self):
        import torch

        win, *_, f, s2 = synthetic_window(seed=3)
        obj = self._objective()
        s2t = torch.tensor(s2, dtype=torch.float64)
        # Perturb log f (what priors parametrise).
        log_f = torch.tensor(np.log(f) + np.random.default_rng(4).normal(0, 0.5, len(f)), requires_grad=True)
        obj.window_loss(win, torch.exp(log_f), s2t).backward()
        g = log_f.grad.numpy()
        rng = np.random.default_rng(5)
        for _ in range(3):
            d = rng.standard_normal(len(f))
            eps = 1e-4
            with torch.no_grad():
                lp = float(obj.window_loss(win, torch.exp(log_f + eps * torch.tensor(d)), s2t))
                lm = float(obj.window_loss(win, torch.exp(log_f - eps * torch.tensor(d)), s2t))
            fd = (lp - lm) / (2 * eps)
            assert abs(fd - g @ d) <= 1e-5 * max(1.0, abs(fd)), (fd, g @ d)

    def test_prefers_the_true_scale(self):
        # On a window simulated with per-SNP variance c, scaling f by 100x either way
        # must not beat the truth by a wide margin (a loss that ignores the data fails).
        import torch

        obj = self._objective()
        better = 0
        for seed in range(8):
            win, *_, f, s2 = synthetic_window(seed=10 + seed, h2_per_snp=5e-4)
            s2t = torch.tensor(s2, dtype=torch.float64)
            with torch.no_grad():
                l_true = float(obj.window_loss(win, torch.tensor(f), s2t))
                l_lo = float(obj.window_loss(win, torch.tensor(f / 100), s2t))
                l_hi = float(obj.window_loss(win, torch.tensor(f * 100), s2t))
            better += (l_true < l_hi) + (l_true < l_lo)
        assert better >= 12, better


# ------------------------------------------------------------------------- bag objectives


def synthetic_bags(n_variants=80, sizes=(1, 3, 7, 12, 5), n_negatives=4, negative_sizes=(1, 4, 1, 9), seed=0):
    """Positive and negative :class:`varfx.api.BagUnit` over ``n_variants`` instances
    (members distinct within a bag, bags may share members) and random instance logits.

    Returns ``(units, logits)`` with ``logits`` a float64 numpy array of ``n_variants``."""
    from varfx.api import BagUnit

    rng = np.random.default_rng(seed)
    units = []
    for b, n in enumerate(sizes):
        v = rng.choice(n_variants, size=n, replace=False)
        units.append(BagUnit(name=f"pos{b}", chrom=1, start=100 * b, end=100 * b + n, variants=v, label=1, index=b))
    for b, n in enumerate(negative_sizes[:n_negatives]):
        v = rng.choice(n_variants, size=n, replace=False)
        units.append(BagUnit(name=f"neg{b}", chrom=2, start=0, end=n, variants=v, label=0))
    return units, rng.normal(0.0, 2.0, n_variants)


def _log_f_of(logits):
    """``idx -> logits[idx]`` as a prior's evaluation would return them (float64)."""
    import torch

    t = logits if hasattr(logits, "requires_grad") else torch.as_tensor(logits, dtype=torch.float64)
    return lambda idx: t[torch.as_tensor(np.asarray(idx))]


class BagObjectiveConformance:
    """Conformance of an objective over bags (``batch_unit = "bag"``).

    Subclass with ``objective_name`` and ``objective_options``, and implement
    :meth:`reference_loss` (one unit's unweighted loss from its members' logits, written as
    a plain Python loop) and, if the objective needs more than its options (a
    distillation's targets), :meth:`prepared`.
    """

    objective_name: str = ""
    objective_options: dict = {}

    def prepared(self, obj, units, logits):
        """Give the objective what it needs besides its options (none by default)."""
        return obj

    def reference_loss(self, obj, unit, member_logits: list[float]) -> float:  # pragma: no cover - interface
        raise NotImplementedError

    def _objective(self, units=None, logits=None):
        from varfx.plugins import lookup

        obj = lookup("objectives", self.objective_name)(**self.objective_options)
        if units is None:
            units, logits = synthetic_bags()
        return self.prepared(obj, units, logits)

    def _loss(self, obj, units, logits):
        return obj.batch_loss(obj.weighted(units), _log_f_of(logits), None)

    def test_registered_with_metadata(self):
        from varfx.api import BagObjective
        from varfx.plugins import lookup

        cls = lookup("objectives", self.objective_name)
        assert issubclass(cls, BagObjective) and cls.name == self.objective_name and cls.description
        assert cls.batch_unit == "bag" and cls.prior_output == "logit" and not cls.uses_solver
        assert set(cls.describe()["options"]) == set(cls.options)
        assert all(o.help for o in cls.options.values()), "every option is documented"

    def test_loss_finite_scalar(self):
        import torch

        units, logits = synthetic_bags()
        obj = self._objective(units, logits)
        loss = self._loss(obj, units, logits)
        assert loss.dim() == 0 and bool(torch.isfinite(loss))
        # extreme but finite logits stay finite (the log-space forms)
        loss = self._loss(obj, units, np.where(np.arange(len(logits)) % 2, 60.0, -60.0))
        assert bool(torch.isfinite(loss))

    def test_matches_a_plain_loop(self):
        # the batched form (concatenated members, segment reductions) against each unit's
        # loss computed alone in plain Python, weighted as the objective weighs the units
        units, logits = synthetic_bags(seed=2)
        obj = self._objective(units, logits)
        weighted = obj.weighted(units)
        want = sum(u.weight * self.reference_loss(obj, u, [float(logits[v]) for v in u.variants]) for u in weighted)
        got = float(obj.batch_loss(weighted, _log_f_of(logits), None))
        assert abs(got - want) <= 1e-10 * max(1.0, abs(want)), (got, want)

    def test_gradient_matches_finite_differences(self):
        import torch

        units, logits = synthetic_bags(seed=3)
        obj = self._objective(units, logits)
        weighted = obj.weighted(units)
        x = torch.tensor(logits, requires_grad=True)
        obj.batch_loss(weighted, _log_f_of(x), None).backward()
        g = x.grad.numpy()
        rng = np.random.default_rng(5)
        eps = 1e-6  # the logits are ~N(0, 4) apart: no tie of a max is crossed
        for _ in range(4):
            d = rng.standard_normal(len(logits))
            lp = float(self._loss(obj, units, logits + eps * d))
            lm = float(self._loss(obj, units, logits - eps * d))
            fd = (lp - lm) / (2 * eps)
            assert abs(fd - g @ d) <= 1e-6 * max(1.0, abs(fd)), (fd, g @ d)

    def test_true_instance_scored_higher_lowers_the_loss(self):
        units, logits = synthetic_bags(seed=4)
        obj = self._objective(units, logits)
        for u in units:
            if not u.label:
                continue
            true = int(u.variants[0])  # the most significant member, the one taken as causal
            up = logits.copy()
            up[true] = max(logits[u.variants]) + 2.0
            before = float(self._loss(obj, [u], logits))
            after = float(self._loss(obj, [u], up))
            assert after < before, (u.name, before, after)

    def test_invariant_to_the_order_of_members(self):
        import dataclasses

        units, logits = synthetic_bags(seed=6)
        obj = self._objective(units, logits)
        rng = np.random.default_rng(7)
        shuffled = [dataclasses.replace(u, variants=rng.permutation(u.variants)) for u in units]
        a = float(self._loss(obj, units, logits))
        b = float(self._loss(obj, shuffled, logits))
        c = float(self._loss(obj, list(reversed(units)), logits))  # and to the order of the bags
        assert abs(a - b) <= 1e-12 * max(1.0, abs(a)) and abs(a - c) <= 1e-12 * max(1.0, abs(a)), (a, b, c)


class MILConformance(BagObjectiveConformance):
    """:class:`BagObjectiveConformance` for ``mil``: the reference pools with ``math``."""

    objective_name = "mil"

    def reference_loss(self, obj, unit, xs):
        import math

        def sig(v):
            return 1.0 / (1.0 + math.exp(-v))

        def bce(z, y):  # -log sigmoid(z) for y = 1, -log(1 - sigmoid(z)) for y = 0
            return math.log1p(math.exp(-z)) if y else math.log1p(math.exp(z))

        instance, r = obj._target()
        if instance:
            return sum(bce(v, unit.label) for v in xs) / len(xs)
        pool = obj.config["pool"]
        if pool == "max":
            z = max(xs)
        elif pool == "lse":
            z = math.log(sum(math.exp(r * v) for v in xs) / len(xs)) / r
        elif pool == "gmean":
            p = (sum(sig(v) ** r for v in xs) / len(xs)) ** (1.0 / r)
            z = math.log(p / (1.0 - p))
        else:  # isr: noisy-or
            q = 1.0
            for v in xs:
                q *= 1.0 - sig(v)
            z = math.log((1.0 - q) / q)
        return bce(z, unit.label)


class DistilConformance(BagObjectiveConformance):
    """:class:`BagObjectiveConformance` for ``distil``: the teachers' targets are set
    directly (random, with each positive bag's first member the clear top instance)."""

    objective_name = "distil"

    def prepared(self, obj, units, logits):
        rng = np.random.default_rng(11)
        t = rng.uniform(0.01, 0.3, len(logits))
        for u in units:
            if u.label:
                t[u.variants[0]] = 0.99 + 1e-4 * rng.random()
        obj.targets = t
        return obj

    def reference_loss(self, obj, unit, xs):
        import math

        t = [float(obj.targets[v]) for v in unit.variants]
        top = max(range(len(t)), key=lambda i: t[i]) if unit.label else -1
        return sum((obj.config["top_weight"] if i == top else 1.0) * (1.0 / (1.0 + math.exp(-v)) - t[i]) ** 2
                   for i, v in enumerate(xs))

"""The plugin contracts: what a prior, an objective, a solver and a feature source are.

This module must not import torch at import time (``varfx --help`` and
``varfx plugins`` stay fast); implementations import it inside their methods.

Plugins register *classes*.  Each class declares its name, a one-line description and
its options; varfx instantiates it with ``cls(**options)`` after parsing
``KEY=VALUE`` strings from the command line against :attr:`options`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

from .errors import UserError


@dataclass(frozen=True)
class Option:
    """One option of a plugin: its type, default and help text."""

    type: Callable[[str], Any]
    default: Any
    help: str = ""


class Plugin:
    """Common base: a name, a description, typed options."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    options: ClassVar[dict[str, Option]] = {}

    def __init__(self, **options):
        unknown = set(options) - set(self.options)
        if unknown:
            raise UserError(
                f"{self.kind} {self.name!r} has no option {sorted(unknown)[0]!r} "
                f"(options: {', '.join(sorted(self.options)) or 'none'})"
            )
        self.config = {k: o.default for k, o in self.options.items()}
        self.config.update(options)

    kind: ClassVar[str] = "plugin"

    @classmethod
    def parse_options(cls, pairs) -> dict[str, Any]:
        """Parse ``KEY=VALUE`` strings into typed option values."""
        out: dict[str, Any] = {}
        for pair in pairs or ():
            if "=" not in pair:
                raise UserError(f"option {pair!r} for {cls.kind} {cls.name!r}: expected KEY=VALUE")
            key, value = pair.split("=", 1)
            key = key.strip().replace("-", "_")
            if key not in cls.options:
                raise UserError(
                    f"{cls.kind} {cls.name!r} has no option {key!r} "
                    f"(options: {', '.join(sorted(cls.options)) or 'none'})"
                )
            try:
                out[key] = cls.options[key].type(value)
            except (TypeError, ValueError):
                raise UserError(
                    f"option {key}={value!r} for {cls.kind} {cls.name!r}: expected "
                    f"{getattr(cls.options[key].type, '__name__', 'a value')}"
                ) from None
        return out

    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {
            "name": cls.name,
            "description": cls.description,
            "options": {
                k: {"default": o.default, "help": o.help} for k, o in sorted(cls.options.items())
            },
        }


class Solver(Plugin):
    """Computes the reduced-form window loss and its gradient.

    For one window with factors ``G`` (n+ x k) and ``z`` (k), prior variances ``f``
    (n+) and noise variance ``sigma2`` (``sigma^2 / N``), :meth:`loss` returns

        L = z^T C^-1 z + log|C|,   C = sigma2 * I_k + G^T diag(f) G

    as a 0-d tensor whose autograd graph gives dL/df (and dL/dsigma2 when ``sigma2``
    requires grad).  Solvers that are not exact state the relative accuracy they aim
    for in :attr:`tolerance`.  After each call :attr:`last_info` holds what the solver
    did (iterations, residual, probes), for benchmarks and logs.
    """

    kind = "solver"
    exact: ClassVar[bool] = True

    def __init__(self, **options):
        super().__init__(**options)
        self.last_info: dict[str, Any] = {}

    @property
    def tolerance(self) -> float:
        """Relative accuracy of the loss and its gradient against an exact solve."""
        return 0.0 if self.exact else float(self.config.get("tol", 1e-3))

    def loss(self, G, z, f, sigma2):  # pragma: no cover - interface
        raise NotImplementedError


class ProbeSolver(Solver):
    """Base of the probe-based (stochastic) solvers: fresh probes on every call.

    Subclasses set ``_LOSS_C`` and ``_GRAD_C``, measured constants of their worst
    single-call relative errors ``c / sqrt(probes)``; the stated tolerances are those,
    floored at ten times the CG tolerance.  The estimates are unbiased, so averaging
    calls with fresh probes (as SGD does across steps) shrinks the error like
    ``1 / sqrt(calls)``.  Options ``tol`` and ``probes`` are expected.
    """

    exact = False
    _LOSS_C: ClassVar[float] = 0.025
    _GRAD_C: ClassVar[float] = 3.0

    def __init__(self, **options):
        super().__init__(**options)
        self._calls = 0

    def _next_call(self) -> int:
        """The call counter that, with the ``seed`` option, picks this call's probes."""
        call = self._calls
        self._calls += 1
        return call

    @property
    def loss_tolerance(self) -> float:
        return max(10 * self.config["tol"], self._LOSS_C / math.sqrt(self.config["probes"]))

    @property
    def grad_tolerance(self) -> float:
        return max(10 * self.config["tol"], self._GRAD_C / math.sqrt(self.config["probes"]))

    @property
    def tolerance(self) -> float:
        return max(self.loss_tolerance, self.grad_tolerance)


@dataclass
class Window:
    """The precomputed factors of one core window, as torch tensors.

    ``plus_idx`` indexes the dataset's variants in ``(i)+`` (the core and its flanks);
    ``core_pos`` gives the position of each core variant inside ``plus_idx``.
    """

    index: int
    chrom: int
    start: int
    end: int
    G: Any  # (n+, k)
    z: Any  # (k,)
    eigvals: Any  # (k,)
    logdet_lambda: float
    plus_idx: Any  # (n+,) int64 numpy
    core_idx: Any  # (n,) int64 numpy
    core_pos: Any  # (n,) int64 numpy
    ld_score: Any = None  # (n,) LD score of the core variants over (i)+
    extra: dict = field(default_factory=dict)

    @property
    def k(self) -> int:
        if self.z is None:  # metadata only (the factors are read later by a loader)
            return int(self.extra.get("k", 0))
        return int(self.z.shape[0])

    def eigvals_t(self, like):
        """The kept eigenvalues of ``R_(i),(i)`` as a tensor of ``like``'s dtype/device."""
        import torch

        return torch.as_tensor(self.eigvals, dtype=like.dtype, device=like.device)

    @property
    def n(self) -> int:
        return int(len(self.core_idx))

    @property
    def n_plus(self) -> int:
        return int(len(self.plus_idx))


class Objective(Plugin):
    """A training objective: a per-window loss of the prior variances.

    :meth:`window_loss` returns a 0-d tensor, the negative log-likelihood (or another
    loss) of one window given ``f_plus`` (prior variances of the window's ``(i)+``
    variants) and ``sigma2`` (``sigma^2 / N``).  ``uses_solver`` says whether the
    objective needs a solver plugin.
    """

    kind = "objective"
    uses_solver: ClassVar[bool] = True

    def __init__(self, solver: Solver | None = None, **options):
        super().__init__(**options)
        self.solver = solver

    def window_loss(self, window: Window, f_plus, sigma2):  # pragma: no cover - interface
        raise NotImplementedError


class Prior(Plugin):
    """A prior: maps what is known about each variant to its prior variance.

    :meth:`module` builds a ``torch.nn.Module`` whose ``forward(batch)`` takes a dict of
    tensors for a set of variants (at least ``"freq"``, the allele frequency, and
    ``"index"``; later ``"features"``) and returns ``log f`` for those variants.
    Working in log space keeps the positive link numerically safe.
    """

    kind = "prior"

    def module(self, context: dict[str, Any]):  # pragma: no cover - interface
        raise NotImplementedError


class FeatureSource(Plugin):
    """Reads one kind of feature file (bigWig, BED, table, FASTA...) for a set of variants.

    The full contract (``sniff``, ``prepare``, ``columns``, ``read``, ``read_track``,
    ``track_store``) is documented in ``docs/features.md``; the built-ins live in
    :mod:`varfx.features.sources` and derive from its ``BaseFeatureSource``.
    """

    kind = "feature source"

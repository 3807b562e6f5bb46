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
                if isinstance(out[key], float) and not math.isfinite(out[key]):
                    raise ValueError(value)
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

    def state_dict(self) -> dict[str, Any]:
        """What a resumed fit needs to continue exactly as an uninterrupted one (numbers
        and strings only: it is stored in a tensor-only checkpoint).  Exact solvers are
        stateless."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""


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

    def state_dict(self) -> dict[str, Any]:
        # the probes of call i depend on (seed, i): a resumed fit continues the sequence
        return {"calls": int(self._calls)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._calls = int(state.get("calls", 0))

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

    What the window store knows besides the factors is in typed fields (None where the
    store, or a metadata-only read, does not provide it):

    - ``N``: the store's median sample size (``sigma_N^2 = sigma^2 / N``);
    - ``n_ref``: the size of the LD reference panel, 0 when R did not come from
      genotypes of known people (UKBB/PolyFun matrices);
    - ``P``: ``(k, n)`` ``Lambda^-1/2 V^T`` of the core block (``z = P beta``);
    - ``beta``: ``(n,)`` the core variants' standardised marginal effects;
    - ``n_scale``: ``(n,)`` numpy ``n_m / N`` of the core variants when the sample size
      varies across variants (G already carries it), None when it does not;
    - ``k``: the number of kept eigen-directions.  Derived from ``z`` when the factors
      are present; a metadata-only window (``z`` None) carries the stored value.

    ``objective_cache`` is a free per-window slot for objectives to keep what they derive
    from the factors once (LD score regression keeps its ``r2`` there); nothing else
    reads it, and the trainer moves any tensors in it with the window to the device.
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
    N: float | None = None
    n_ref: int = 0
    P: Any = None  # (k, n)
    beta: Any = None  # (n,)
    n_scale: Any = None  # (n,) numpy, or None
    k: int | None = None
    objective_cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self):
        if self.z is not None:
            k = int(self.z.shape[0])
            if self.k is not None and int(self.k) != k:
                # a caller's k that disagrees with its factors is a bug, not bad input
                raise ValueError(f"window {self.index}: k = {self.k} but z has {k} entries")
            self.k = k
        else:
            self.k = int(self.k or 0)

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


@dataclass(frozen=True)
class FitContext:
    """What ``fit`` knows about the data, handed to a prior's :meth:`Prior.module` and an
    objective's :meth:`Objective.setup` (typed, instead of ad-hoc dicts and writes into a
    plugin's config).

    ``init_f``: a starting per-variant variance (the LD score regression h2 per training
    variant, divided by the mean frequency factor); ``n_features``, ``n_tracks``,
    ``window``: the shapes of the prior's inputs (scalar features; per-base tracks of
    ``window`` bases); ``N``: the median sample size; ``h2``: the LD score regression
    h2 of the training variants; ``n_train_variants``: how many there are.  A prior
    built from a model directory gets the inputs and ``init_f`` only.

    It also reads like the dict it replaces (``context.get("n_features", 0)``), so
    priors written against the old dict context keep working.
    """

    init_f: float = 1e-6
    n_features: int = 0
    n_tracks: int = 0
    window: int = 0
    N: float = 0.0
    h2: float = 0.0
    n_train_variants: int = 0

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)

    def __getitem__(self, key: str) -> Any:
        if not hasattr(self, key):
            raise KeyError(key)
        return getattr(self, key)

    def inputs(self) -> dict[str, int]:
        """The input shapes, as recorded in model.json (``inputs``)."""
        return {"n_features": self.n_features, "n_tracks": self.n_tracks, "window": self.window}


class Objective(Plugin):
    """A training objective: a per-window loss of the prior variances.

    :meth:`window_loss` returns a 0-d tensor, the negative log-likelihood (or another
    loss) of one window given ``f_plus`` (prior variances of the window's ``(i)+``
    variants) and ``sigma2`` (``sigma^2 / N``).  ``uses_solver`` says whether the
    objective needs a solver plugin.
    """

    kind = "objective"
    uses_solver: ClassVar[bool] = True
    #: What one unit of a training batch is.  The trainer shuffles, batches and shares
    #: units across processes without looking inside them; :meth:`batch_size` and
    #: :meth:`batch_loss` are the objective's.  ``"window"``: a :class:`Window`;
    #: ``"bag"``: a :class:`BagUnit` (see :class:`BagObjective`).
    batch_unit: ClassVar[str] = "window"
    #: Units per AdamW step when ``--batch-windows`` is not given (0: every training unit
    #: in one step, one update per epoch).
    default_batch_units: ClassVar[int] = 0
    #: How to read what the prior returns once it is trained with this objective:
    #: ``"log_f"`` (a log prior variance: ``full``, ``ldsr``; ``varfx score`` writes F) or
    #: ``"logit"`` (an instance logit: ``mil``, ``distil``; ``varfx score`` writes
    #: P_CAUSAL = sigmoid(logit) and LOGIT).
    prior_output: ClassVar[str] = "log_f"
    #: Units of negative log-likelihood (natural log) in one unit of the loss summed over
    #: the training units: 1 for an exact ``-log p`` (``full``), 1/2 for LD score
    #: regression's weighted least squares read as a quasi-likelihood (docs/math.md).
    #: A prior module's ``penalty()`` (``-log p(theta)``, :mod:`varfx.train.penalty`)
    #: enters the training loss as ``penalty / nll_scale``.  None: the loss is not a
    #: log-likelihood sum, and a prior on the parameters is not applied (model.json's
    #: ``prior_penalty`` says so).
    nll_scale: ClassVar[float | None] = 1.0

    def __init__(self, solver: Solver | None = None, **options):
        super().__init__(**options)
        self.solver = solver
        self.context: FitContext | None = None

    def setup(self, context: FitContext) -> None:
        """Called once by ``fit`` before training: settle options that depend on the data
        (in :attr:`config`, which model.json records after this call)."""
        self.context = context

    def batch_size(self, units) -> int:
        """The number of variants a batch scores (the loss of a step is divided by it,
        so learning rates do not depend on the batch)."""
        return int(sum(u.n for u in units))

    def batch_loss(self, units, log_f_of, sigma2):
        """The loss of a batch: the sum of :meth:`window_loss` over its windows.

        ``log_f_of(idx)`` evaluates the prior on the dataset's variants ``idx`` (a sorted
        int array) and returns ``log f`` (float64); the prior is evaluated once, on the
        union of the windows' ``(i)+`` variants, not on the whole genome."""
        import numpy as np
        import torch

        if not units:
            return 0.0
        union = np.unique(np.concatenate([w.plus_idx for w in units]))
        log_f = log_f_of(union)
        total = 0.0
        for w in units:
            pos = torch.as_tensor(np.searchsorted(union, w.plus_idx), device=log_f.device)
            total = total + self.window_loss(w, torch.exp(log_f[pos]).to(w.G.dtype), sigma2)
        return total

    def epoch_units(self, train_units, epoch: int, seed: int) -> list:
        """The units of training epoch ``epoch`` (0-based), in any order (the trainer
        shuffles them with ``(seed, epoch)``).  Must depend only on its arguments, so that
        a resumed fit replays the epoch; its length must not depend on ``epoch``.  Window
        objectives train on every window every epoch; bag objectives add negative bags
        drawn afresh from ``(seed, epoch)``."""
        return train_units

    def start_epoch(self, epoch: int, epochs: int) -> None:
        """Called before training epoch ``epoch`` (0-based) of ``epochs``, also on resume:
        an objective whose loss changes over the fit (a warm-up, an annealed pooling)
        sets its phase here from these two numbers alone (never from its own history,
        which a resumed fit does not have)."""

    def eval_loss(self, units, log_f_of, sigma2):
        """The validation loss of held-out units (the same sum as :meth:`batch_loss`;
        an objective whose training loss changes over the fit validates on its target
        loss, so that validation losses of different epochs compare)."""
        return self.batch_loss(units, log_f_of, sigma2)

    def unit_name(self, unit) -> str:
        """How a message names one unit (the window's index and span)."""
        return f"window {unit.index} (chromosome {unit.chrom}, {unit.start}-{unit.end})"

    def unit_losses(self, units, log_f_of, sigma2) -> list[float]:
        """Each unit's loss alone (no gradient): to name the unit whose loss is not finite."""
        import torch

        out = []
        with torch.no_grad():
            for u in units:
                try:
                    out.append(float(self.batch_loss([u], log_f_of, sigma2)))
                except FloatingPointError:  # a solver's refusal of non-finite inputs
                    out.append(math.nan)
        return out

    def window_loss(self, window: Window, f_plus, sigma2):  # pragma: no cover - interface
        raise NotImplementedError


@dataclass
class BagUnit:
    """One bag as a unit of training: ``variants`` are dataset indices (members most
    significant first for a positive bag), ``label`` 1 (positive) or 0 (negative).

    ``weight`` is the factor of this bag's loss in a batch's sum, set when the units of an
    epoch (or of validation) are made: the objective's mean over positive bags and its
    mean over negative bags become sums over units, so that units can be shared across
    processes and batched in any way (a batch's sum divided by its
    :meth:`Objective.batch_size` estimates the epoch's loss).  A negative bag drawn from
    the pool has ``chrom`` -1 when its members lie on several chromosomes, and a ``name``
    that says where it came from."""

    name: str
    chrom: int
    start: int
    end: int
    variants: Any  # (n,) int64 numpy
    label: int
    weight: float = 1.0
    index: int = -1  # the positive bag's index in bags.h5 (-1: a negative bag)
    #: (n,) weights of the members in an instance-level loss (summing to 1), in the order
    #: of ``variants``; None: each member 1/n
    member_weight: Any = None

    @property
    def n(self) -> int:
        return int(len(self.variants))


class BagObjective(Objective):
    """Base of the objectives over bags (``batch_unit = "bag"``: ``mil``, ``distil``).

    ``varfx fit`` loads ``DATASET/bags.h5`` (:func:`varfx.store.bags.load_bags`), splits
    it by ``--holdout-chroms`` into a training and a held-out :class:`varfx.store.bags.BagSet`
    (held-out bags and held-out negatives never reach training), calls :meth:`setup`,
    builds the prior, then :meth:`prepare_bags` once, which returns the training units
    (the positive bags) and the validation units (the held-out positive bags and
    negative bags drawn once from the held-out pool).  Every epoch :meth:`epoch_units`
    adds negatives drawn afresh from the training pool.  The prior's output is read as
    the instance logit (``prior_output = "logit"``); no solver, windows or sigma^2.
    """

    uses_solver = False
    batch_unit = "bag"
    prior_output = "logit"
    # means over positive and over negative bags (BagUnit.weight), not a sum of
    # -log p over independent observations: no scale puts a parameter prior in its units
    nll_scale = None
    # a fixed number of bags per step: the noise of a step does not depend on how many
    # bags there are, and thousands of bags (MIFM's) give thousands of updates per fit
    # rather than one per epoch (docs/mil_objective.md, "Training")
    default_batch_units = 32

    def prepare_bags(self, train, val, *, dataset, batch, bp, seed: int, z=None):
        """``(train_units, val_units)`` from the training and held-out BagSets.

        ``dataset``: the dataset directory; ``batch``: the prior's per-variant inputs
        (what :meth:`FitSetup.log_f_of` evaluates); ``bp``: every variant's position (to
        name negative bags); ``seed``: the fit's seed; ``z``: every variant's z (the
        dataset's summary statistics, for objectives that weigh members by them).  The training pool of negatives is
        kept for :meth:`epoch_units`; the validation negatives are drawn here, once, from
        the held-out pool, so validation losses of different epochs compare."""
        import numpy as np

        from .errors import UserError

        if not len(train.negatives):
            raise UserError("bags.h5 has no negative variants on the training chromosomes "
                            "(rebuild it with `varfx bags`, or hold out fewer chromosomes)", path=dataset)
        self._bp = np.asarray(bp)
        self._pool = (np.asarray(train.negatives, np.int64), np.asarray(train.negative_chrom, np.int64))
        pos = [self.positive_unit(b) for b in train.positives]
        vpos = [self.positive_unit(b) for b in val.positives]
        vneg = []
        if vpos and len(val.negatives):
            vneg = self.draw_negatives(vpos, np.asarray(val.negatives, np.int64),
                                       np.asarray(val.negative_chrom, np.int64),
                                       self.rng(seed, -1), "held-out")
        return pos, (self.weighted(vpos + vneg) if vpos else [])

    @staticmethod
    def positive_unit(bag) -> "BagUnit":
        import numpy as np

        return BagUnit(name=bag.name, chrom=int(bag.chrom), start=int(bag.start), end=int(bag.end),
                       variants=np.asarray(bag.variants, np.int64), label=1, index=int(bag.index))

    @staticmethod
    def rng(seed: int, epoch: int):
        """The generator of the negatives of training epoch ``epoch`` (-1: validation):
        a function of (seed, epoch) alone, so a resumed fit draws the same ones."""
        import numpy as np

        return np.random.default_rng([int(seed) % 2**32, int(epoch) + 1, 0x6D696C])

    def negative_sizes(self, positives) -> list[int]:
        """The sizes of the negative bags drawn for these positive bags (one entry per
        negative bag): one single-variant negative per positive bag by default."""
        return [1] * len(positives)

    def draw_negatives(self, positives, pool, pool_chrom, rng, what: str) -> list:
        """Negative bags of :meth:`negative_sizes` variants each, drawn from ``pool``
        (members distinct within a bag; bags drawn independently)."""
        import numpy as np

        from .errors import UserError

        out = []
        m = len(pool)
        for j, size in enumerate(self.negative_sizes(positives)):
            if size > m:
                raise UserError(f"objective {self.name!r}: the {what} negative pool has {m} variants, fewer "
                                f"than a negative bag of {size} needs (use -O negatives=single, or rebuild "
                                "bags.h5 with more negatives)")
            pick = rng.choice(m, size=size, replace=False) if size > 1 else rng.integers(0, m, size=1)
            idx, chroms = pool[pick], pool_chrom[pick]
            one = bool(np.all(chroms == chroms[0]))
            bp = self._bp[idx]
            out.append(BagUnit(name=f"{what} negative {j + 1}", chrom=int(chroms[0]) if one else -1,
                               start=int(bp.min()) if one else 0, end=int(bp.max()) if one else 0,
                               variants=np.sort(idx), label=0))
        return out

    def weighted(self, units) -> list:
        """The units with their :attr:`BagUnit.weight` set (1 here: a plain sum)."""
        import dataclasses

        return [dataclasses.replace(u, weight=1.0) for u in units]

    def epoch_units(self, train_units, epoch: int, seed: int) -> list:
        negatives = self.draw_negatives(train_units, *self._pool, self.rng(seed, epoch), f"epoch {epoch + 1}")
        return self.weighted(list(train_units) + negatives)

    def instance_logits(self, units, log_f_of):
        """``(x, seg, sizes)``: the prior's output on the bags' members concatenated (no
        padding), the bag of each member (0..len(units)-1) and the bag sizes, as torch
        tensors; the prior is evaluated once on the union of the members.  A logit that
        is not finite stops the fit with one line naming its bag."""
        import numpy as np
        import torch

        from .errors import UserError

        members = np.concatenate([u.variants for u in units])
        union, inverse = np.unique(members, return_inverse=True)
        out = log_f_of(union)
        x = out[torch.as_tensor(inverse, device=out.device)]
        sizes = torch.as_tensor([u.n for u in units], device=out.device)
        seg = torch.repeat_interleave(torch.arange(len(units), device=out.device), sizes)
        bad = ~torch.isfinite(x.detach())
        if bool(bad.any()):
            first = int(torch.nonzero(bad)[0])
            unit = units[int(seg[first])]
            raise UserError(f"the prior's logit of variant {int(members[first])} in {self.unit_name(unit)} became "
                            f"{float(x[first])}; try a smaller --lr")
        return x, seg, sizes

    def unit_losses(self, units, log_f_of, sigma2) -> list[float]:
        import torch

        with torch.no_grad():
            return [float(self.batch_loss([u], log_f_of, sigma2)) for u in units]

    def batch_size(self, units) -> int:
        return len(units)

    def unit_name(self, unit) -> str:
        where = f"chromosome {unit.chrom}, {unit.start}-{unit.end}" if unit.chrom >= 0 else "several chromosomes"
        return f"{'positive' if unit.label else 'negative'} bag {unit.name!r} ({where}, {unit.n} variants)"


class Prior(Plugin):
    """A prior: maps what is known about each variant to its prior variance.

    :meth:`module` builds a ``torch.nn.Module`` whose ``forward(batch)`` takes a dict of
    tensors for a set of variants (at least ``"freq"``, the allele frequency, and
    ``"index"``; later ``"features"``) and returns ``log f`` for those variants.
    Working in log space keeps the positive link numerically safe.
    """

    kind = "prior"
    #: Few parameters (a constant, a linear model): ``fit --optimizer auto`` then fits
    #: it to the maximum by full-batch L-BFGS instead of mini-batch AdamW.
    small: ClassVar[bool] = False
    #: The peak AdamW learning rate when ``--lr`` is not given.
    default_lr: ClassVar[float] = 1e-3
    #: Options whose value defines the fitted model beyond its weights (a prior on the
    #: parameters): ``fit`` records their resolved values in model.json even when they
    #: were not given, so that ``evaluate`` rebuilds the same model if a default changes.
    recorded_options: ClassVar[tuple[str, ...]] = ()

    def module(self, context: FitContext):  # pragma: no cover - interface
        raise NotImplementedError

    def sequence_length(self) -> int:
        """The reference bases this prior reads around each variant (0: it reads no DNA).

        A prior that returns ``L > 0`` gets, besides the stored features,
        ``batch["sequence"]``: ``(M, L)`` uint8 base codes from the dataset's FASTA
        (0-3 = A, C, G, T; 4 = N, any other code, or outside the chromosome), the variant
        at offset ``L // 2``, and ``batch["alt"]``: ``(M,)`` uint8, the code of the
        variant's allele that is not the FASTA base (4 when that cannot be told: an
        indel, or neither allele is the FASTA base).  ``L`` includes any room the prior
        needs for random shifts; it depends on the options only (fit and score build the
        same inputs from it)."""
        return 0


class FeatureSource(Plugin):
    """Reads one kind of feature file (bigWig, BED, table, FASTA...) for a set of variants.

    The full contract (``sniff``, ``prepare``, ``columns``, ``read``, ``read_track``,
    ``track_store``) is documented in ``docs/features.md``; the built-ins live in
    :mod:`varfx.features.sources` and derive from its ``BaseFeatureSource``.
    """

    kind = "feature source"


# ------------------------------------------------------------------------------ input formats


@dataclass(frozen=True)
class SumstatsFormat:
    """One summary-statistics format, registered with ``register_sumstats_formats``
    (plugins register *instances* of this record, not subclasses).

    A **table** format (tab-, comma- or whitespace-separated, plain or gzipped, parsed by
    varfx) is declared by its columns: ``columns`` maps a canonical field (``snp chrom bp
    a1 a2 z beta se n freq info``, ``odds_ratio hazard_ratio``, or an informative one
    such as ``ref``) to the header names it may have (matched case-insensitively).
    ``required`` fields must be present; ``signature`` is the set of fields whose
    presence identifies the format (detection tries the registered formats in
    registration order, built-ins first, and takes the first whose signature is in the
    header).  A Z score is needed in every format: the ``z`` column, or ``beta``/``se``
    (or ``odds_ratio``/``se``, ``hazard_ratio``/``se`` on the log scale).

    A **file** format (not a table, e.g. GWAS-VCF) gives ``reader(path, n) -> Sumstats``
    (:class:`varfx.io.sumstats.Sumstats`, the columns documented there) and
    ``sniff(path) -> bool`` (does the file look like this format?  must not raise),
    tried before the table formats.
    """

    name: str
    description: str
    columns: dict[str, tuple[str, ...]]
    required: tuple[str, ...]
    signature: tuple[str, ...]
    reader: Callable | None = None  # custom reader(path, n) -> Sumstats, for non-table formats
    sniff: Callable | None = None  # sniff(path) -> bool, for a format with a reader

    kind: ClassVar[str] = "sumstats format"

    def expected(self) -> str:
        parts = []
        for f, names in self.columns.items():
            name = names[0]
            parts.append(name if f in self.required else f"[{name}]")
        return " ".join(parts)


class LDFormat(Plugin):
    """An LD reference format for ``varfx ingest --ld``, registered with
    ``register_ld_formats``.

    ``sniff(path) -> bool`` (classmethod; must not raise) says whether ``path`` is in this
    format; ``varfx ingest`` asks the registered formats in registration order (built-ins
    first: ``vcf``, ``ukbb``, ``plink``) and uses the first that says yes.

    ``layout`` says what the dataset stores and what :meth:`open` returns:

    - ``"genotypes"``: a genotype panel, stored as int8 dosages (LD computed from them).
      ``open`` returns a panel with ``bim`` (dict of arrays ``chrom`` int64 codes, ``snp``,
      ``cm``, ``bp`` int64, ``a1``, ``a2`` upper-case; dosages count ``a1``),
      ``n_people``, ``n_snps``, ``genotypes(index) -> int8 (len(index), n_people)``
      (2/1/0, -1 missing), ``summary_stats() -> (a1 frequency, monomorphic mask)`` and
      ``inputs`` (``[(role, path)]`` for provenance).
    - ``"regions"``: precomputed correlations in regions, stored as sparse triangles.
      ``open`` returns an object with ``regions`` (each with ``name``, ``chrom``,
      ``start``, ``end``), ``read_table(i) -> dict`` (``snp chrom bp a1 a2`` of region i,
      one row per matrix row), ``triangle(i, n_rows)`` (scipy CSR ``L`` with
      ``R = L + L^T``, unit diagonal, correlations of the ``a1`` dosages) and ``inputs``.

    ``open(path, *, region=None, maf_min=0.0)``: ``region`` (a
    :class:`varfx.genome.GenomeRegion`) and ``maf_min`` may be used to read less; ingest
    applies both afterwards in any case.  Errors are :class:`UserError` naming the file.
    Conformance cases: :mod:`varfx.testing.formats`.
    """

    kind = "LD format"
    layout: ClassVar[str] = "genotypes"

    @classmethod
    def sniff(cls, path) -> bool:  # pragma: no cover - interface
        return False

    def open(self, path, *, region=None, maf_min: float = 0.0):  # pragma: no cover - interface
        raise NotImplementedError

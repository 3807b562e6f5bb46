"""Cost models of the stages: what a window costs to factorise, store and train on.

``varfx plan`` (varfx/stages/plan.py) and the ``--dry-run`` of precompute-ld and fit
price a run from a few kernels timed on this machine (or a calibration file measured
elsewhere) and the scaling law of each piece (docs/scale.md, "Planning a run"):

- precompute-ld, per window of ``n+`` variants, ``n`` of them core, ``k`` kept: the
  eigendecomposition of the ``n x n`` core (timed at a few sizes, interpolated in
  log-log, ``n^3`` beyond the largest size timed), the LD of ``(i)+`` (PLINK panel of
  ``n_ref`` people: ``2 n+^2 n_ref`` flops of a GEMM; UKBB matrices: a dense copy of
  ``n+^2`` entries) and ``G = R_+,(i) V Lambda^-1/2`` (``2 n+ n k`` flops);
- the commit of windows.h5: one process compresses every large array (gzip 4 with
  shuffle, timed on a float64 sample);
- a training step, per window: the reduced k-space engine (the objective and its
  solver, timed at two window sizes) costs ``t0 + W / rate`` with
  ``W = 2 n+ k^2 + k^3 / 3`` for ``full`` (docs/math.md, the ``cholesky`` solver) and
  ``W = 2 n+ n`` for ``ldsr``; the prior's forward and backward cost the same per
  variant (timed on a small batch) times the window's ``n+``.

Nothing here reads a store: the callers pass window sizes.  numpy/scipy only, torch
inside the functions that time a prior's step.
"""

from __future__ import annotations

import heapq
import math
import time
import zlib

import numpy as np

#: ``--save-calibration`` / ``--calibration`` files written by varfx plan
CALIBRATION_FORMAT = "varfx-plan-calibration"
CALIBRATION_VERSION = 1
#: core sizes at which the eigendecomposition is timed (about 0.3 s in all on one core)
EIGH_SIZES = (128, 256, 512, 1024)
#: the exponent beyond the largest size timed: a dense symmetric eigendecomposition is
#: ``O(n^3)``, and the slope measured at small sizes is lower (fixed costs), so
#: extrapolating with it would under-price biobank windows (docs/scale.md)
HIGH_SLOPE = 3.0
#: window sizes ``(n+, n, k)`` at which the reduced engine's step is timed: the first
#: gives the fixed cost per window, the second the rate of the ``n+ k^2`` work
STEP_SIZES = ((96, 32, 8), (1536, 512, 512))
#: variants on which a prior's forward and backward are timed: the small batch always,
#: a large one (at least the second number, larger for a light prior) too when the small
#: one took less than PRIOR_FAST_S (their difference
#: separates the cost per variant from the fixed cost of a call; a network whose small
#: batch is already slow is priced per variant from it alone, an upper bound)
PRIOR_VARIANTS = (32, 256)
PRIOR_FAST_S = 0.25
#: arrays of more entries than this are stored gzip-compressed (store/windows.py)
COMPRESS_ABOVE = 4096
#: HDF5 bytes per window group besides its arrays' data (object headers, attributes, the
#: B-tree of chunked arrays): measured on chr22 stores of 4 to 36 windows, 7-9 kB
H5_BYTES_PER_WINDOW = 8 * 1024


# ---------------------------------------------------------------------------------------
# power laws


def fit_power_law(sizes, seconds) -> dict:
    """Least-squares ``seconds = a * size ** b`` in log-log.

    Returns ``{"a", "b", "b_last", "max_rel_residual"}``; ``b_last`` is the slope
    between the two largest sizes (where an ``n^3`` kernel takes over from ``n^2`` work,
    the one to extrapolate with), NaN for one size."""
    x = np.log(np.asarray(sizes, dtype=np.float64))
    y = np.log(np.asarray(seconds, dtype=np.float64))
    if len(x) < 2:
        return {"a": float(np.exp(y[0] - HIGH_SLOPE * x[0])) if len(x) else float("nan"), "b": HIGH_SLOPE,
                "b_last": float("nan"), "max_rel_residual": 0.0}
    b, loga = np.polyfit(x, y, 1)
    fit = np.exp(loga) * np.exp(x) ** b
    order = np.argsort(x)
    b_last = float((y[order[-1]] - y[order[-2]]) / (x[order[-1]] - x[order[-2]]))
    return {"a": float(np.exp(loga)), "b": float(b), "b_last": b_last,
            "max_rel_residual": float(np.max(np.abs(fit / np.exp(y) - 1)))}


class Curve:
    """Seconds against a size from measured points: log-log interpolation between them,
    the fitted slope below the smallest, :data:`HIGH_SLOPE` above the largest."""

    def __init__(self, sizes, seconds, high_slope: float = HIGH_SLOPE):
        order = np.argsort(np.asarray(sizes, dtype=np.float64))
        self.x = np.log(np.asarray(sizes, dtype=np.float64)[order])
        self.y = np.log(np.asarray(seconds, dtype=np.float64)[order])
        if not (len(self.x) and np.isfinite(self.x).all() and np.isfinite(self.y).all()):
            raise ValueError("a cost curve needs finite positive sizes and seconds")
        self.low_slope = fit_power_law(np.exp(self.x), np.exp(self.y))["b"] if len(self.x) > 1 else high_slope
        self.high_slope = high_slope

    def __call__(self, n) -> np.ndarray:
        n = np.maximum(np.asarray(n, dtype=np.float64), 1.0)
        lx = np.log(n)
        y = np.interp(lx, self.x, self.y)
        y = np.where(lx > self.x[-1], self.y[-1] + self.high_slope * (lx - self.x[-1]), y)
        y = np.where(lx < self.x[0], self.y[0] + self.low_slope * (lx - self.x[0]), y)
        return np.exp(y)


# ---------------------------------------------------------------------------------------
# kernels timed on this machine


def _best(fn, repeats: int) -> float:
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _shuffle(arr: np.ndarray) -> bytes:
    """HDF5's shuffle filter: the i-th bytes of every element together."""
    return np.ascontiguousarray(arr.view(np.uint8).reshape(-1, arr.dtype.itemsize).T).tobytes()


def measure_kernels(sizes=EIGH_SIZES, repeats: int = 2, seed: int = 0) -> dict:
    """Time the precompute kernels on this machine (about a second on one core).

    The eigendecomposition precompute-ld uses (:func:`varfx.linalg.window._eigh`) of an
    LD-like correlation matrix at each size, a float64 GEMM of the largest size, a
    dense copy of it, and gzip level 4 of shuffled float64 data (the store's filter).
    Returns the calibration dict (:data:`CALIBRATION_FORMAT`) without prior steps."""
    import os
    import platform

    from .window import _eigh

    rng = np.random.default_rng(seed)
    secs = []
    for i, n in enumerate(sizes):
        # an AR(1) correlation, r^|i-j|: LD-like and full rank, built in O(n^2) (the time
        # of syevd hardly depends on the spectrum: measured 0.95 s against 1.00 s at
        # n = 1024 for rank 378 against full rank)
        lag = np.abs(np.subtract.outer(np.arange(int(n)), np.arange(int(n))))
        R = 0.9 ** lag
        if i == 0:
            _eigh(R)  # first call: the library's own set-up
        secs.append(_best(lambda: _eigh(R), repeats))
    m = int(max(sizes))
    a = rng.standard_normal((m, m))
    b = rng.standard_normal((m, m))
    gemm = _best(lambda: a @ b, repeats)
    copy = _best(lambda: (a + a.T), repeats)
    sample = rng.standard_normal(1 << 16)  # 512 kB of float64
    raw = _shuffle(sample)
    t = _best(lambda: zlib.compress(raw, 4), repeats)
    ratio = len(zlib.compress(raw, 4)) / len(raw)
    return {
        "format": CALIBRATION_FORMAT, "format_version": CALIBRATION_VERSION, "source": "measured",
        "machine": {"host": platform.node(), "cpus": os.cpu_count(),
                    "omp_num_threads": os.environ.get("OMP_NUM_THREADS")},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "eigh": {"sizes": [int(s) for s in sizes], "seconds": secs, **fit_power_law(sizes, secs)},
        "gemm_gflops": 2 * m ** 3 / gemm / 1e9,
        "copy_gb_per_s": 3 * 8 * m * m / copy / 1e9,  # read a and a.T, write the sum
        "gzip_mb_per_s": len(raw) / t / 1e6,
        "gzip_ratio": ratio,
        # filled as steps are timed: the reduced engine per objective, each prior network
        "engines": {},
        "priors": {},
    }


def calibration_from_benchmark(records) -> dict:
    """A calibration from ``benchmarks/precompute.py --json`` (its ``window-cost``
    records: whole windows, ``n = n+ / 3``, LD from a panel), with the GEMM and gzip
    rates measured here (the records have none).  The per-window time is then that
    curve in ``n+`` alone."""
    points = [r for r in records if isinstance(r, dict) and r.get("task") == "window-cost"]
    if len(points) < 1:
        raise ValueError("no window-cost records (write them with `benchmarks/precompute.py --json`)")
    cal = measure_kernels(sizes=EIGH_SIZES[:1], repeats=1)
    sizes = [int(r["n_plus"]) for r in points]
    secs = [float(r["seconds"]) for r in points]
    cal.update(source="benchmarks/precompute.py",
               window={"sizes": sizes, "seconds": secs, **fit_power_law(sizes, secs)})
    return cal


def check_calibration(cal) -> None:
    """ValueError (with what is wrong) unless ``cal`` is a usable calibration dict."""
    if not isinstance(cal, dict) or cal.get("format") != CALIBRATION_FORMAT:
        raise ValueError(f"not a {CALIBRATION_FORMAT} file (nor a benchmarks/precompute.py --json list)")
    if int(cal.get("format_version", -1)) != CALIBRATION_VERSION:
        raise ValueError(f"format_version {cal.get('format_version')!r}, expected {CALIBRATION_VERSION}")
    curves = [k for k in ("eigh", "window") if k in cal]
    if not curves:
        raise ValueError("no 'eigh' or 'window' timings")
    for key in curves:
        c = cal[key]
        sizes, secs = c.get("sizes"), c.get("seconds")
        if not (isinstance(sizes, list) and isinstance(secs, list) and len(sizes) == len(secs) and sizes):
            raise ValueError(f"'{key}': expected equal-length lists 'sizes' and 'seconds'")
        if not all(_positive(v) for v in sizes + secs):
            raise ValueError(f"'{key}': sizes and seconds must be finite positive numbers")
    for key in ("gemm_gflops", "copy_gb_per_s", "gzip_mb_per_s", "gzip_ratio"):
        if not _positive(cal.get(key)):
            raise ValueError(f"'{key}': expected a finite positive number, got {cal.get(key)!r}")
    for group, keys in (("engines", ("fixed_s", "gflops")),
                        ("priors", ("seconds_per_variant", "activation_bytes_per_variant", "parameters"))):
        for name, rec in (cal.get(group) or {}).items():
            for key in keys:
                v = rec.get(key) if isinstance(rec, dict) else None
                # a rate divides: it must be positive; the rest may be 0 (a constant prior's activations)
                low_ok = v > 0 if key == "gflops" else v >= 0
                if not (isinstance(v, (int, float)) and math.isfinite(v) and low_ok):
                    raise ValueError(f"{group}.{name}.{key}: expected a finite number "
                                     f"{'> 0' if key == 'gflops' else '>= 0'}, got {v!r}")


def _positive(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0


# ---------------------------------------------------------------------------------------
# precompute-ld


def window_seconds(cal: dict, n_plus, n, k, n_ref: int, ld_kind: str) -> np.ndarray:
    """Seconds to compute each window (arrays of ``n+``, ``n``, ``k``) in one worker."""
    n_plus = np.asarray(n_plus, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    k = np.asarray(k, dtype=np.float64)
    if "window" in cal:  # whole windows measured by benchmarks/precompute.py
        w = cal["window"]
        return Curve(w["sizes"], w["seconds"])(n_plus)
    e = cal["eigh"]
    eig = Curve(e["sizes"], e["seconds"])(np.maximum(n, 1))
    flops = 2.0 * n_plus * n * k  # G = R_+,(i) V Lambda^-1/2
    if ld_kind == "plink" and n_ref > 0:
        ld = 2.0 * n_plus ** 2 * n_ref / (cal["gemm_gflops"] * 1e9)
    else:  # a sparse region's block made dense: about three passes over n+^2 float64
        ld = 3 * 8 * n_plus ** 2 / (cal["copy_gb_per_s"] * 1e9)
    return eig + ld + flops / (cal["gemm_gflops"] * 1e9)


def window_memory_bytes(n_plus, n, k, n_ref: int) -> np.ndarray:
    """Peak bytes of one window's computation in a worker (float64): the genotypes of
    ``(i)+`` standardised (``n+ x n_ref``) and their product, R (``n+^2``), its core
    columns and their copy (``2 n+ n``), the symmetrised core block, the eigenvectors
    and the divide-and-conquer workspace (``~5 n^2``), ``G`` and its flushed copy
    (``2 n+ k``)."""
    n_plus = np.asarray(n_plus, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    k = np.asarray(k, dtype=np.float64)
    return 8.0 * (n_plus ** 2 + n_plus * max(n_ref, 0) + 2 * n_plus * n + 5 * n ** 2 + 2 * n_plus * k)


def window_arrays(n_plus: int, n: int, k: int) -> dict:
    """Entries and item size of each array precompute-ld stores for a window."""
    return {"core_idx": (n, 8), "plus_idx": (n_plus, 8), "core_pos": (n, 8), "P": (k * n, 8),
            "G": (n_plus * k, 8), "z": (k, 8), "eigvals": (k, 8), "ld_score": (n, 8),
            "ld_score_raw": (n, 8), "beta": (n, 8), "n_scale": (n, 8)}


def window_disk_bytes(cal: dict, n_plus, n, k) -> tuple[np.ndarray, np.ndarray]:
    """``(bytes in windows.h5, bytes of the uncompressed part file)`` per window."""
    stored, raw = [], []
    ratio = float(cal["gzip_ratio"])
    for a, b, c in zip(np.atleast_1d(n_plus), np.atleast_1d(n), np.atleast_1d(k)):
        s = r = 0.0
        for entries, item in window_arrays(int(a), int(b), int(c)).values():
            r += entries * item
            s += entries * item * (ratio if entries > COMPRESS_ABOVE else 1.0)
        stored.append(s + H5_BYTES_PER_WINDOW)
        raw.append(r + H5_BYTES_PER_WINDOW)
    return np.asarray(stored), np.asarray(raw)


def commit_seconds(cal: dict, n_plus, n, k) -> float:
    """The one writer's time to merge the parts into windows.h5: gzip of every
    compressed array (the reads and the rest are small beside it)."""
    total = 0.0
    for a, b, c in zip(np.atleast_1d(n_plus), np.atleast_1d(n), np.atleast_1d(k)):
        for entries, item in window_arrays(int(a), int(b), int(c)).values():
            if entries > COMPRESS_ABOVE:
                total += entries * item
    return total / (cal["gzip_mb_per_s"] * 1e6)


def makespan(seconds, workers: int, exact_limit: int = 200_000) -> float:
    """Wall time of tasks of these durations on ``workers`` workers that each take the
    next task when free, longest first (what a Dask scheduler or a process pool does
    with a queue; within a factor 4/3 of the best order).  Beyond ``exact_limit`` tasks:
    the bound ``sum / workers + max``."""
    seconds = np.sort(np.asarray(seconds, dtype=np.float64))[::-1]
    if len(seconds) == 0:
        return 0.0
    workers = max(1, int(workers))
    if workers == 1:
        return float(seconds.sum())
    if len(seconds) > exact_limit:
        return float(seconds.sum() / workers + seconds[0])
    free = [0.0] * min(workers, len(seconds))
    for s in seconds:
        heapq.heapreplace(free, free[0] + float(s))
    return float(max(free))


# ---------------------------------------------------------------------------------------
# a training step


def step_work(objective: str, n_plus, n, k) -> np.ndarray:
    """The work law of one window's loss and gradient (flops, up to a constant)."""
    n_plus = np.asarray(n_plus, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    k = np.asarray(k, dtype=np.float64)
    if objective == "ldsr":
        return 2.0 * n_plus * n  # E[chi2] = N r2 f: the cached (n x n+) r2 times f, and back
    return 2.0 * n_plus * k ** 2 + k ** 3 / 3.0


def measure_engine(objective, objective_name: str, repeats: int = 3, sizes=STEP_SIZES) -> dict:
    """Time the loss and gradient of ``objective`` (a set-up window objective with its
    solver) on synthetic windows of :data:`STEP_SIZES`: ``{"fixed_s", "gflops"}`` of
    ``t = fixed_s + W / (gflops * 1e9)`` (:func:`step_work`)."""
    import torch

    from ..api import Window

    rng = np.random.default_rng(0)
    times, works = [], []
    for n_plus, n, k in sizes:
        G = torch.tensor(rng.standard_normal((n_plus, k)) / np.sqrt(k))
        P = torch.tensor(rng.standard_normal((k, n)) / np.sqrt(n))
        beta = torch.tensor(rng.standard_normal(n) * 1e-2)
        lo = (n_plus - n) // 2
        w = Window(index=0, chrom=1, start=0, end=1, G=G, z=P @ beta, eigvals=np.ones(k), logdet_lambda=0.0,
                   plus_idx=np.arange(n_plus), core_idx=np.arange(lo, lo + n), core_pos=np.arange(lo, lo + n),
                   ld_score=np.full(n, 10.0), N=1e5, n_ref=0, P=P, beta=beta)
        s2 = torch.tensor(1e-5, dtype=torch.float64)
        param = torch.full((n_plus,), math.log(1e-6), dtype=torch.float64, requires_grad=True)

        def step():
            param.grad = None
            objective.batch_loss([w], lambda idx: param[torch.as_tensor(idx)], s2).backward()

        step()  # caches an objective's per-window state (ldsr's r2), as the first epoch does
        times.append(_best(step, repeats))
        works.append(float(step_work(objective_name, n_plus, n, k)))
    fixed = times[0]
    rate = max(works[-1] - works[0], 1.0) / max(times[-1] - fixed, 1e-9)
    return {"fixed_s": float(fixed), "gflops": float(rate / 1e9), "sizes": [list(s) for s in sizes],
            "seconds": times}


def measure_prior(module, make_inputs, repeats: int = 2, sizes=PRIOR_VARIANTS) -> dict:
    """Time a prior network's forward and backward: ``{"fixed_s", "seconds_per_variant"}``
    of ``t = fixed_s + m * seconds_per_variant`` for a batch of m variants
    (``make_inputs(m)`` makes one), its parameter count, and the bytes autograd keeps per
    variant for the backward (the activations), counted on the small batch."""
    import torch

    saved = [0]

    def pack(t):
        saved[0] += t.numel() * t.element_size()
        return t

    def step(inputs):
        module.zero_grad(set_to_none=True)
        out = module(inputs)
        out.float().sum().backward()

    module.train()
    small, large = int(sizes[0]), int(sizes[1])
    x_small = make_inputs(small)
    t0 = time.perf_counter()
    step(x_small)  # first-call allocations
    first = time.perf_counter() - t0
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = module(x_small)
    out.float().sum().backward()
    t_small = _best(lambda: step(x_small), repeats if first < PRIOR_FAST_S else 1)
    if t_small < PRIOR_FAST_S:
        # large enough to take ~0.5 s, so that a light prior's cost per variant is not
        # lost in the noise of its fixed cost (at most 2^16 variants)
        large = int(min(1 << 16, max(large, small * 0.5 / max(t_small, 1e-6))))
        x_large = make_inputs(large)
        t_large = _best(lambda: step(x_large), repeats)
        per_variant = max(t_large - t_small, 0.0) / (large - small)
        fixed = max(t_small - small * per_variant, 0.0)
        timed = [small, large]
    else:
        per_variant, fixed, timed = t_small / small, 0.0, [small]
    # a prior that runs its forward in checkpointed chunks (the transformer) keeps one
    # chunk's activations at a time, whatever the number of variants of a step
    chunk = getattr(module, "chunk", None)
    return {"fixed_s": float(fixed), "seconds_per_variant": float(per_variant),
            "activation_bytes_per_variant": saved[0] / small,
            "parameters": int(sum(p.numel() for p in module.parameters())), "timed_variants": timed,
            "chunk": int(chunk) if isinstance(chunk, int) and chunk > 0 else 0}


def prior_inputs(m: int, n_features: int = 0, n_tracks: int = 0, window: int = 0, sequence_length: int = 0,
                 seed: int = 0) -> dict:
    """A batch of ``m`` synthetic variants with a dataset's input shapes (what
    :func:`varfx.store.variants.variant_batch` gives a prior): the cost of a prior's
    forward depends on the shapes, not on the values."""
    import torch

    rng = np.random.default_rng(seed)
    batch = {"freq": torch.tensor(rng.uniform(0.05, 0.5, m)), "index": torch.arange(m)}
    if n_features:
        batch["features"] = torch.tensor(rng.standard_normal((m, n_features)))
    if n_tracks and window:
        batch["window"] = torch.tensor(rng.standard_normal((m, window, n_tracks)), dtype=torch.float16)
    if sequence_length:
        batch["sequence"] = torch.tensor(rng.integers(0, 4, (m, sequence_length)), dtype=torch.uint8)
        batch["alt"] = torch.tensor(rng.integers(0, 4, m), dtype=torch.uint8)
    return batch


#: ``varfx plan --gpu-speedup`` when not given: how many times faster one GPU runs a
#: training step than one CPU process of this machine.  NOT MEASURED: no GPU was lent to
#: the task that wrote this.  10 is a deliberately low guess (the ratio of an H100's
#: float64 peak, 67 TFLOP/s, to one core's float64 GEMM rate, ~20-50 GFLOP/s, is over
#: 1000, but small windows and a light prior are launch-bound on a GPU); measure a step
#: with ``benchmarks/fit.py --device cuda`` against ``--device cpu`` and pass the ratio.
DEFAULT_GPU_SPEEDUP = 10.0

#: L-BFGS loss evaluations priced when a prior is fitted to the maximum: an assumption,
#: not a law (the fits in docs/benchmarks.md took 9-20 iterations; --max-iter bounds it)
LBFGS_PASSES = 30


def step_memory_bytes(n_plus, k, itemsize: int) -> np.ndarray:
    """Working bytes of one window in a step (as ``varfx fit --dry-run`` counts them): G
    and the triangular solve ``L^-1 G^T`` (``2 n+ k``), ``C`` and its factor (``2 k^2``),
    and four vectors of ``n+``."""
    n_plus = np.asarray(n_plus, dtype=np.float64)
    k = np.asarray(k, dtype=np.float64)
    return itemsize * (2 * n_plus * k + 2 * k * k + 4 * n_plus)


def fit_estimate(n_plus, n, k, *, objective: str, engine: dict, prior: dict, optimizer: str, passes: int,
                 windows_per_step: int, ranks: int = 1, speedup: float = 1.0, itemsize: int = 8,
                 weight: float = 1.0, variants: float | None = None) -> dict:
    """Time and memory of a fit on training windows of these sizes.

    A pass (an epoch, or one L-BFGS evaluation) costs, per window, the engine's
    ``fixed_s + W / rate``, and per step the prior's fixed cost and its seconds per
    variant times the step's variants (``variants`` for a full batch, else the windows'
    ``n+``), summed and split over ``ranks`` processes (each ``speedup`` times one CPU process: a GPU's
    factor); ``weight`` counts each window that many times (``--variants`` scaling).
    Memory per process: its share of the windows in memory (``n+ k + k n`` each), the
    working memory of the largest ``windows_per_step`` windows of a step, the prior's
    parameters with their gradients and two AdamW moments (float32), and the
    activations of the step's variants (of one chunk, for a prior that checkpoints
    its forward in chunks of ``prior["chunk"]`` variants)."""
    n_plus = np.asarray(n_plus, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    k = np.asarray(k, dtype=np.float64)
    ranks = max(1, int(ranks))
    engine_s = engine["fixed_s"] + step_work(objective, n_plus, n, k) / (engine["gflops"] * 1e9)
    n_windows = int(round(weight * len(n_plus)))
    per_rank_step = max(1, math.ceil(min(windows_per_step, n_windows) / ranks))
    steps = math.ceil(n_windows / max(1, min(windows_per_step, n_windows))) if n_windows else 0
    # the prior runs once a step on the union of its windows' variants: every variant
    # once for a full batch (when ``variants`` is known), else each window's n+ (flanks
    # of windows in different steps overlap: an upper bound)
    full_batch = steps <= 1 and variants is not None
    prior_variants = float(variants) if full_batch else float(weight * np.sum(n_plus))
    prior_pass = prior["seconds_per_variant"] * prior_variants + prior.get("fixed_s", 0.0) * steps * ranks
    per_pass_cpu = float(weight * np.sum(engine_s)) + prior_pass
    per_pass = per_pass_cpu / (ranks * speedup)
    prior_s = prior["seconds_per_variant"] * n_plus
    biggest = np.sort(step_memory_bytes(n_plus, k, itemsize))[::-1]
    reps = int(math.ceil(per_rank_step / max(len(biggest), 1)))
    step_mem = float(np.tile(biggest, max(reps, 1))[:per_rank_step].sum()) if len(biggest) else 0.0
    in_memory = weight * float(np.sum(itemsize * (n_plus * k + k * n))) / ranks
    params = prior["parameters"] * 4 * 4.0
    mean_np = float(n_plus.mean()) if len(n_plus) else 0.0
    step_variants = mean_np * per_rank_step
    if prior.get("chunk"):
        step_variants = min(step_variants, prior["chunk"])
    acts = prior["activation_bytes_per_variant"] * step_variants
    return {
        "optimizer": optimizer, "passes": int(passes), "train_windows": n_windows,
        "windows_per_step": min(per_rank_step * ranks, n_windows), "ranks": ranks, "speedup": float(speedup),
        "cpu_seconds_per_pass": per_pass_cpu, "seconds_per_pass": per_pass, "seconds": per_pass * passes,
        "engine_seconds_per_pass": float(weight * np.sum(engine_s)),
        "prior_seconds_per_pass": float(prior_pass),
        "largest_window_step_seconds": float(np.max(engine_s + prior_s)) if len(n_plus) else 0.0,
        "parameters": int(prior["parameters"]),
        "memory_bytes": {"windows": in_memory, "step": step_mem, "parameters": params, "activations": acts,
                         "total": in_memory + step_mem + params + acts},
    }


def setup_fit_plan(setup, objective_name: str, optimizer: str, epochs: int, windows_per_step: int,
                   ranks: int = 1, device: str = "cpu", dtype: str = "float64") -> dict:
    """The fit estimate of ``varfx plan`` for a fit's own set-up (``fit --dry-run``): the
    engine and the prior timed now on synthetic windows and inputs of the set-up's
    shapes, priced on its training windows (their stored sizes and ranks)."""
    engine = measure_engine(setup.objective, objective_name)
    ctx = setup.context
    seq = setup.prior_cls(**setup.prior_opts).sequence_length()
    prior = measure_prior(setup.module, lambda m: prior_inputs(m, ctx.n_features, ctx.n_tracks, ctx.window, seq))
    train = setup.train
    passes = LBFGS_PASSES if optimizer == "lbfgs" else int(epochs)
    return fit_estimate([w.n_plus for w in train], [w.n for w in train], [w.k for w in train],
                        objective=objective_name, engine=engine, prior=prior, optimizer=optimizer, passes=passes,
                        windows_per_step=windows_per_step, ranks=ranks,
                        speedup=DEFAULT_GPU_SPEEDUP if device == "cuda" else 1.0,
                        itemsize=8 if dtype == "float64" else 4, variants=int(setup.batch["freq"].shape[0]))

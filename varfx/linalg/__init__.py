"""Linear algebra for LD windows.

- :mod:`varfx.linalg.window`: the once-per-window factorisation (eigen-decomposition of
  the core LD block, the reduced factors ``G`` and ``z``); numpy, float64.
- :mod:`varfx.linalg.dense`: independent dense numpy reference formulas (the direct
  pseudo-inverse/pseudo-determinant formula, the paper's B-form, the reduced form and
  its closed-form gradient), used by tests and benchmarks.
- :mod:`varfx.linalg.solvers_impl`: the torch implementations behind the ``cholesky``,
  ``cg-slq`` and ``nystrom`` solver plugins (imports torch; import it lazily).

See ``docs/math.md`` for the derivations.  This package's ``__init__`` imports nothing
heavy so that ``varfx --help`` stays fast.
"""

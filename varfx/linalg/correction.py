"""What ``precompute-ld --ld-correction`` means for a dataset (no I/O).

Moved here from :mod:`varfx.stages.precompute` so that ``varfx plan`` resolves the same
rank cap (and so the same number of kept eigen-components per window) without importing
another stage; precompute re-exports every name.
"""

from __future__ import annotations

import math

from ..errors import UserError

#: ``--ld-correction`` values (docs/usage.md): ``auto`` (the default) is ``rank`` when
#: the dataset records its LD panel size and a window has more variants than the rank
#: cap, else ``none``.
LD_CORRECTIONS = ("auto", "none", "rank", "share")
#: ``--max-rank-frac``: the rank cap of ``rank`` as a fraction of ``min(n_ref, n_core)``,
#: the rank a window's sample LD can have (chosen by measurement: docs/benchmarks.md,
#: "Simulation: recovery of h2 by LD set-up", a GWAS population with decaying LD).
DEFAULT_MAX_RANK_FRAC = 0.35
#: ``--var-share``: the cumulative share of a block's variance ``share`` keeps.
DEFAULT_VAR_SHARE = 0.995
#: ``--eig-floor``: with ``rank`` or ``share``, only eigen-components of at least this many
#: times the window's mean eigenvalue (1 for a correlation block: the Kaiser-Guttman
#: rule).  The count of such components follows the LD's structure, not the panel size,
#: and with a 378-person panel the cap alone kept too many (h2 1.4-1.5x the truth;
#: docs/benchmarks.md, "The eigenvalue floor").
DEFAULT_EIG_FLOOR = 1.0
#: ``--flank-noise-z``: with ``rank`` or ``share``, core-flank correlations below this many
#: noise SDs of a panel of n people (``Z / sqrt(n)``) are set to 0 in ``G``.
DEFAULT_FLANK_NOISE_Z = 3.0


#: the keys of a resolved correction that are :func:`varfx.linalg.window.factorise_window`'s
#: truncation arguments
TRUNCATION_KEYS = ("max_rank", "core_rank_frac", "var_share", "flank_r_min", "eig_floor")


def truncation_of(correction: dict) -> dict:
    """``factorise_window``'s keyword arguments for a :func:`resolve_correction` result."""
    return {k: correction[k] for k in TRUNCATION_KEYS if k in correction}


def check_correction_options(ld_correction, max_rank_frac=None, var_share=None, flank_noise_z=None,
                             eig_floor=None) -> None:
    """One-line UserErrors for bad ``--ld-correction`` / ``--max-rank-frac`` / ``--var-share`` /
    ``--flank-noise-z`` / ``--eig-floor`` values (the CLI checks them too; this is the API's
    check)."""
    if ld_correction not in LD_CORRECTIONS:
        raise UserError(f"option --ld-correction: expected one of {', '.join(LD_CORRECTIONS)}, got {ld_correction!r}")
    for name, val in (("--max-rank-frac", max_rank_frac), ("--var-share", var_share)):
        if val is not None and not (isinstance(val, (int, float)) and math.isfinite(val) and 0 < val <= 1):
            raise UserError(f"option {name}: expected a number in (0, 1], got {val}")
    for name, val in (("--flank-noise-z", flank_noise_z), ("--eig-floor", eig_floor)):
        if val is not None and not (isinstance(val, (int, float)) and math.isfinite(val) and val >= 0):
            raise UserError(f"option {name}: expected a number >= 0, got {val}")


def resolve_correction(ld_correction, n_ref: int, max_n_plus: int, max_rank_frac=None, var_share=None,
                       flank_noise_z=None, path=None, gwas_n: float | None = None, eig_floor=None) -> dict:
    """What ``--ld-correction`` means for this dataset: a dict recorded in the store's
    params and reported by precompute-ld (docs/usage.md lists its keys).

    ``method`` is ``none``, ``rank`` (at most ``max_rank = floor(max_rank_frac * n_ref)``
    eigen-components per window) or ``share`` (the fewest components reaching
    ``var_share`` of the block's variance); with either, ``flank_r_min =
    flank_noise_z / sqrt(n_ref)`` when the panel size is known (core-flank correlations
    below it are taken as the panel's noise); and with either, ``eig_floor`` (default
    :data:`DEFAULT_EIG_FLOOR`; absent when 0): only components of at least that many
    times the window's mean eigenvalue are kept.  ``requested`` is the option given.

    ``auto`` is ``rank`` when the panel size is known, some window is larger than the
    cap, and the panel has fewer people than the GWAS (``n_ref < gwas_n``, the dataset's
    median N).  A panel at least as large as the GWAS is LD from the GWAS sample itself
    (in-sample) or a biobank: its sampling noise is no larger than the GWAS's own, and
    in-sample its small correlations are the very LD that shaped the z-scores, so
    neither cap nor threshold belongs there (``reason`` then says so)."""
    frac = DEFAULT_MAX_RANK_FRAC if max_rank_frac is None else float(max_rank_frac)
    cap = max(1, math.floor(frac * n_ref)) if n_ref > 0 else 0
    method, reason = ld_correction, None
    if method == "auto":
        # on when the panel size is known and some window is larger than the cap (a
        # cap that binds nowhere, on a flank it does not reach, changes nothing); a
        # store without n_ref (a UKBB reference of unknown size) cannot have one
        method = "rank" if n_ref > 0 and max_n_plus > cap else "none"
        if method == "rank" and gwas_n is not None and n_ref >= gwas_n:
            method, reason = "none", "panel_not_smaller_than_gwas"
    out = {"requested": ld_correction, "method": method}
    if reason:
        out["reason"] = reason
    if method == "rank":
        if n_ref <= 0:
            raise UserError("option --ld-correction rank: the dataset records no LD panel size (n_ref), so there is "
                            "no rank to cap; use --ld-correction share or none", path=path)
        # a window of n_core variants keeps at most frac * min(n_core, n_ref): the same
        # fraction of the rank its sample LD can have (core_rank_cap)
        out.update(max_rank_frac=frac, n_ref=int(n_ref), max_rank=cap, core_rank_frac=frac)
    elif method == "share":
        out.update(var_share=DEFAULT_VAR_SHARE if var_share is None else float(var_share))
    if method != "none" and n_ref > 0:
        z = DEFAULT_FLANK_NOISE_Z if flank_noise_z is None else float(flank_noise_z)
        out.update(flank_noise_z=z, flank_r_min=z / math.sqrt(n_ref))
    if method != "none":
        floor = DEFAULT_EIG_FLOOR if eig_floor is None else float(eig_floor)
        if floor > 0:  # 0: no floor
            out.update(eig_floor=floor)
    return out

"""Figures of varfx's results (docs/plots.md): PNG files drawn with matplotlib's Agg
canvas from what the stores hold, never by running another stage.

- :func:`plot_curves`: training (and validation) loss per epoch of a model directory;
- :func:`plot_truth`: predicted against true log f, RMSE in the title;
- :func:`plot_region`: predicted enrichment f / mean f along a genomic region over the
  dataset's input features and the -log10 p of its summary statistics (paper Fig. 3);
- :func:`plot_compare`: models ranked by `varfx evaluate` as bars with +-1 SE (Fig. 4/5);
- :func:`plot_ldsr`: mean chi^2 in LD-score bins with the LD score regression line and,
  with a model, its expected chi^2;
- :func:`plot_bags`: a fine-mapping model's P_CAUSAL along held-out bags, the true
  causal variant marked (a motif simulation's truth);
- :func:`evaluate_plots`: the plots of one `varfx evaluate` result.

Each ``plot_*`` function writes one PNG atomically and returns a :class:`Plot`: its path
and the numbers it drew (what the tests check against direct computations).
Importing this package imports neither matplotlib nor torch (``varfx --help`` stays
fast): the modules are loaded on first use.
"""

from __future__ import annotations

from ..lazy import lazy_exports

_EXPORTS = {
    "Plot": "_draw",
    "plot_curves": "curves",
    "plot_truth": "truth",
    "plot_region": "region",
    "plot_compare": "compare",
    "read_comparison": "compare",
    "plot_ldsr": "ldsr",
    "ldsr_bins": "ldsr",
    "evaluate_plots": "evaluate",
    "plot_bags": "bags",
    "bag_tracks": "bags",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)

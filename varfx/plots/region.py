"""The predicted effect enrichment along a genomic region over the dataset's input
features and the association signal (the paper's Fig. 3)."""

from __future__ import annotations

import math
import sys

import numpy as np

from ..errors import UserError
from . import _draw
from ._inputs import predicted_log_f

#: at most this many feature panels unless ``features`` names them
MAX_FEATURE_PANELS = 12
#: the conventional genome-wide significance threshold (drawn when the signal reaches it)
GENOME_WIDE = 5e-8


def neg_log10_p(z) -> np.ndarray:
    """Two-sided ``-log10 p`` of z scores, accurate far into the tail (|z| of 40 gives
    about 349; ``1 - Phi`` would round to 0 and give infinity)."""
    from scipy.special import log_ndtr

    z = np.abs(np.asarray(z, dtype=np.float64))
    return -(math.log(2.0) + log_ndtr(-z)) / math.log(10.0)


def region_tracks(model_dir, dataset, region, features=None, fasta=None) -> dict:
    """What a region plot draws, for the dataset variants inside ``region``
    (``"22:16000000-17000000"`` or a :class:`varfx.genome.GenomeRegion`, 1-based inclusive):

    ``bp``, ``snp``, ``log_f``, ``enrichment`` (f over the mean f of the model over every
    variant of the dataset: 1 is average, as `varfx score-vcf`'s VARFX_ENRICH),
    ``mean_f``, ``neg_log10_p`` (two-sided, from the dataset's z), ``features`` (name ->
    raw values per variant: each scalar feature ``NAME.COLUMN``, and for each per-base
    track ``NAME.CHANNEL`` its mean over the stored window around the variant, keyed
    ``NAME.CHANNEL (window mean)``), ``skipped`` (features not drawn: constant ones, and
    those beyond :data:`MAX_FEATURE_PANELS` unless ``features`` names them), ``region``
    (the text), ``chrom``, ``start``, ``end`` (None where the region is open).

    ``features``: names (``NAME.COLUMN`` or an entry's ``NAME`` for all its columns) to
    draw instead of all; an unknown name is an error listing the dataset's."""
    from ..genome import GenomeRegion, parse_region
    from ..store.dataset import open_dataset

    reg = region if isinstance(region, GenomeRegion) else parse_region(region, "--region")
    meta, log_f, var = predicted_log_f(model_dir, dataset, fasta)
    inside = reg.contains(var["chrom"], var["bp"])
    if not inside.any():
        chroms = np.unique(var["chrom"])
        on = var["bp"][var["chrom"] == reg.code]
        span = (f"; its chromosome {reg.code} variants span {int(on.min())}-{int(on.max())}" if len(on)
                else f"; it has chromosome(s) {', '.join(map(str, chroms))}")
        raise UserError(f"option --region: no variant of the dataset in {reg.text}{span}", path=dataset)
    idx = np.flatnonzero(inside)
    f = np.exp(log_f)
    mean_f = float(f.mean())
    out = {"region": reg.text, "chrom": reg.code, "start": reg.start, "end": reg.end,
           "bp": var["bp"][idx], "snp": var["snp"][idx], "log_f": log_f[idx],
           "enrichment": f[idx] / mean_f, "mean_f": mean_f, "neg_log10_p": neg_log10_p(var["z"][idx])}
    with open_dataset(dataset) as h5:
        tracks, constant = _features(h5, idx)
    out["features"], out["skipped"] = _choose(tracks, constant, features, dataset)
    return out


def _features(h5, idx):
    """(name -> raw values at ``idx``, names of constant features) of an open dataset."""
    if "features" not in h5:
        return {}, set()
    from ..features.store import read_features

    g = h5["features"]
    # the dataset is sorted by (chromosome, position): a region is one contiguous range
    a, b = int(idx[0]), int(idx[-1]) + 1
    rows = idx - a
    feats = read_features(g, (a, b), raw=True)
    tracks, constant = {}, set()
    const_s = g["scalar_constant"][()] if "scalar_constant" in g else np.zeros(len(feats["scalar_names"]), bool)
    for j, name in enumerate(feats["scalar_names"]):
        tracks[name] = feats["scalar"][rows, j].astype(np.float64)
        if const_s[j]:
            constant.add(name)
    if feats["window"] is not None:
        const_w = g["window_constant"][()] if "window_constant" in g else np.zeros(len(feats["window_names"]), bool)
        for j, name in enumerate(feats["window_names"]):
            key = f"{name} (window mean)"
            tracks[key] = feats["window"][rows, :, j].astype(np.float64).mean(axis=1)
            if const_w[j]:
                constant.add(key)
    return tracks, constant


def _choose(tracks, constant, wanted, dataset):
    if wanted:
        chosen = {}
        for w in wanted:
            hits = [k for k in tracks if k == w or k.split(" ")[0] == w or k.split(".")[0] == w]
            if not hits:
                raise UserError(f"option --features: the dataset has no feature {w!r} (it has "
                                f"{', '.join(tracks) or 'none'})", path=dataset)
            chosen.update({k: tracks[k] for k in hits})
        return chosen, sorted(set(tracks) - set(chosen))
    varying = [k for k in tracks if k not in constant]
    keep = varying[:MAX_FEATURE_PANELS]
    skipped = sorted(constant) + varying[MAX_FEATURE_PANELS:]
    if len(varying) > MAX_FEATURE_PANELS:
        print(f"Note: drawing the first {MAX_FEATURE_PANELS} of {len(varying)} features; choose others with "
              "--features", file=sys.stderr)
    return {k: tracks[k] for k in keep}, skipped


def plot_region(model_dir, dataset, region, out_dir, features=None, fasta=None, name=None) -> _draw.Plot:
    """Write ``out_dir/region_CHR_START_END.png``: the enrichment f / mean f (top, log
    scale, 1 = average), then ``-log10 p``, then one panel per input feature, against
    position.  ``data``: :func:`region_tracks`'s dict."""
    d = region_tracks(model_dir, dataset, region, features=features, fasta=fasta)
    path = _draw.out_path(out_dir, name or f"region_{_draw.safe_name(d['region'].replace(':', '_'))}.png")
    n_panels = 2 + len(d["features"])
    fig = _draw.figure(9, 1.2 + 1.5 * n_panels)
    axes = fig.subplots(n_panels, 1, sharex=True, squeeze=False)[:, 0]
    x = d["bp"] / 1e6
    marker = dict(marker="o", ms=2.5) if len(x) <= 2000 else {}
    ax = axes[0]
    ax.plot(x, d["enrichment"], lw=0.8, color="C3", **marker)
    ax.axhline(1.0, color="0.5", lw=0.8, ls="--")
    ax.set_yscale("log")
    ax.set_ylabel("f / mean f")
    ax.set_title(f"{d['region']}: predicted enrichment ({len(x)} variant{'s' if len(x) != 1 else ''}; "
                 f"mean f {d['mean_f']:.3g} over the dataset)", fontsize=10)
    ax = axes[1]
    ax.scatter(x, d["neg_log10_p"], s=5, color="C0", lw=0)
    threshold = -math.log10(GENOME_WIDE)
    if d["neg_log10_p"].max() >= 0.8 * threshold:
        ax.axhline(threshold, color="0.5", lw=0.8, ls="--")
    ax.set_ylabel("-log10 p")
    for ax, (key, values) in zip(axes[2:], d["features"].items()):
        ax.plot(x, values, lw=0.8, color="C2", **marker)
        ax.set_ylabel(key.replace(" (window mean)", "\n(window mean)"), fontsize=8)
    for ax in axes:
        ax.grid(alpha=0.3)
    # the region asked for, not only the span of its variants (a gap in the data shows)
    lo = d["start"] / 1e6 if d["start"] is not None else float(x.min())
    hi = d["end"] / 1e6 if d["end"] is not None else float(x.max())
    if hi > lo:
        axes[-1].set_xlim(lo, hi)
    axes[-1].set_xlabel(f"chromosome {d['chrom']} position (Mb)")
    fig.tight_layout()
    return _draw.Plot(_draw.save(fig, path), d)

"""Correlations among a dataset's variants, from the LD data that ingest stored.

:func:`open_ld` takes an open ``h5py.File`` of ``dataset.h5`` and returns an object with
``kind``, ``n_ref`` and ``correlation(idx, chrom, center_bp)``: the dense float64
correlation matrix among the (sorted) variant indices ``idx``.

- ``plink``: the dosages of those variants are standardised (missing genotypes set to
  the variant's mean, population standard deviation, so the diagonal is exactly 1) and
  ``R = X^T X / n_people``.
- ``ukbb``: the region on ``chrom`` whose centre is nearest ``center_bp`` among the
  regions containing ``center_bp`` (the region that centres the window; when no region
  contains it, the nearest centre on the chromosome).  Variants of ``idx`` that are not
  in that region get zero correlation with every other variant and 1 on the diagonal;
  they are counted (``last_outside`` after each call, ``outside_total`` over calls, and
  :func:`outside_region_counts` for a list of windows, which precompute reports).

Both are in the orientation of the dataset's ``a1`` alleles (no sign changes needed).
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np


def open_ld(h5file):
    """The LD view of an open ``dataset.h5`` (``PlinkLD`` or ``UkbbLD``)."""
    from ..errors import UserError

    if "ld" not in h5file:
        raise UserError("dataset has no /ld group (was it written by varfx ingest?)", path=h5file.filename)
    kind = h5file["ld"].attrs.get("kind")
    if isinstance(kind, bytes):
        kind = kind.decode()
    if kind == "plink":
        return PlinkLD(h5file)
    if kind == "ukbb":
        return UkbbLD(h5file)
    raise UserError(f"unknown LD kind {kind!r} in /ld", path=h5file.filename)


def _as_idx(idx) -> np.ndarray:
    idx = np.asarray(idx, dtype=np.int64).ravel()
    if idx.size > 1 and np.any(np.diff(idx) <= 0):
        raise ValueError("idx must be strictly increasing variant indices")
    return idx


class PlinkLD:
    """LD computed on demand from the genotypes stored in ``/ld/genotypes``."""

    kind = "plink"

    def __init__(self, h5file):
        self._g = h5file["ld/genotypes"]
        self.n_variants, self.n_people = self._g.shape

    @property
    def n_ref(self) -> int:
        return int(self.n_people)

    def dosages(self, idx) -> np.ndarray:
        """int8 dosages (len(idx) x n_people) of the dataset's a1 alleles, -1 missing."""
        idx = _as_idx(idx)
        if idx.size == 0:
            return np.zeros((0, self.n_people), dtype=np.int8)
        lo, hi = int(idx[0]), int(idx[-1]) + 1
        block = self._g[lo:hi]
        return block[idx - lo]

    def standardized(self, idx) -> np.ndarray:
        """Standardised dosages X (len(idx) x n_people), mean-imputed, population sd 1."""
        g = self.dosages(idx).astype(np.float64)
        miss = g < 0
        g[miss] = 0.0
        cnt = (~miss).sum(axis=1)
        mean = np.divide(g.sum(axis=1), cnt, out=np.zeros(len(g)), where=cnt > 0)
        x = g - mean[:, None]
        x[miss] = 0.0
        sd = np.sqrt((x * x).mean(axis=1))
        ok = sd > 0
        x[ok] /= sd[ok, None]
        x[~ok] = 0.0
        return x

    #: the genotypes cover every variant: no window has variants outside its LD
    last_outside = 0
    outside_total = 0

    def correlation(self, idx, chrom=None, center_bp=None) -> np.ndarray:
        x = self.standardized(idx)
        r = x @ x.T / self.n_people
        np.fill_diagonal(r, 1.0)
        return r


class UkbbLD:
    """LD from the per-region sparse triangles stored under ``/ld/regions``."""

    kind = "ukbb"

    def __init__(self, h5file, cache_size: int = 2):
        self._grp = h5file["ld/regions"]
        self._n_ref = int(h5file.attrs.get("n_ref", 0))
        names = list(self._grp.keys())
        self.regions = []
        for name in names:
            a = self._grp[name].attrs
            self.regions.append((name, int(a["chrom"]), int(a["start"]), int(a["end"])))
        self._cache: OrderedDict = OrderedDict()
        self._cache_size = cache_size

    @property
    def n_ref(self) -> int:
        return self._n_ref

    def pick_region(self, chrom: int, center_bp: float):
        """The name of the region used for a window centred at ``center_bp`` (or None)."""
        cands = [r for r in self.regions if r[1] == int(chrom)]
        if not cands:
            return None
        inside = [r for r in cands if r[2] <= center_bp < r[3]]
        pool = inside or cands
        best = min(pool, key=lambda r: (abs((r[2] + r[3]) / 2.0 - center_bp), r[2]))
        return best[0]

    def _load(self, name):
        if name in self._cache:
            self._cache.move_to_end(name)
            return self._cache[name]
        import scipy.sparse as sp

        g = self._grp[name]
        ridx = g["idx"][()]
        k = len(ridx)
        low = sp.csr_matrix((g["data"][()], g["indices"][()], g["indptr"][()]), shape=(k, k))
        self._cache[name] = (ridx, low)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return ridx, low

    def region_index(self, name) -> np.ndarray:
        return self._grp[name]["idx"][()]

    def _present(self, ridx, idx) -> np.ndarray:
        """(positions in the region of the present variants, mask of ``idx`` present)."""
        if len(ridx) == 0:
            return np.zeros(0, np.int64), np.zeros(len(idx), dtype=bool)
        pos = np.minimum(np.searchsorted(ridx, idx), len(ridx) - 1)
        present = ridx[pos] == idx
        return pos[present], present

    def outside(self, idx, chrom, center_bp) -> int:
        """How many variants of ``idx`` the region chosen for this window lacks (they get
        an identity row in :meth:`correlation`); reads only the region's index."""
        idx = _as_idx(idx)
        name = self.pick_region(chrom, center_bp)
        if name is None:
            return int(idx.size)
        ridx = self._cache[name][0] if name in self._cache else self.region_index(name)
        return int(idx.size - self._present(ridx, idx)[1].sum())

    #: variants of the last :meth:`correlation` call outside its region, and the total
    last_outside = 0
    outside_total = 0

    def correlation(self, idx, chrom, center_bp) -> np.ndarray:
        idx = _as_idx(idx)
        out = np.eye(len(idx))
        name = self.pick_region(chrom, center_bp)
        self.last_outside = int(idx.size)
        if name is None or idx.size == 0:
            self.outside_total += self.last_outside
            return out
        ridx, low = self._load(name)
        sel, present = self._present(ridx, idx)
        self.last_outside = int(idx.size - present.sum())
        self.outside_total += self.last_outside
        if sel.size == 0:
            return out
        sub = low[sel][:, sel].toarray().astype(np.float64)
        r = sub + sub.T
        np.fill_diagonal(r, 1.0)
        where = np.flatnonzero(present)
        out[np.ix_(where, where)] = r
        return out


def outside_region_counts(h5file, windows) -> dict:
    """For a UKBB/PolyFun dataset: how many (window, variant) pairs fall outside the LD
    region chosen for their window, and in how many windows, as
    ``{"variants": n, "windows": w, "worst": (chrom, start, end, n) or None}``; ``{}`` for
    a PLINK dataset (its LD covers every pair).

    ``windows``: objects with ``plus_idx``, ``chrom``, ``start`` and ``end`` (the window
    specs of precompute, whose centre ``(start + end) // 2`` picks the region).
    """
    ld = open_ld(h5file)
    if ld.kind != "ukbb":
        return {}
    total, hit, worst = 0, 0, None
    for w in windows:
        k = ld.outside(w.plus_idx, w.chrom, (w.start + w.end) // 2)
        if k:
            total += k
            hit += 1
            if worst is None or k > worst[3]:
                worst = (int(w.chrom), int(w.start), int(w.end), int(k))
    return {"variants": int(total), "windows": int(hit), "worst": worst}


def outside_region_warning(counts: dict) -> str | None:
    """The warning for :func:`outside_region_counts` (None when nothing is outside)."""
    if not counts or not counts.get("variants"):
        return None
    c, s, e, k = counts["worst"]
    return (f"{counts['variants']} variants in {counts['windows']} windows lie outside the LD region chosen for "
            f"their window and were given no correlation with the others (worst: chr{c}:{s}-{e}, {k} variants); "
            "use regions that overlap by at least the flank, or a smaller --window-kb/--flank-kb")


def outside_region_report(dataset_file, windows) -> dict:
    """``{"ld_outside_region": counts}`` for precompute's summary when a UKBB/PolyFun
    dataset has window variants outside their LD region, with the warning printed on
    stderr; ``{}`` otherwise (see :func:`outside_region_counts`)."""
    import sys

    import h5py

    with h5py.File(dataset_file, "r") as h5:
        counts = outside_region_counts(h5, windows)
    warning = outside_region_warning(counts)
    if warning is None:
        return {}
    print(f"varfx: warning: {dataset_file}: {warning}", file=sys.stderr)
    return {"ld_outside_region": counts}
